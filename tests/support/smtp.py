"""A real SMTP server (aiosmtpd in a thread) that records what it accepts and fails on request.

Plain Python on purpose (no pytest imports), like the rest of `support`.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from support.certs import TestPKI
from support.net import DEFAULT_PASSWORD, DEFAULT_USER, free_port


@dataclass
class ReceivedMessage:
    """One message accepted by `SMTPServer`, as the envelope and raw bytes it arrived with."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    authenticated_as: str | None = None
    tls: bool = False


@dataclass
class _Failure:
    remaining: int
    code: int
    text: str
    at: str


class _Handler:
    """aiosmtpd handler: records accepted messages and injects scripted failures."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    def _maybe_fail(self, stage: str) -> str | None:
        with self.server._lock:
            failure = self.server._failure
            if failure is None or failure.at != stage or failure.remaining <= 0:
                return None
            failure.remaining -= 1
            if failure.remaining == 0:
                self.server._failure = None
            self.server.failed_attempts += 1
            return f"{failure.code} {failure.text}"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        """AUTH XOAUTH2 (offered only with `SMTPServer.bearer_check`): the initial response is
        base64 of ``user=U^Aauth=Bearer T^A^A``; the token is checked by the test's
        authorization server, as Dovecot checks IMAP's."""
        from aiosmtpd.smtp import AuthResult

        check = self.server.bearer_check
        if check is None or len(args) != 2:
            return AuthResult(success=False)
        try:
            fields = dict(
                part.split("=", 1)
                for part in base64.b64decode(args[1], validate=True).decode().split("\x01")
                if part
            )
        except ValueError:
            return AuthResult(success=False)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        ok = bool(user and token) and check(user, token)
        return AuthResult(success=ok, auth_data=user.encode() if ok else None)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.server.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        failed = self._maybe_fail("mail")
        if failed:
            return failed
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        failed = self._maybe_fail("rcpt")
        if failed:
            return failed
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        failed = self._maybe_fail("data")
        if failed:
            return failed
        login = session.auth_data
        user = login.decode() if isinstance(login, bytes) else None
        received = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=bytes(envelope.original_content or envelope.content),
            authenticated_as=user,
            tls=session.ssl is not None or self.server.security == "ssl",
        )
        with self.server._lock:
            self.server.messages.append(received)
            self.server._received.notify_all()
        return "250 OK: queued"


@dataclass
class SMTPServer:
    """A real SMTP server (aiosmtpd) on a free localhost port, run in a background thread.

    `security`: "none" (plain; AUTH allowed without TLS -- tests only), "starttls" (STARTTLS
    offered; AUTH only after it) or "ssl" (implicit TLS). With `username`, AUTH PLAIN/LOGIN is
    required before MAIL.
    """

    security: str = "none"
    username: str | None = DEFAULT_USER
    password: str | None = DEFAULT_PASSWORD
    pki: TestPKI | None = None
    require_starttls: bool = False
    # with it, AUTH XOAUTH2 is offered too: (user, bearer token) -> valid?
    bearer_check: Callable[[str, str], bool] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[ReceivedMessage] = field(default_factory=list)
    failed_attempts: int = 0

    def __post_init__(self) -> None:
        if self.security not in ("none", "starttls", "ssl"):
            raise ValueError(f"security must be none, starttls or ssl, not {self.security!r}")
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._failure: _Failure | None = None
        self._controller: Any = None
        self._tmpdir: str | None = None

    @property
    def ca_file(self) -> str:
        if self.pki is None:
            raise RuntimeError("SMTPServer is not started")
        return str(self.pki.ca_file)

    @property
    def use_ssl(self) -> bool:
        return self.security == "ssl"

    def credentials(self) -> tuple[str, str]:
        """(username, password) for `smtplib.SMTP.login`; only for a server that requires AUTH."""
        if self.username is None or self.password is None:
            raise RuntimeError("this SMTPServer accepts mail without AUTH")
        return self.username, self.password

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (
            auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    def start(self) -> Self:
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            return self
        if self.pki is None:
            self._tmpdir = tempfile.mkdtemp(prefix="mailtriage-smtp-")
            self.pki = TestPKI(self._tmpdir)
        kwargs: dict[str, Any] = {}
        if self.security == "starttls":
            kwargs["tls_context"] = self.pki.server_context()
            kwargs["require_starttls"] = self.require_starttls
            kwargs["auth_require_tls"] = True
        else:
            # Implicit TLS never sets aiosmtpd's STARTTLS state, so it must not demand it.
            kwargs["auth_require_tls"] = False
        if self.bearer_check is None:
            kwargs["auth_exclude_mechanism"] = ["XOAUTH2"]
        if self.username is not None:
            # AUTH is enforced in the handler's MAIL hook rather than with aiosmtpd's
            # auth_required, which warns on every connection when AUTH may go without TLS.
            kwargs["authenticator"] = self._authenticate
        ssl_context = self.pki.server_context() if self.security == "ssl" else None
        last_error: Exception | None = None
        for _attempt in range(3):
            port = self.port or free_port(self.host)
            controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=port,
                ssl_context=ssl_context,
                server_hostname="mailtriage-test-smtp",
                ready_timeout=10,
                **kwargs,
            )
            try:
                controller.start()
            except Exception as exc:  # port stolen between probe and bind: try another
                last_error = exc
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"SMTP server did not start: {last_error}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------

    def fail_next(
        self, count: int = 1, code: int = 451, text: str = "4.3.0 Try again later", at: str = "data"
    ) -> None:
        """Reject the next `count` transactions with `code` at MAIL, RCPT or DATA (`at`)."""
        if at not in ("mail", "rcpt", "data"):
            raise ValueError("at must be mail, rcpt or data")
        with self._lock:
            self._failure = _Failure(count, code, text, at) if count > 0 else None

    def clear(self) -> None:
        """Forget received messages and pending failures (for sharing one server across tests)."""
        with self._lock:
            self.messages.clear()
            self._failure = None
            self.failed_attempts = 0

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; returns a snapshot."""
        with self._received:
            self._received.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def smtp_client(self, login: bool = True) -> Any:
        """An `smtplib` client connected (and TLS-upgraded/logged in) as configured."""
        import smtplib

        ctx = self.pki.client_context() if self.pki else None
        client: smtplib.SMTP
        if self.security == "ssl":
            client = smtplib.SMTP_SSL(self.host, self.port, context=ctx, timeout=10)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=10)
            if self.security == "starttls":
                client.starttls(context=ctx)
        if login and self.username is not None and self.password is not None:
            client.login(self.username, self.password)
        return client
