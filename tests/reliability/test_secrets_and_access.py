"""Secrets and access: file modes, the password never shown or stored, clear text only when
asked for (and then warned about), TLS verified, no literal passwords, commands without a shell.
"""

from __future__ import annotations

import os
import socket
import stat
import traceback
from pathlib import Path

import pytest

from mailtriage.config import load_config
from mailtriage.imap import IMAPSession
from mailtriage.lock import lock_path
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import triage
from support.faultproxy import PASSWORD_VAR, FaultProxy
from support.mailfactory import NOW, mail, write_config

SECRET = "Pa55-Sekret-7781"


@pytest.fixture
def account(dovecot):
    acc = dovecot.add_user(f"secrets{os.getpid()}-{id(object())}@example.com", SECRET)
    acc.append("INBOX", mail(msgid="s1@c.test", subject="Login broken"))
    acc.append("Sent", mail(msgid="s2@example.com", subject="Re: Login broken",
                            frm="support@example.com", in_reply_to="s1@c.test"))
    return acc


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_wal_shm_and_lock_are_0600_whatever_the_umask(tmp_path, account, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, SECRET)
    cfg = write_config(tmp_path, account)
    old = os.umask(0)  # the most permissive umask a cron environment could have
    try:
        res = triage(cfg, "run")
        assert res.exit_code == 0, res.output
        config = load_config(cfg)
        db = open_db(config.db_path)  # keep it open: -wal and -shm exist while in use
        try:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('x', 'y')")
            db.conn.commit()
            files = [config.db_path, Path(f"{config.db_path}-wal"), Path(f"{config.db_path}-shm"),
                     lock_path(config.db_path)]
            for path in files:
                assert path.exists(), path
                assert mode(path) == 0o600, (path, oct(mode(path)))
        finally:
            db.conn.close()
    finally:
        os.umask(old)


def _no_secret(*texts: str | bytes) -> None:
    for text in texts:
        blob = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        assert SECRET.encode() not in blob


def test_password_never_in_output_database_or_traceback(tmp_path, account, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, SECRET)
    cfg = write_config(tmp_path, account)
    res = triage(cfg, "-vv", "sync")
    assert res.exit_code == 0, res.output
    assert res.stderr  # -vv really did log something
    _no_secret(res.stdout, res.stderr)
    db_path = load_config(cfg).db_path
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db_path}{suffix}").exists():
            _no_secret(Path(f"{db_path}{suffix}").read_bytes())

    # a refused login: the (wrong) password is not echoed either
    monkeypatch.setenv(PASSWORD_VAR, SECRET + "-wrong")
    res = triage(cfg, "-vv", "sync", "--full")
    assert res.exit_code == 1
    assert "login failed" in res.stderr
    _no_secret(res.stdout, res.stderr)

    # an unexpected bug mid-sync: the traceback, even with every frame's locals, has no password
    monkeypatch.setenv(PASSWORD_VAR, SECRET)

    def broken_fetch(self, uids):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(IMAPSession, "fetch", broken_fetch)
    account.append("INBOX", mail(msgid="s3@c.test", subject="Another"))
    res = triage(cfg, "-vv", "sync")
    assert isinstance(res.exception, RuntimeError)
    assert res.exc_info is not None
    tb = "".join(traceback.TracebackException(*res.exc_info, capture_locals=True).format())
    assert "broken_fetch" in tb
    _no_secret(tb, res.output)


