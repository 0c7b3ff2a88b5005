"""Run the `triage` CLI in-process the one way every test does: a fixed `--now`, click's runner.

`triage(cfg, *args)` is ``triage --config CFG --now NOW ARGS...``; `ok` also asserts exit 0.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from click.testing import CliRunner, Result

from mailtriage.cli import cli

from support.mailfactory import NOW

Now = dt.datetime | str | None


def argv(cfg: str | os.PathLike[str] | None, *args: str, now: Now = NOW) -> list[str]:
    """The command line: ``--config`` unless `cfg` is None, ``--now`` unless `now` is None."""
    head: list[str] = []
    if cfg is not None:
        head += ["--config", str(cfg)]
    if now is not None:
        head += ["--now", now if isinstance(now, str) else now.isoformat()]
    return [*head, *args]


def triage(
    cfg: str | os.PathLike[str] | None, *args: str, now: Now = NOW, **kw: Any
) -> Result:
    """Invoke the CLI with a fresh `CliRunner`; `kw` goes to `CliRunner.invoke` (e.g. ``env``)."""
    return CliRunner().invoke(cli, argv(cfg, *args, now=now), **kw)


def ok(cfg: str | os.PathLike[str] | None, *args: str, now: Now = NOW, **kw: Any) -> Result:
    """`triage(...)`, asserting exit status 0 (output and exception in the failure message)."""
    result = triage(cfg, *args, now=now, **kw)
    assert result.exit_code == 0, (result.output, result.exception)
    return result
