"""A small OAuth2 authorization server on 127.0.0.1 (stdlib http.server in a thread).

What mailtriage and the test Dovecot talk to instead of Google or Microsoft: device
authorization (RFC 8628), authorization code with PKCE S256 and a loopback redirect,
the refresh grant (rotating refresh tokens, as Microsoft does), introspection (RFC 7662,
what Dovecot's ``oauth2`` passdb asks) and revocation (RFC 7009).  Access tokens live
``access_lifetime`` seconds of real time, so short-lived tokens need no sleeping: a
lifetime under mailtriage's one-minute margin makes every connection refresh.

Plain Python on purpose (no pytest imports), like the rest of `support`.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from support.net import DEFAULT_USER, LOCALHOST

CLIENT_ID = "mailtriage-test-client"


@dataclass
class _Refresh:
    user: str
    scope: str
    active: bool = True


@dataclass
class _Access:
    user: str
    scope: str
    refresh: str | None
    expires_at: float
    active: bool = True


@dataclass
class _Device:
    user_code: str
    scope: str
    user: str | None = None  # set when the person approved


@dataclass
class _Code:
    user: str
    scope: str
    challenge: str
    redirect_uri: str


@dataclass
class AuthServer:
    """The authorization server; ``login_as`` is who the test's "browser" is logged in as."""

    access_lifetime: float = 3600.0
    login_as: str = DEFAULT_USER
    client_id: str = CLIENT_ID
    host: str = LOCALHOST
    port: int = 0
    grants: Counter[str] = field(default_factory=Counter)  # grant_type -> requests granted
    introspections: int = 0
    refused: list[str] = field(default_factory=list)  # the error codes answered

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._refresh: dict[str, _Refresh] = {}
        self._access: dict[str, _Access] = {}
        self._devices: dict[str, _Device] = {}
        self._codes: dict[str, _Code] = {}
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"auth": self})
        self._httpd = http.server.ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="oauth-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def oauth2_config(self, **extra: Any) -> dict[str, Any]:
        """The ``oauth2:`` block of a config pointing at this server."""
        return {"provider": "custom", "client_id": self.client_id,
                "device_authorization_url": self.url("/device_authorization"),
                "authorization_url": self.url("/authorize"), "token_url": self.url("/token"),
                "revocation_url": self.url("/revoke"), "scopes": ["mail", "offline_access"],
                **extra}

    # -- what a person or an administrator does -------------------------------------------

    def approve(self, user_code: str, user: str | None = None) -> bool:
        with self._lock:
            for device in self._devices.values():
                if device.user_code == user_code and device.user is None:
                    device.user = user or self.login_as
                    return True
        return False

    def revoke_user(self, user: str) -> None:
        """What an administrator's "revoke sessions" does: every token of ``user`` dies."""
        with self._lock:
            tokens: list[_Refresh | _Access] = [*self._refresh.values(), *self._access.values()]
            for token in tokens:
                if token.user == user:
                    token.active = False

    def bearer_ok(self, user: str, token: str) -> bool:
        """Whether ``token`` is a live access token for ``user`` (the test SMTP server's
        XOAUTH2 check, the same rule as Dovecot's introspection)."""
        info = self.introspect(token)
        return bool(info["active"]) and info.get("email") == user

    def issued_secrets(self) -> list[str]:
        """Every token and code handed out (to prove none of them leaked anywhere)."""
        with self._lock:
            return [*self._refresh, *self._access, *self._codes]

    # -- the endpoints ----------------------------------------------------------------------

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            self.introspections += 1
            access = self._access.get(token)
            if access is None or not access.active or access.expires_at <= time.time():
                return {"active": False}
            return {"active": True, "email": access.user, "scope": access.scope,
                    "client_id": self.client_id, "exp": int(access.expires_at)}

    def _issue(self, user: str, scope: str, refresh: str | None = None) -> dict[str, Any]:
        """New tokens (caller holds the lock); a refresh rotates the refresh token."""
        if refresh is not None:
            self._refresh[refresh].active = False
        new_refresh = "rt-" + secrets.token_urlsafe(24)
        self._refresh[new_refresh] = _Refresh(user, scope)
        access = "at-" + secrets.token_urlsafe(24)
        self._access[access] = _Access(user, scope, new_refresh,
                                       time.time() + self.access_lifetime)
        claims = base64.urlsafe_b64encode(json.dumps({"email": user}).encode()).rstrip(b"=")
        return {"access_token": access, "token_type": "Bearer", "refresh_token": new_refresh,
                "expires_in": self.access_lifetime, "scope": scope,
                "id_token": f"e30.{claims.decode()}.sig"}

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        kind = form.get("grant_type", "")
        with self._lock:
            answer = self._grant(kind, form)
            if "error" in answer:
                self.refused.append(answer["error"])
                return 400, answer
            self.grants[kind] += 1
            return 200, answer

    def _grant(self, kind: str, form: dict[str, str]) -> dict[str, Any]:
        if kind == "refresh_token":
            old = self._refresh.get(form.get("refresh_token", ""))
            if old is None or not old.active:
                return {"error": "invalid_grant", "error_description": "refresh token revoked"}
            return self._issue(old.user, old.scope, form["refresh_token"])
        if kind == "urn:ietf:params:oauth:grant-type:device_code":
            device = self._devices.get(form.get("device_code", ""))
            if device is None:
                return {"error": "expired_token"}
            if device.user is None:
                return {"error": "authorization_pending"}
            del self._devices[form["device_code"]]
            return self._issue(device.user, device.scope)
        if kind == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if code is None or code.redirect_uri != form.get("redirect_uri") \
                    or _s256(verifier) != code.challenge:
                return {"error": "invalid_grant", "error_description": "bad code or verifier"}
            return self._issue(code.user, code.scope)
        return {"error": "unsupported_grant_type"}

    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        device_code = secrets.token_urlsafe(24)
        user_code = secrets.token_hex(4).upper()
        with self._lock:
            self._devices[device_code] = _Device(user_code, form.get("scope", ""))
        return 200, {"device_code": device_code, "user_code": user_code,
                     "verification_uri": self.url("/device"), "expires_in": 600,
                     "interval": 1}

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """The browser's visit: ``(status, where to redirect or why not)``."""
        redirect = query.get("redirect_uri", "")
        parts = urllib.parse.urlsplit(redirect)
        if query.get("client_id") != self.client_id or parts.scheme != "http" \
                or parts.hostname != "127.0.0.1" or not parts.port:
            return 400, "bad client or redirect_uri"
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256" \
                or not query.get("code_challenge"):
            return 400, "PKCE S256 required"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(self.login_as, query.get("scope", ""),
                                      query["code_challenge"], redirect)
        params = urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
        return 302, f"{redirect}?{params}"

    def revoke(self, token: str) -> None:
        with self._lock:
            if token in self._refresh:
                self._refresh[token].active = False
                for access in self._access.values():
                    if access.refresh == token:
                        access.active = False
            elif token in self._access:
                self._access[token].active = False


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class _Handler(http.server.BaseHTTPRequestHandler):
    auth: AuthServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: dict[str, Any] | str | None = None,
               location: str | None = None) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body or "").encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict)
                         else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

    def do_GET(self) -> None:  # noqa: N802
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/authorize":
            status, where = self.auth.authorize(query)
            self._reply(status, location=where) if status == 302 else self._reply(status, where)
        elif parts.path == "/device":
            ok = self.auth.approve(query.get("user_code", ""), query.get("user"))
            self._reply(200 if ok else 404, "approved" if ok else "no such code")
        else:
            self._reply(404, "not found")

    def do_POST(self) -> None:  # noqa: N802
        form = self._form()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token":
            self._reply(*self.auth.token(form))
        elif path == "/device_authorization":
            self._reply(*self.auth.device_authorization(form))
        elif path == "/introspect":
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            self._reply(200, self.auth.introspect(form.get("token") or bearer))
        elif path == "/revoke":
            self.auth.revoke(form.get("token", ""))
            self._reply(200)
        else:
            self._reply(404, "not found")