@pytest.fixture
def non_loopback_proxy(dovecot):
    """The proxy on an address reached through a host *name* that is not 'localhost'."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip("the host name does not resolve")
    if name == "localhost":
        pytest.skip("the host name is localhost")
    with FaultProxy(dovecot.host, dovecot.port, listen_host=address) as p:
        yield name, p


def test_clear_text_to_a_remote_host_needs_allow_insecure_and_warns_once(
        tmp_path, account, monkeypatch, non_loopback_proxy):
    monkeypatch.setenv(PASSWORD_VAR, SECRET)
    name, proxy = non_loopback_proxy
    cfg = write_config(tmp_path, account, imap={"host": name, "port": proxy.port})
    res = triage(cfg, "sync")
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "imap.security" in res.stderr
    assert "allow_insecure" in res.stderr
    assert proxy.accepted == 0  # refused before connecting

    cfg = write_config(tmp_path, account, imap={"host": name, "port": proxy.port,
                                                "allow_insecure": True})
    res = triage(cfg, "sync")
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if "clear text" in line]
    assert len(warnings) == 1, res.stderr
    assert name in warnings[0]
    _no_secret(res.output)


def test_tls_is_verified_by_default(tmp_path, account, monkeypatch, dovecot):
    monkeypatch.setenv(PASSWORD_VAR, SECRET)
    for security, port in (("ssl", dovecot.ssl_port), ("starttls", dovecot.port)):
        cfg = write_config(tmp_path, account, imap={"security": security, "port": port})
        res = triage(cfg, "sync")
        assert res.exit_code == 1, (security, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "certificate" in lines[0], (security, res.stderr)
        # with the private CA configured it works: the failure above was the verification
        cfg = write_config(tmp_path, account, imap={"security": security, "port": port,
                                                    "ca_file": dovecot.ca_file})
        res = triage(cfg, "sync")
        assert res.exit_code == 0, (security, res.output)


def test_literal_password_is_refused(tmp_path, account):
    cfg = write_config(tmp_path, account, imap={"password": SECRET})
    res = triage(cfg, "sync")
    assert res.exit_code == 2
    assert "imap.password" in res.stderr
    assert "password_env" in res.stderr and "password_cmd" in res.stderr
    _no_secret(res.output)


def test_token_and_password_commands_run_without_a_shell(tmp_path, account, monkeypatch):
    marker = tmp_path / "pwned"
    payloads = [
        ["printf", "%s", f"tok; touch {marker}"],
        ["printf", "%s", f"$(touch {marker})`touch {marker}`"],
        f"printf %s 'tok; touch {marker}' && touch {marker}",  # a string is split, not shelled
    ]
    for token_cmd in payloads:
        cfg = write_config(tmp_path, account, imap={"auth": "xoauth2", "token_cmd": token_cmd,
                                                    "password_env": None})
        res = triage(cfg, "sync")
        assert res.exit_code in (1, 2), res.output  # Dovecot here offers no XOAUTH2
        assert not marker.exists(), token_cmd
        assert "touch" not in res.output  # the token is not echoed
    monkeypatch.delenv(PASSWORD_VAR, raising=False)
    cfg = write_config(tmp_path, account, imap={"password_env": None,
                                                "password_cmd": ["printf", "%s", SECRET]})
    res = triage(cfg, "-vv", "sync")
    assert res.exit_code == 0, res.output
    _no_secret(res.output)


@pytest.mark.parametrize("key", ["token_cmd", "password_cmd"])
def test_failing_secret_command_is_a_config_error_without_its_output(tmp_path, account, key):
    leak = ["sh", "-c", "echo OUT-LEAK-4411; echo ERR-LEAK-4412 >&2; exit 3"]
    block = {"password_env": None, key: leak}
    if key == "token_cmd":
        block["auth"] = "xoauth2"
    cfg = write_config(tmp_path, account, imap=block)
    res = triage(cfg, "sync")
    assert res.exit_code == 2, res.output
    assert f"imap.{key}" in res.stderr and "status 3" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "LEAK" not in res.output


def test_library_sync_never_puts_the_password_in_the_database(tmp_path, account, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, SECRET)
    config = load_config(write_config(tmp_path, account))
    db = open_db(config.db_path)
    sync(db, config, NOW, sleep=lambda s: None)
    dump = "\n".join(db.conn.iterdump())
    db.conn.close()
    _no_secret(dump)
