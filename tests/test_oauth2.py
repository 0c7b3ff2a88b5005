"""OAuth2 without a mail server: PKCE, the ``oauth2:`` block, the token cache and its expiry,
the token file, the browser flow's ``state`` check.  The authorization server is the real
test one (tests/support/oauth_server.py); clocks are injected, nothing sleeps."""

from __future__ import annotations

import re
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailtriage import oauthflow
from mailtriage.config import load_config
from mailtriage.errors import AuthError, ConfigError, UnsafePath
from mailtriage.oauth2 import PRESETS, access_token
from mailtriage.oauthhttp import endpoint_problem, token_record
from mailtriage.tokenstore import KEYRING_SERVICE, FileStore, KeyringStore, open_store, token_file

from support.cli import triage
from support.oauth_server import AuthServer

TEAM = {"addresses": ["support@example.com"]}


@pytest.fixture
def auth() -> Iterator[AuthServer]:
    with AuthServer() as server:
        yield server


def write(tmp_path: Path, imap: dict[str, Any], **extra: Any) -> Path:
    data = {"imap": {"host": "127.0.0.1", "port": 1143, "security": "none",
                     "username": "support@example.com", **imap}, "team": TEAM, **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problem(tmp_path: Path, imap: dict[str, Any], **extra: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, imap, **extra))
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- PKCE ------------------------------------------------------------------------------------

def test_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    # RFC 7636, appendix B
    assert oauthflow.s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier, challenge = oauthflow.pkce_pair()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", verifier)
    assert challenge == oauthflow.s256(verifier)
    assert oauthflow.pkce_pair()[0] != verifier


# -- the oauth2: block -----------------------------------------------------------------------

def test_presets_fill_in_microsoft_and_google(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {"auth": "oauth2", "oauth2": {
        "provider": "microsoft", "client_id": "abc", "tenant": "example.com"}}))
    ms = cfg.accounts[0].oauth2
    assert ms is not None
    assert ms.token_url == "https://login.microsoftonline.com/example.com/oauth2/v2.0/token"
    assert ms.device_authorization_url and ms.device_authorization_url.endswith("/devicecode")
    assert ms.scopes == list(PRESETS["microsoft"].scopes)
    assert cfg.accounts[0].token_key == "account:default"
    assert cfg.accounts[0].token_db == tmp_path / "state.db"
    google = load_config(write(tmp_path, {"auth": "oauth2", "oauth2": {
        "provider": "google", "client_id": "abc"}})).accounts[0].oauth2
    assert google is not None and google.device_authorization_url is None  # browser only
    assert google.scopes == ["https://mail.google.com/"]


@pytest.mark.parametrize(("imap", "expected"), [
    ({"auth": "oauth2"}, "imap.oauth2: missing (required with auth: oauth2)"),
    ({"auth": "login", "password_env": "X", "oauth2": {"provider": "google"}},
     "imap.oauth2: only with auth: oauth2"),
    ({"auth": "oauth2", "oauth2": {"provider": "yahoo", "client_id": "a"}},
     "imap.oauth2.provider: expected google, microsoft or custom, got 'yahoo'"),
    ({"auth": "oauth2", "oauth2": {"provider": "google"}},
     "imap.oauth2.client_id: missing (required)"),
    ({"auth": "oauth2", "oauth2": {"provider": "google", "client_id": "a", "tenant": "x"}},
     "imap.oauth2.tenant: only with provider: microsoft"),
    ({"auth": "oauth2", "oauth2": {"provider": "custom", "client_id": "a"}},
     "imap.oauth2.token_url: missing (required with provider: custom)"),
    ({"auth": "oauth2", "oauth2": {"provider": "custom", "client_id": "a",
                                   "token_url": "http://auth.example.com/token"}},
     "imap.oauth2.token_url: refusing plain http to auth.example.com"),
    ({"auth": "oauth2", "oauth2": {"provider": "google", "client_id": "a", "client_sekret": 1}},
     "imap.oauth2.client_sekret: unknown key"),
])
def test_config_errors_are_one_line_naming_the_key(tmp_path: Path, imap: dict[str, Any],
                                                   expected: str) -> None:
    assert expected in problem(tmp_path, imap)


def test_smtp_shares_the_accounts_login_when_the_provider_is_the_same(tmp_path: Path) -> None:
    imap = {"auth": "oauth2", "oauth2": {"provider": "microsoft", "client_id": "abc"}}
    smtp = {"host": "smtp.office365.com", "security": "starttls", "auth": "oauth2",
            "username": "support@example.com"}
    shared = load_config(write(tmp_path, imap, smtp=smtp)).smtp
    assert shared is not None and shared.token_key == "account:default"
    same = load_config(write(tmp_path, imap, smtp={**smtp, "oauth2": imap["oauth2"]})).smtp
    assert same is not None and same.token_key == "account:default"
    other = {"provider": "microsoft", "client_id": "another"}
    own = load_config(write(tmp_path, imap, smtp={**smtp, "oauth2": other})).smtp
    assert own is not None and own.token_key == "smtp"
    assert "smtp.oauth2: missing: no account logs in with OAuth2" in problem(
        tmp_path, {"password_env": "P"}, smtp=smtp)


def test_endpoints_must_be_https_except_on_loopback() -> None:
    assert endpoint_problem("https://login.example.com/token") is None
    assert endpoint_problem("http://127.0.0.1:8080/token") is None
    assert endpoint_problem("http://localhost/token") is None
    assert "plain http" in str(endpoint_problem("http://10.0.0.1/token"))
    assert "https URL" in str(endpoint_problem("ftp://example.com/"))


# -- the token cache -------------------------------------------------------------------------

