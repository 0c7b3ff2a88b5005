"""What the server (or the config pointing at it) gets wrong, against the real Dovecot:

* a configured folder renamed or deleted on the server: that folder's error is recorded on
  its row and shown (sync, report, run), the other folders still sync, nothing is retried,
  and the error clears when the folder is back;
* a server that does not offer STARTTLS, a certificate for another name, a ``ca_file`` that
  is not there, an ``--account`` that is not configured: one line each, nothing retried.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from mailtriage import sync as sync_mod
from mailtriage.config import load_config
from mailtriage.store import open_db

from support.cli import triage
from support.dovecot import Account, Dovecot
from support.faultproxy import PASSWORD_VAR, FaultProxy, StripCapability
from support.mailfactory import NOW, put, write_config
from support.smtp import SMTPServer


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff pauses `triage sync` asked for (injected: the test does not wait)."""
    from mailtriage.cli import sync as cmd_sync

    asked: list[float] = []
    monkeypatch.setattr(cmd_sync, "sync", functools.partial(sync_mod.sync, sleep=asked.append))
    return asked


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def folders(cfg: Path) -> dict[str, dict[str, Any]]:
    db = open_db(load_config(cfg).db_path)
    try:
        return {r["folder"]: r for r in db.query("SELECT * FROM folders")}
    finally:
        db.conn.close()


def stored(cfg: Path, folder: str) -> int:
    db = open_db(load_config(cfg).db_path)
    try:
        return db.execute("SELECT COUNT(*) FROM locations WHERE folder = ?",
                          [folder]).fetchone()[0]
    finally:
        db.conn.close()


def rename(mailbox: Account, old: str, new: str) -> None:
    c = mailbox.client()
    try:
        c.rename_folder(old, new)
    finally:
        c.logout()


# -- a folder renamed or deleted on the server -----------------------------------------------


def test_a_renamed_folder_is_recorded_and_the_others_still_sync(
    tmp_path: Path, mailbox: Account, monkeypatch: pytest.MonkeyPatch, sleeps: list[float],
) -> None:
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    c = mailbox.client()
    c.create_folder("Projects")
    c.create_folder("Later")
    c.logout()
    put(mailbox, "Projects", msgid="p1@c.test", subject="Project plan")
    put(mailbox, "INBOX", msgid="i1@c.test", subject="Login broken")
    put(mailbox, "Later", msgid="l1@c.test", subject="Someday")
    # Projects first: before, its failure stopped every folder after it
    cfg = write_config(tmp_path, mailbox, imap={"folders": ["Projects", "INBOX", "Later"]})
    res = triage(cfg, "sync")
    assert res.exit_code == 0, res.output

    rename(mailbox, "Projects", "Projects-2025")  # as someone might in a mail client
    put(mailbox, "INBOX", msgid="i2@c.test", subject="Invoice question")
    put(mailbox, "Later", msgid="l2@c.test", subject="Re: Someday", in_reply_to="l1@c.test")
    started = time.monotonic()
    res = triage(cfg, "sync")
    assert time.monotonic() - started < 5
    assert res.exit_code == 1, res.output
    assert sleeps == []  # a NO about one folder is not a connection problem: no retry
    lines = errors(res.stderr)
    assert len(lines) == 1, res.stderr
    assert "default/Projects" in lines[0] and "renamed or deleted" in lines[0]
    assert "imap.folders" in lines[0]
    assert "synced 4 of 5 folders: 2 new messages" in res.stderr
    assert "Traceback" not in res.output
    rows = folders(cfg)
    assert "renamed or deleted" in rows["Projects"]["last_error"]
    assert [f for f, r in rows.items() if r["last_error"]] == ["Projects"]
    assert stored(cfg, "INBOX") == 2 and stored(cfg, "Later") == 2  # the others synced
    assert stored(cfg, "Projects") == 1  # what we had is kept

    # the report's completeness table and JSON say so; so does `triage run`
    res = triage(cfg, "report")
    assert res.exit_code == 0, res.output
    row = next(line for line in res.stdout.splitlines() if line.startswith("default/Projects"))
    assert "ERROR: not on the server (renamed or deleted?)" in row
    data = json.loads(triage(cfg, "report", "--json").stdout)
    projects = next(f for f in data["completeness"]["folders"] if f["folder"] == "Projects")
    assert projects["last_error"] and not projects["ok"]
    assert not data["completeness"]["complete"]
    res = triage(cfg, "run", "--no-report")
    assert res.exit_code == 1
    lines = errors(res.stderr)
    assert len(lines) == 1 and "default/Projects" in lines[0], res.stderr

    # back under its name: synced again, the error gone
    rename(mailbox, "Projects-2025", "Projects")
    put(mailbox, "Projects", msgid="p2@c.test", subject="Re: Project plan",
        in_reply_to="p1@c.test", date=NOW - dt.timedelta(minutes=5))
    res = triage(cfg, "sync")
    assert res.exit_code == 0, res.output
    assert errors(res.stderr) == [] and "synced 5 folders: 1 new message" in res.stderr
    assert all(r["last_error"] is None for r in folders(cfg).values())
    assert stored(cfg, "Projects") == 2
    row = next(line for line in triage(cfg, "report").stdout.splitlines()
               if line.startswith("default/Projects"))
    assert row.rstrip().endswith("ok")
    assert sleeps == []


