"""``triage auth login`` and ``logout`` as a library: the two ways a person grants access.

* Device authorization (RFC 8628), the default where the provider offers it for mail
  (Microsoft, custom servers): print a URL and a short code, poll at the interval the
  server asks for; the person may log in from any device.
* Authorization code with PKCE (RFC 7636, S256) and a loopback redirect (RFC 8252), with
  ``--browser`` and for Google (whose device flow does not cover the mail scope): a one-shot
  listener on 127.0.0.1 at a random port catches the redirect; ``state`` must match, and the
  code is useless without the verifier that never left this process.

Nothing here prints: ``say`` gets what the person must read (the CLI sends it to stderr).
Sleeps and clocks are parameters, so tests run the flows without waiting.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import secrets
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import MailtriageError, OAuth2Error, UsageError
from .oauth2 import LoginTarget, OAuth2Settings, settings_of, store_for
from .oauthhttp import Clock, Record, post_form, token_record

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
BROWSER_TIMEOUT = 300.0  # seconds the loopback listener waits for the redirect
Say = Callable[[str], None]

if TYPE_CHECKING:
    from .config import Config


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_pair() -> tuple[str, str]:
    """A fresh ``(code_verifier, code_challenge)``: 43 characters of randomness (32 bytes)
    and its S256 challenge, ``BASE64URL(SHA256(verifier))`` (RFC 7636 4.1, 4.2)."""
    verifier = _b64url(secrets.token_bytes(32))
    return verifier, s256(verifier)


def s256(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def device_login(settings: OAuth2Settings, say: Say, *, sleep: Callable[[float], None]
                 = time.sleep, clock: Clock = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> Record:
    """RFC 8628: the tokens once the person has entered the code; OAuth2Error when they
    refused or let the code expire."""
    if not settings.device_authorization_url:
        raise UsageError(f"provider {settings.provider} offers no device login for mail: "
                         "use --browser")
    client = settings.client_fields()
    answer = post_form(settings.device_authorization_url,
                       {**client, "scope": " ".join(settings.scopes)})
    try:
        device_code, user_code = str(answer["device_code"]), str(answer["user_code"])
        uri = str(answer.get("verification_uri") or answer["verification_url"])
    except KeyError as exc:
        raise OAuth2Error(f"the device authorization answer has no {exc.args[0]}") from None
    say(f"To log in, open {uri} and enter the code {user_code}")
    if isinstance(answer.get("verification_uri_complete"), str):
        say(f"(or open {answer['verification_uri_complete']})")
    interval = max(1.0, _number(answer.get("interval"), 5.0))
    deadline = monotonic() + _number(answer.get("expires_in"), 900.0)
    while True:
        sleep(interval)
        if monotonic() > deadline:
            raise OAuth2Error("the code expired before the login was finished; run the "
                              "command again", "expired_token")
        try:
            tokens = post_form(settings.token_url, {**client, "grant_type": DEVICE_GRANT,
                                                    "device_code": device_code})
        except OAuth2Error as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":  # RFC 8628 3.5: 5 seconds more from now on
                interval += 5
                continue
            raise
        return token_record(tokens, clock)


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


class _Listener(http.server.HTTPServer):
    """The loopback end of the redirect: keeps the first answer carrying our ``state``."""

    def __init__(self, state: str):
        super().__init__(("127.0.0.1", 0), _Catch)
        self.state = state
        self.answer: dict[str, str] | None = None


class _Catch(http.server.BaseHTTPRequestHandler):
    server: _Listener

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        ours = secrets.compare_digest(query.get("state", ""), self.server.state) \
            and ("code" in query or "error" in query)
        if ours and self.server.answer is None:
            self.server.answer = query
        body = (b"mailtriage: done, you can close this window.\n" if ours else
                b"mailtriage: not the answer this login is waiting for.\n")
        self.send_response(200 if ours else 400)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the request line holds the code: never logged


def browser_login(settings: OAuth2Settings, say: Say, *, timeout: float = BROWSER_TIMEOUT,
                  clock: Clock = time.time,
                  monotonic: Callable[[], float] = time.monotonic) -> Record:
    """Authorization code with PKCE: print the URL, wait for the redirect, trade the code."""
    if not settings.authorization_url:
        raise UsageError(f"provider {settings.provider} has no authorization_url: log in "
                         "without --browser")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with _Listener(state) as listener:
        redirect = f"http://127.0.0.1:{listener.server_address[1]}/"
        params = {"response_type": "code", "client_id": settings.client_id,
                  "redirect_uri": redirect, "scope": " ".join(settings.scopes),
                  "state": state, "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        if settings.provider == "google":  # else Google gives no refresh token
            params |= {"access_type": "offline", "prompt": "consent"}
        sep = "&" if "?" in settings.authorization_url else "?"
        say("To log in, open this URL in a browser on this machine (it comes back to "
            f"{redirect}):")
        say(settings.authorization_url + sep + urllib.parse.urlencode(params))
        deadline = monotonic() + timeout
        while listener.answer is None:
            left = deadline - monotonic()
            if left <= 0:
                raise OAuth2Error(f"no answer from the browser within {timeout:g} s",
                                  "timeout")
            listener.timeout = left
            listener.handle_request()
        answer = listener.answer
    if "error" in answer:
        raise OAuth2Error(f"the login was refused: {answer['error']}", answer["error"])
    tokens = post_form(settings.token_url, {
        **settings.client_fields(), "grant_type": "authorization_code",
        "code": answer["code"], "redirect_uri": redirect, "code_verifier": verifier})
    return token_record(tokens, clock)


def login(server: LoginTarget, say: Say, *, browser: bool = False,
          **flow: Any) -> Record:
    """Log ``server`` in by the flow that fits and store the result (a new login replaces
    the old one)."""
    settings = settings_of(server)
    use_browser = browser or not settings.device_authorization_url
    record = (browser_login if use_browser else device_login)(settings, say, **flow)
    store_for(server).save(server.token_key, record)
    if not record.get("refresh_token"):
        say("warning: no refresh token was issued (is offline_access among the scopes?): "
            "the login lasts only as long as this access token")
    return record


def logout(server: LoginTarget) -> tuple[bool, str | None]:
    """Forget ``server``'s login; revoke its refresh token where the provider can.
    ``(whether a login was stored, why revoking failed or None)``."""
    store = store_for(server)
    record = store.load(server.token_key)
    if record is None:
        return False, None
    settings = settings_of(server)
    problem = None
    token = record.get("refresh_token") or record.get("access_token")
    if settings.revocation_url and token:
        hint = "refresh_token" if record.get("refresh_token") else "access_token"
        try:
            post_form(settings.revocation_url, {**settings.client_fields(), "token": str(token),
                                                "token_type_hint": hint})
        except MailtriageError as exc:  # forgetting it locally still stands
            problem = str(exc)
    store.delete(server.token_key)
    return True, problem


def logins(config: Config) -> list[LoginTarget]:
    """Every block with a login of its own: the ``auth: oauth2`` accounts, and ``smtp:``
    when it does not share an account's."""
    found: list[LoginTarget] = [a for a in config.accounts if a.auth == "oauth2"]
    if config.smtp is not None and config.smtp.auth == "oauth2" \
            and config.smtp.token_key == "smtp":
        found.append(config.smtp)
    return found


def status(server: LoginTarget, clock: Clock = time.time) -> dict[str, Any]:
    """What ``triage auth status`` shows of one login: never a token."""
    store = store_for(server)
    record = store.load(server.token_key) or {}
    settings = settings_of(server)
    expires = record.get("expires_at")
    return {
        "login": server.token_key, "provider": settings.provider,
        "username": server.username, "who": record.get("who"),
        "logged_in": bool(record), "refresh_token": bool(record.get("refresh_token")),
        "scopes": str(record.get("scope") or " ".join(settings.scopes)).split(),
        "access_expires_at": _iso(expires) if isinstance(expires, int | float) else None,
        "access_valid": isinstance(expires, int | float) and expires > clock(),
        "stored": store.where,
    }


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")
