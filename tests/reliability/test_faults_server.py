"""What the server (or the config pointing at it) gets wrong, against the real Dovecot:

* a server that does not offer STARTTLS: one line, nothing retried.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from mailtriage import sync as sync_mod

from support.cli import triage
from support.dovecot import Account, Dovecot
from support.faultproxy import PASSWORD_VAR, FaultProxy, StripCapability
from support.mailfactory import write_config


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff pauses `triage sync` asked for (injected: the test does not wait)."""
    from mailtriage.cli import sync as cmd_sync

    asked: list[float] = []
    monkeypatch.setattr(cmd_sync, "sync", functools.partial(sync_mod.sync, sleep=asked.append))
    return asked


# -- the connection's security ---------------------------------------------------------------


def test_a_server_without_starttls_is_refused_once(
    tmp_path: Path, mailbox: Account, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        proxy.default = StripCapability("STARTTLS")
        cfg = write_config(tmp_path, mailbox, imap={
            "security": "starttls", "port": proxy.port, "ca_file": dovecot.ca_file})
        res = triage(cfg, "sync")
        assert res.exit_code == 1, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "does not offer STARTTLS" in lines[0], res.stderr
        assert proxy.accepted == 1 and sleeps == []  # not retried
        assert proxy.connections[0].faulted  # the proxy really took it out
        assert proxy.connections[0].to_server < 100  # no LOGIN went out: only CAPABILITY
        # through the same proxy without the fault, STARTTLS works: it was the capability
        proxy.reset(StripCapability("NO-SUCH-CAPABILITY"))
        res = triage(cfg, "sync")
        assert res.exit_code == 0, res.output
    assert proxy.alive_threads == 0