def test_a_deleted_folder_and_one_that_never_existed(
    tmp_path: Path, mailbox: Account, monkeypatch: pytest.MonkeyPatch, sleeps: list[float],
) -> None:
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    c = mailbox.client()
    c.create_folder("Old")
    c.logout()
    put(mailbox, "INBOX", msgid="i1@c.test")
    cfg = write_config(tmp_path, mailbox, imap={"folders": ["Old", "INBOX", "Typo"]})
    res = triage(cfg, "sync")
    assert res.exit_code == 1 and sleeps == []
    lines = errors(res.stderr)
    assert len(lines) == 1 and "default/Typo" in lines[0] and "Old" not in lines[0], res.stderr
    rows = folders(cfg)
    assert rows["Typo"]["synced_at"] is None and rows["Typo"]["last_error"]
    assert stored(cfg, "INBOX") == 1

    c = mailbox.client()
    c.delete_folder("Old")
    c.logout()
    res = triage(cfg, "sync")
    assert res.exit_code == 1 and sleeps == []
    lines = errors(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: 2 folders not synced:"), res.stderr
    assert "default/Old" in lines[0] and "default/Typo" in lines[0]
    report = triage(cfg, "report").stdout
    assert report.count("ERROR: not on the server") == 2


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


@pytest.fixture
def other_address() -> str:
    """127.0.0.2: loopback too, but not in the test certificate (127.0.0.1 and localhost)."""
    return "127.0.0.2"


def test_a_certificate_for_another_name_says_so_and_not_ca_file(
    tmp_path: Path, mailbox: Account, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float], other_address: str,
) -> None:
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    with FaultProxy(dovecot.host, dovecot.ssl_port, listen_host=other_address) as proxy:
        cfg = write_config(tmp_path, mailbox, imap={
            "host": other_address, "security": "ssl", "port": proxy.port,
            "ca_file": dovecot.ca_file})
        res = triage(cfg, "sync")
        assert res.exit_code == 1, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert "does not match the host name" in lines[0] and repr(other_address) in lines[0]
        assert "ca_file" not in lines[0]
        assert proxy.accepted == 1 and sleeps == []
    # an unknown CA (no ca_file) still points at ca_file
    cfg = write_config(tmp_path, mailbox, imap={"security": "ssl", "port": dovecot.ssl_port})
    res = triage(cfg, "sync")
    assert res.exit_code == 1 and "set imap.ca_file for a private CA" in res.stderr


def test_smtp_with_a_certificate_for_another_name(
    tmp_path: Path, smtps_server: SMTPServer, other_address: str,
) -> None:
    with FaultProxy(smtps_server.host, smtps_server.port, listen_host=other_address) as proxy:
        cfg = write_config(tmp_path, report={"to": ["team@example.com"]}, smtp={
            "host": other_address, "port": proxy.port, "security": "ssl",
            "ca_file": smtps_server.ca_file, "timeout": 10},
            accounts=[{"name": "local", "maildir": str(tmp_path / "Maildir")}])
        (tmp_path / "Maildir" / "cur").mkdir(parents=True)
        res = triage(cfg, "report", "--send")
        assert res.exit_code == 1, res.output
        lines = errors(res.stderr)
        assert len(lines) == 1 and "does not match the host name" in lines[0], res.stderr
        assert "smtp.host" in lines[0] and "ca_file" not in lines[0]
    assert smtps_server.messages == []


# -- the config ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["imap", "smtp", "accounts"])
def test_a_missing_ca_file_is_a_config_error_before_connecting(
    tmp_path: Path, mailbox: Account, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float], where: str,
) -> None:
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    missing = tmp_path / "certs" / "private-ca.pem"
    imap = {"host": proxy.host, "port": proxy.port, "security": "starttls",
            "username": mailbox.username, "password_env": PASSWORD_VAR}
    extra: dict[str, Any] = {}
    if where == "imap":
        key, extra["imap"] = "imap.ca_file", {**imap, "ca_file": "certs/private-ca.pem"}
    elif where == "accounts":
        key = "accounts[1].ca_file"
        extra["accounts"] = [{**imap, "name": "a", "ca_file": mailbox.ca_file},
                             {**imap, "name": "b", "ca_file": "certs/private-ca.pem"}]
    else:
        key, extra["imap"] = "smtp.ca_file", {**imap, "ca_file": mailbox.ca_file}
        extra["smtp"] = {"host": "127.0.0.1", "port": 1, "ca_file": "certs/private-ca.pem"}
    cfg = write_config(tmp_path, **extra)
    res = triage(cfg, "sync")
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0] == f"Error: {cfg}: {key}: file not found: {missing}"
    assert proxy.accepted == 0 and sleeps == []  # refused when the config was read


def test_an_unknown_account_is_a_usage_error(
    tmp_path: Path, mailbox: Account, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    put(mailbox, "INBOX", msgid="i1@c.test")
    imap = {"host": proxy.host, "port": proxy.port, "security": "none",
            "username": mailbox.username, "password_env": PASSWORD_VAR}
    cfg = write_config(tmp_path, accounts=[{**imap, "name": "support"},
                                           {**imap, "name": "billing"}])
    res = triage(cfg, "sync", "--account", "support", "--account", "nosuch")
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "'nosuch'" in lines[0] and "support, billing" in lines[0]
    assert proxy.accepted == 0 and not (tmp_path / "state.db").exists()
    res = triage(cfg, "sync", "--account", "billing")
    assert res.exit_code == 0, res.output
    assert proxy.accepted == 1
