"""The few HTTP requests of OAuth2, on the standard library.

The protocol is a handful of form POSTs answered with JSON (RFC 6749, 8628, 7009), so it is
written on urllib, json and ssl rather than with a dependency (requests-oauthlib, authlib,
msal): nothing extra to pin or audit, and every choice visible here.  TLS is verified by
``ssl.create_default_context()``; redirects are refused (a token endpoint that redirects is
not followed to wherever it points); plain http is accepted only to a loopback address (the
tests' authorization server).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from .errors import AuthError, OAuth2Error, SyncError

Clock = Callable[[], float]
Record = dict[str, Any]
TIMEOUT = 30.0


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` may not be sent a secret: only https, or http to a loopback address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return None
        return f"refusing plain http to {host}: use https (http only on a loopback address)"
    return f"expected an https URL, got {url!r}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is then an HTTPError, reported as such


def post_form(url: str, fields: dict[str, str], timeout: float = TIMEOUT) -> dict[str, Any]:
    """POST ``fields`` to ``url``; its JSON answer.  An OAuth2 error answer is
    :class:`OAuth2Error` (with its ``error`` code), an unreachable server SyncError."""
    if problem := endpoint_problem(url):
        raise AuthError(f"OAuth2 endpoint {url}: {problem}")
    host = urllib.parse.urlsplit(url).netloc
    opener = urllib.request.build_opener(
        _NoRedirect, urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(fields).encode(), method="POST",
        headers={"Accept": "application/json",
                 "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(1_000_000)
    except urllib.error.HTTPError as exc:
        answer = _json(exc.read(100_000))
        code = str(answer.get("error") or f"HTTP {exc.code}")
        text = str(answer.get("error_description") or "").splitlines()[:1]
        raise OAuth2Error(f"{host} refused: {code}" + (f" ({text[0][:200]})" if text else ""),
                          code) from None
    except ssl.SSLCertVerificationError as exc:
        raise AuthError(f"{host}: TLS certificate not trusted ({exc.verify_message})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SyncError(f"{host}: cannot reach the authorization server: {reason}") from None
    answer = _json(body)
    if not answer and body.strip():  # an empty answer is fine (revocation's 200)
        raise SyncError(f"{host}: the authorization server's answer is not JSON")
    return answer


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def token_record(answer: dict[str, Any], clock: Clock = time.time,
                 old: Record | None = None) -> Record:
    """What to store from a token endpoint's answer; a refresh answer without a new refresh
    token (Google's) keeps the old one, and the old ``who`` and scopes when none are given."""
    if not isinstance(answer.get("access_token"), str):
        raise AuthError("the token endpoint answered without an access token")
    old = old or {}
    try:
        lifetime = float(answer.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    return {
        "access_token": answer["access_token"],
        "expires_at": clock() + lifetime,
        "refresh_token": answer.get("refresh_token") or old.get("refresh_token"),
        "scope": answer.get("scope") or old.get("scope"),
        "who": _who(answer.get("id_token")) or old.get("who"),
        "obtained_at": old.get("obtained_at") or clock(),
        "refreshed_at": clock(),
    }


def _who(id_token: Any) -> str | None:
    """Who logged in, from an ID token's claims, for ``auth status`` only: it is not
    verified and nothing is decided on it."""
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return None
    part = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict):
        return None
    for name in ("email", "preferred_username", "upn", "sub"):
        if isinstance(claims.get(name), str):
            return str(claims[name])
    return None


