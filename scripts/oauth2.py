"""OAuth2 for IMAP and SMTP (``auth: oauth2``): provider presets, the ``oauth2:`` block, and
a fresh access token for every connection, unattended.

Expiry is measured by the real clock (``time.time``), never by ``--now``: the provider
issued the token against real time.  Functions take ``clock`` so tests need not sleep.
The requests are in :mod:`oauthhttp`, the interactive flows (``triage auth login``) in
:mod:`oauthflow`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import AuthError, ConfigError, OAuth2Error
from .oauthhttp import endpoint_problem, post_form, token_record
from .tokenstore import Record, TokenStore, open_store
from .validate import Section

if TYPE_CHECKING:
    from .config import AccountConfig, Config
    from .credentials import Secret

log = logging.getLogger(__name__)

Clock = Callable[[], float]
REFRESH_MARGIN = 60.0  # seconds: a token this close to expiry is replaced before use
_MS = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"


@dataclass(frozen=True)
class Preset:
    authorization_url: str
    token_url: str
    scopes: tuple[str, ...]
    device_authorization_url: str | None = None  # None: no device flow for the mail scopes
    revocation_url: str | None = None


PRESETS = {
    # Google's device flow does not allow the mail scope: the browser flow only.
    "google": Preset(
        authorization_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        scopes=("https://mail.google.com/",),
        revocation_url="https://oauth2.googleapis.com/revoke",
    ),
    "microsoft": Preset(
        authorization_url=_MS + "/authorize",
        token_url=_MS + "/token",
        device_authorization_url=_MS + "/devicecode",
        scopes=("https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send", "offline_access"),
    ),
}
ENDPOINTS = ("device_authorization_url", "authorization_url", "token_url", "revocation_url")


@dataclass
class OAuth2Settings:
    """One ``oauth2:`` block, presets filled in."""

    provider: str
    client_id: str
    scopes: list[str]
    token_url: str
    authorization_url: str | None = None
    device_authorization_url: str | None = None
    revocation_url: str | None = None
    tenant: str | None = None
    client_secret_env: str | None = None
    client_secret_cmd: list[str] | None = None
    # what resolving client_secret_cmd needs (credentials.RunsCommands)
    config_file: str = "config"
    key_prefix: str = "imap.oauth2"
    command_env: list[str] = field(default_factory=list)

    @property
    def same_login(self) -> tuple[str, str, str]:
        """What makes two blocks share one login (SMTP reusing an account's token)."""
        return (self.provider, self.client_id, self.token_url)

    def client_fields(self) -> dict[str, str]:
        """``client_id`` and, for a confidential client, ``client_secret`` for a request."""
        fields = {"client_id": self.client_id}
        if self.client_secret_env or self.client_secret_cmd:
            from .credentials import from_env_or_cmd

            fields["client_secret"] = from_env_or_cmd(self, "client_secret",
                                                      self.client_secret_env,
                                                      self.client_secret_cmd)
        return fields


class LoginTarget(Protocol):
    """What logs in with OAuth2: an IMAP account or the SMTP block (config.ServerConfig)."""

    config_file: str
    key_prefix: str
    username: str
    auth: str
    oauth2: OAuth2Settings | None
    token_db: Path | None
    token_key: str
    command_env: list[str]


def read_oauth2(section: Section, server: LoginTarget) -> OAuth2Settings | None:
    """The ``oauth2:`` mapping of a server block (None for SMTP reusing an account's)."""
    if server.auth != "oauth2":
        raise section.error("oauth2", "only with auth: oauth2")
    if not section.has("oauth2"):
        if server.key_prefix == "smtp":
            return None
        raise section.error("oauth2", "missing (required with auth: oauth2)")
    sec = section.section("oauth2")
    provider = sec.get("provider", str, required=True)
    if provider not in (*PRESETS, "custom"):
        raise sec.error("provider", f"expected google, microsoft or custom, got {provider!r}")
    preset = PRESETS.get(provider)
    tenant = sec.get("tenant", str)
    if tenant is not None and provider != "microsoft":
        raise sec.error("tenant", "only with provider: microsoft")
    tenant = tenant or "common"
    urls = _endpoints(sec, preset, tenant)
    if not urls["token_url"]:
        raise sec.error("token_url", "missing (required with provider: custom)")
    if not (urls["authorization_url"] or urls["device_authorization_url"]):
        raise sec.error("device_authorization_url",
                        "missing: set device_authorization_url or authorization_url")
    settings = OAuth2Settings(
        provider=provider, client_id=sec.get("client_id", str, required=True),
        scopes=sec.str_list("scopes", list(preset.scopes) if preset else None),
        token_url=str(urls["token_url"]), authorization_url=urls["authorization_url"],
        device_authorization_url=urls["device_authorization_url"],
        revocation_url=urls["revocation_url"],
        tenant=tenant if provider == "microsoft" else None,
        client_secret_env=sec.get("client_secret_env", str),
        client_secret_cmd=sec.command("client_secret_cmd"),
        config_file=sec.file, key_prefix=sec.key, command_env=server.command_env)
    if not settings.scopes:
        raise sec.error("scopes", "missing: the scopes to ask for")
    sec.reject_unknown()
    return settings


def _endpoints(sec: Section, preset: Preset | None, tenant: str) -> dict[str, str | None]:
    """The URLs, each as configured or from the preset (``{tenant}`` filled in)."""
    urls: dict[str, str | None] = {}
    for key in ENDPOINTS:
        default = getattr(preset, key) if preset else None
        value = sec.get(key, str) or (default.format(tenant=tenant) if default else None)
        if value and (problem := endpoint_problem(value)):
            raise sec.error(key, problem)
        urls[key] = value
    return urls


def bind_logins(config: Config) -> None:
    """Say where each ``auth: oauth2`` block's login is stored: per account, and for SMTP
    the account's own when it is the same provider and client (one login, one token)."""
    logins = [a for a in config.accounts if a.auth == "oauth2"]
    for account in logins:
        account.token_db, account.token_key = config.db_path, f"account:{account.name}"
    smtp = config.smtp
    if smtp is None or smtp.auth != "oauth2":
        return
    smtp.token_db = config.db_path
    same: AccountConfig | None
    if smtp.oauth2 is None:
        if not logins:
            raise ConfigError(config.path, "smtp.oauth2",
                              "missing: no account logs in with OAuth2 to share its login")
        same = logins[0]
    else:
        want = smtp.oauth2.same_login
        same = next((a for a in logins if a.oauth2 and a.oauth2.same_login == want), None)
    if same is None:
        smtp.token_key = "smtp"
    else:
        smtp.oauth2, smtp.token_key = same.oauth2, same.token_key


def login_command(server: LoginTarget) -> str:
    """The command that logs ``server`` in again."""
    if server.token_key.startswith("account:"):
        return f'triage auth login --account {server.token_key.partition(":")[2]}'
    return "triage auth login --smtp"


def refused(server: LoginTarget, what: str = "login refused") -> AuthError:
    """The one line for a login only a person can repair (exit 1, never retried)."""
    return AuthError(f'{what}: run "{login_command(server)}"')


# -- the token for a connection --------------------------------------------------------------

def store_for(server: LoginTarget) -> TokenStore:
    if server.token_db is None:
        raise AuthError(f"{server.key_prefix}: OAuth2 login has no token store")
    return open_store(server.token_db)


def settings_of(server: LoginTarget) -> OAuth2Settings:
    if server.oauth2 is None:
        raise ConfigError(server.config_file, f"{server.key_prefix}.oauth2", "missing")
    return server.oauth2


def refresh(server: LoginTarget, store: TokenStore, record: Record,
            clock: Clock = time.time) -> Record:
    """A new access token from the stored refresh token, saved before it is used.  A refused
    refresh token (revoked, expired, the password changed) is the one line of
    :func:`refused` -- unless another process refreshed (and rotated) it meanwhile."""
    settings = settings_of(server)
    if not record.get("refresh_token"):
        raise refused(server, "access token expired and no refresh token")
    fields = {"grant_type": "refresh_token", "refresh_token": str(record["refresh_token"]),
              **settings.client_fields()}
    try:
        answer = post_form(settings.token_url, fields)
    except OAuth2Error as exc:
        current = store.load(server.token_key)
        if current and current.get("refresh_token") != record.get("refresh_token") \
                and float(current.get("expires_at", 0)) - clock() > REFRESH_MARGIN:
            return current
        if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
            raise refused(server) from None
        raise
    new = token_record(answer, clock, old=record)
    store.save(server.token_key, new)
    log.info("%s: new OAuth2 access token, valid %d s", server.key_prefix,
             int(new["expires_at"] - clock()))
    return new


def access_token(server: LoginTarget, clock: Clock = time.time,
                 force: bool = False) -> tuple[Secret, bool]:
    """The access token to log in with, and whether it came fresh from the token endpoint.
    The cached one is used while it has more than :data:`REFRESH_MARGIN` left (or unless
    ``force``: the server just refused it)."""
    from .credentials import Secret

    store = store_for(server)
    record = store.load(server.token_key)
    if record is None:
        raise refused(server, "not logged in")
    fresh = False
    if force or not record.get("access_token") \
            or float(record.get("expires_at", 0)) - clock() <= REFRESH_MARGIN:
        record, fresh = refresh(server, store, record, clock), True
    return Secret(str(record["access_token"])), fresh
