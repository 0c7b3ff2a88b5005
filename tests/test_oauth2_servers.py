"""OAuth2 end to end, offline: ``triage auth login`` through both flows, then sync and send.

Real parts only: a second Dovecot whose ``oauth2`` passdb asks our test authorization server
(tests/support/oauth_server.py) to introspect every XOAUTH2/OAUTHBEARER token; the test SMTP
server checking XOAUTH2 bearer tokens against the same server; ``triage auth login`` run as
a process, the test playing the person (entering the code, or following the browser's
redirect to the loopback port).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import stat
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from mailtriage.tokenstore import token_file

from support.certs import TestPKI
from support.cli import triage
from support.dovecot import Account, Dovecot
from support.mailfactory import NOW, put, write_config
from support.oauth_server import AuthServer
from support.smtp import SMTPServer

pytestmark = [pytest.mark.imap]
_users = itertools.count(1)
REFUSED = 'login refused: run "triage auth login --account default"'


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    with AuthServer() as server:
        yield server


@pytest.fixture(scope="module")
def oauth_dovecot(test_pki: TestPKI, auth_server: AuthServer) -> Iterator[Dovecot]:
    if not Dovecot.available():
        pytest.skip("Dovecot not installed (/usr/sbin/dovecot)")
    with Dovecot(pki=test_pki, oauth2_introspection_url=auth_server.url("/introspect")) as dc:
        yield dc


@pytest.fixture(scope="module")
def oauth_smtp(test_pki: TestPKI, auth_server: AuthServer) -> Iterator[SMTPServer]:
    """SMTP that takes only XOAUTH2 with a live token (no password is ever right)."""
    server = SMTPServer(security="none", pki=test_pki, password=None,
                        bearer_check=auth_server.bearer_ok)
    with server:
        yield server


@pytest.fixture
def user(oauth_dovecot: Dovecot, auth_server: AuthServer) -> Account:
    """A fresh mailbox; the "browser" and the device approvals are logged in as its owner."""
    account = oauth_dovecot.add_user(f"o{next(_users)}@example.com", "unused-password")
    auth_server.access_lifetime = 3600
    auth_server.login_as = account.username
    auth_server.grants.clear()
    auth_server.refused.clear()
    return account


def config(tmp_path: Path, account: Account, auth: AuthServer, **extra: object) -> Path:
    return write_config(tmp_path, account, imap={
        "auth": "oauth2", "oauth2": auth.oauth2_config(), "password_env": None}, **extra)


def spawn(cfg: Path, *args: str) -> pexpect.spawn:
    """``triage auth login`` as its own process (as a person runs it), output on a pty."""
    return pexpect.spawn(sys.executable, ["-m", "mailtriage", "--config", str(cfg), "auth",
                                          "login", *args],
                         env=dict(os.environ), timeout=30, encoding="utf-8")


def finish(child: pexpect.spawn) -> str:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return str(child.before)


def device_login(cfg: Path) -> str:
    """Log in with the device flow, approving the printed code as the person would."""
    child = spawn(cfg)
    child.expect(r"open (\S+) and enter the code (\S+)")
    url, code = child.match.group(1), child.match.group(2)
    with urllib.request.urlopen(f"{url}?user_code={code}", timeout=10) as page:
        assert page.status == 200
    return finish(child)


def browser_login(cfg: Path) -> str:
    """Log in with --browser: fetch the printed URL and follow its redirect to the loopback
    port, as the browser would."""
    child = spawn(cfg, "--browser")
    child.expect(r"(http://\S+/authorize\?\S+)")
    url = child.match.group(1)
    with urllib.request.urlopen(url, timeout=10) as page:  # 302 to http://127.0.0.1:PORT/
        assert page.geturl().startswith("http://127.0.0.1:")
        assert b"done" in page.read()
    return finish(child)


def stored_messages(cfg: Path) -> int:
    import sqlite3

    db = sqlite3.connect(cfg.parent / "state.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        db.close()


def test_device_login_then_sync_refreshes_short_lived_tokens_unattended(
        tmp_path: Path, user: Account, auth_server: AuthServer) -> None:
    auth_server.access_lifetime = 30  # under the one-minute margin: every use refreshes
    cfg = config(tmp_path, user, auth_server)
    put(user, msgid="a1@c.test")
    out = device_login(cfg)
    assert f"logged in as {user.username}" in out
    assert auth_server.grants["urn:ietf:params:oauth:grant-type:device_code"] == 1

    for n in (1, 2, 3):
        put(user, msgid=f"b{n}@c.test")
        before = auth_server.introspections
        result = triage(cfg, "sync", now=NOW + dt.timedelta(minutes=n))
        assert result.exit_code == 0, result.output
        assert auth_server.grants["refresh_token"] == n  # a new access token each time
        assert auth_server.introspections > before  # which Dovecot checked
    assert stored_messages(cfg) == 4

    status = triage(cfg, "auth", "status", "--json")
    assert status.exit_code == 0
    assert '"refresh_token": true' in status.output and user.username in status.output


def test_browser_login_with_pkce_and_the_loopback_redirect(
        tmp_path: Path, user: Account, auth_server: AuthServer) -> None:
    cfg = config(tmp_path, user, auth_server)
    put(user, msgid="c1@c.test")
    browser_login(cfg)
    assert auth_server.grants["authorization_code"] == 1  # the verifier matched the challenge
    for _ in range(2):
        assert triage(cfg, "sync").exit_code == 0
    assert stored_messages(cfg) == 1
    assert auth_server.grants["refresh_token"] == 0  # the cached token had an hour left


def test_a_revoked_login_is_one_line_exit_1_and_not_retried(
        tmp_path: Path, user: Account, auth_server: AuthServer) -> None:
    cfg = config(tmp_path, user, auth_server)
    device_login(cfg)
    assert triage(cfg, "sync").exit_code == 0
    auth_server.revoke_user(user.username)  # the cached access token dies with it

    result = triage(cfg, "sync")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [f"Error: {REFUSED}"]
    assert auth_server.refused == ["invalid_grant"]  # one refresh tried, then no more

    again = triage(cfg, "sync")  # the next cron tick: the same line, still one try
    assert again.exit_code == 1 and REFUSED in again.output
    assert auth_server.refused == ["invalid_grant"] * 2


def test_the_daily_report_says_the_mailbox_could_not_be_read(
        tmp_path: Path, user: Account, auth_server: AuthServer, smtp_server: SMTPServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", smtp_server.password or "")
    cfg = config(tmp_path, user, auth_server, report={"to": ["lead@example.com"]},
                 smtp={"host": smtp_server.host, "port": smtp_server.port, "security": "none",
                       "username": smtp_server.username, "password_env": "TEST_SMTP_PASSWORD"})
    device_login(cfg)
    auth_server.revoke_user(user.username)
    result = triage(cfg, "run")  # 12:00 UTC: the 08:00 report is due
    assert result.exit_code == 1 and REFUSED in result.output
    (report,) = smtp_server.wait_for(1)
    text = report.raw.decode("utf-8", "replace")
    assert "COULD NOT BE READ" in text and "triage auth login --account default" in text


def test_smtp_xoauth2_reuses_the_accounts_login(
        tmp_path: Path, user: Account, auth_server: AuthServer, oauth_smtp: SMTPServer) -> None:
    oauth_smtp.clear()
    cfg = config(tmp_path, user, auth_server, report={"to": ["lead@example.com"]},
                 smtp={"host": oauth_smtp.host, "port": oauth_smtp.port, "security": "none",
                       "username": user.username, "auth": "oauth2"})
    device_login(cfg)
    auth_server.access_lifetime = 30
    assert triage(cfg, "sync").exit_code == 0
    result = triage(cfg, "report", "--send")
    assert result.exit_code == 0, result.output
    (sent,) = oauth_smtp.wait_for(1)
    assert sent.authenticated_as == user.username
    status = triage(cfg, "auth", "status")
    assert status.output.count("account:default") == 1  # one login for both


def test_oauthbearer_and_xoauth2_both_check_the_token(
        tmp_path: Path, user: Account, auth_server: AuthServer) -> None:
    """The test Dovecot really checks tokens: a good one logs in with either mechanism, a
    bad one is refused."""
    import json

    import imapclient
    from imapclient.exceptions import LoginError

    cfg = config(tmp_path, user, auth_server)
    device_login(cfg)
    record = json.loads(token_file(tmp_path / "state.db").read_text())["account:default"]
    for login in ("oauth2_login", "oauthbearer_login"):
        client = imapclient.IMAPClient(user.host, port=user.port, ssl=False)
        getattr(client, login)(user.username, record["access_token"])
        client.logout()
    client = imapclient.IMAPClient(user.host, port=user.port, ssl=False)
    with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.oauth2_login(user.username, "at-not-a-token")
    client.shutdown()


def test_tokens_stay_in_the_0600_file_only(
        tmp_path: Path, user: Account, auth_server: AuthServer) -> None:
    auth_server.access_lifetime = 30
    cfg = config(tmp_path, user, auth_server)
    login_output = device_login(cfg)
    verbose = [triage(cfg, "-vv", "sync"), triage(cfg, "-vv", "run"),
               triage(cfg, "-vv", "auth", "status")]
    assert all(r.exit_code == 0 for r in verbose), [r.output for r in verbose]
    path = token_file(tmp_path / "state.db")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secrets = auth_server.issued_secrets()
    held = path.read_text()
    assert any(s in held for s in secrets)  # (the file is where they are)
    others = [cfg.read_text(), login_output, *(r.output for r in verbose)]
    others += [p.read_bytes().decode("latin-1") for p in tmp_path.iterdir()
               if p.is_file() and p.name.startswith("state.db")]
    leaks = [s for s in secrets for text in others if s in text]
    assert leaks == []
    assert re.search(r"new OAuth2 access token", "".join(r.output for r in verbose))

    out = triage(cfg, "auth", "logout")
    assert out.exit_code == 0 and "logged out" in out.output
    assert not path.exists()
    assert triage(cfg, "sync").output.strip().endswith(
        'not logged in: run "triage auth login --account default"')


def test_token_cmd_still_logs_in_with_xoauth2(
        tmp_path: Path, user: Account, auth_server: AuthServer) -> None:
    """``auth: xoauth2`` + ``token_cmd`` (an outside helper) against the same Dovecot."""
    import json

    login_dir = tmp_path / "login"
    login_dir.mkdir()
    device_login(config(login_dir, user, auth_server))
    record = json.loads(token_file(login_dir / "state.db").read_text())["account:default"]
    helper = tmp_path / "helper-token"
    helper.write_text(record["access_token"] + "\n")
    put(user, msgid="d1@c.test")
    cfg = write_config(tmp_path, user, imap={"auth": "xoauth2", "password_env": None,
                                             "token_cmd": ["cat", str(helper)]})
    assert triage(cfg, "sync").exit_code == 0
    assert stored_messages(cfg) == 1
