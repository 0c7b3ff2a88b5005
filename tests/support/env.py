"""Keep tests away from the real user's files: HOME and XDG dirs in a temp dir, no TRIAGE_* vars."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point HOME/XDG at `home` (created) and drop TRIAGE_* variables, undone with `monkeypatch`."""
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        (home / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(home / sub))
    for var in [v for v in os.environ if v.startswith("TRIAGE_")]:
        monkeypatch.delenv(var)