def logged_in(tmp_path: Path, auth: AuthServer) -> Any:
    """An account logged in by the device flow: the injected sleep plays the person."""
    account = load_config(write(tmp_path, {"auth": "oauth2",
                                           "oauth2": auth.oauth2_config()})).accounts[0]
    said: list[str] = []

    def approve(_seconds: float) -> None:
        code = re.search(r"enter the code (\S+)", " ".join(said))
        assert code is not None
        auth.approve(code.group(1))

    oauthflow.login(account, said.append, sleep=approve)
    return account


def test_the_cached_token_is_used_until_a_minute_before_it_expires(
        tmp_path: Path, auth: AuthServer) -> None:
    account = logged_in(tmp_path, auth)
    first, fresh = access_token(account)
    assert not fresh and auth.grants["refresh_token"] == 0
    almost = time.time() + 3600 - 61
    assert access_token(account, clock=lambda: almost) == (first, False)
    due = time.time() + 3600 - 59  # within the minute: replaced before it is used
    second, fresh = access_token(account, clock=lambda: due)
    assert fresh and second != first and auth.grants["refresh_token"] == 1
    assert access_token(account, clock=lambda: due) == (second, False)  # saved, reused


def test_a_rotated_refresh_token_is_saved_and_a_revoked_one_is_one_line(
        tmp_path: Path, auth: AuthServer) -> None:
    account = logged_in(tmp_path, auth)
    store = open_store(tmp_path / "state.db")
    old = store.load("account:default")
    assert old is not None
    access_token(account, force=True)
    new = store.load("account:default")
    assert new is not None and new["refresh_token"] != old["refresh_token"]
    auth.revoke(new["refresh_token"])
    with pytest.raises(AuthError) as caught:
        access_token(account, force=True)
    assert str(caught.value) == 'login refused: run "triage auth login --account default"'
    assert auth.refused == ["invalid_grant"]


def test_a_refresh_answer_without_a_refresh_token_keeps_the_old_one() -> None:
    old = {"refresh_token": "rt-1", "scope": "mail", "who": "ann@example.com",
           "obtained_at": 5.0}
    new = token_record({"access_token": "at-2", "expires_in": 100}, lambda: 1000.0, old)
    assert new["refresh_token"] == "rt-1" and new["expires_at"] == 1100.0
    assert new["who"] == "ann@example.com" and new["obtained_at"] == 5.0


def test_the_token_file_is_private_and_refused_when_others_can_write_it(
        tmp_path: Path) -> None:
    path = token_file(tmp_path / "state.db")
    assert path == tmp_path / "state-oauth2.json"
    store = FileStore(path)
    store.save("account:a", {"refresh_token": "rt-x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load("account:a") == {"refresh_token": "rt-x"}
    path.chmod(0o620)
    with pytest.raises(UnsafePath):
        store.load("account:a")
    path.chmod(0o600)
    assert store.delete("account:a") and not path.exists()


class MemoryKeyring:
    """The three calls of the ``keyring`` API, in memory (the package is optional and not
    installed for the tests; a real backend needs a desktop session)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, name: str) -> str | None:
        return self.entries.get((service, name))

    def set_password(self, service: str, name: str, value: str) -> None:
        self.entries[(service, name)] = value

    def delete_password(self, service: str, name: str) -> None:
        del self.entries[(service, name)]


def test_the_keyring_store_keys_each_login_by_its_database(tmp_path: Path) -> None:
    ring = MemoryKeyring()
    one = KeyringStore(ring, str(tmp_path / "a.db"))
    two = KeyringStore(ring, str(tmp_path / "b.db"))
    one.save("account:default", {"refresh_token": "rt-1"})
    assert two.load("account:default") is None  # another config's "default" is not this one
    assert one.load("account:default") == {"refresh_token": "rt-1"}
    assert [service for service, _name in ring.entries] == [KEYRING_SERVICE]
    assert one.delete("account:default") and not ring.entries
    assert "keyring" in one.where


# -- the browser flow ------------------------------------------------------------------------

def test_the_loopback_listener_ignores_an_answer_with_another_state(
        tmp_path: Path, auth: AuthServer) -> None:
    account = load_config(write(tmp_path, {"auth": "oauth2",
                                           "oauth2": auth.oauth2_config()})).accounts[0]
    statuses: list[int] = []
    browsers: list[threading.Thread] = []

    def browser(url: str) -> None:
        redirect = re.search(r"redirect_uri=([^&]+)", url)
        assert redirect is not None
        loopback = urllib.parse.unquote(redirect.group(1))
        try:  # a forged answer first: refused, and the login keeps waiting
            urllib.request.urlopen(f"{loopback}?code=stolen&state=forged", timeout=10)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
        with urllib.request.urlopen(url, timeout=10) as page:
            statuses.append(page.status)

    def say(line: str) -> None:
        if line.startswith("http"):
            browsers.append(threading.Thread(target=browser, args=(line,)))
            browsers[-1].start()

    record = oauthflow.login(account, say, browser=True, timeout=20)
    for thread in browsers:
        thread.join(10)
    assert statuses == [400, 200]
    assert record["refresh_token"] and auth.grants["authorization_code"] == 1


# -- the commands ----------------------------------------------------------------------------

def test_auth_commands_without_a_login(tmp_path: Path, auth: AuthServer) -> None:
    cfg = write(tmp_path, {"auth": "oauth2", "oauth2": auth.oauth2_config()})
    status = triage(cfg, "auth", "status")
    assert status.exit_code == 0 and "not logged in" in status.output
    out = triage(cfg, "auth", "logout")
    assert out.exit_code == 0 and "not logged in" in out.output
    plain = write(tmp_path, {"password_env": "P"})
    refused = triage(plain, "auth", "login")
    assert refused.exit_code == 2 and "no account in" in refused.output
    assert triage(plain, "auth", "login", "--account", "nope").exit_code == 2
