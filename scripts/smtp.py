"""SMTP: verified TLS, a password or an OAuth2 token, and an honest account of each delivery.

``auth: oauth2`` uses the account's login when it is the same provider and client
(oauth2.bind_logins), so one ``triage auth login`` covers reading and sending.

``security``: ``ssl`` (implicit TLS, port 465), ``starttls`` (587) or ``none`` (loopback or
``allow_insecure`` only; config.py enforces that).  TLS is always verified, against the
system store plus ``ca_file`` for a private CA.  Errors are one line that names the server
and never the password.

A delivery ends in one of three ways, and the outbox (outbox.py) needs to know which:

* accepted: the server said 250 after the message (some recipients may have been refused);
* :class:`NotSent`: the server certainly does not have it (it refused, or the connection
  failed before the final ``.`` was sent); ``permanent`` for a 5xx answer;
* :class:`DeliveryUnknown`: the whole message went out but no answer came back (the
  connection dropped, or the answer took longer than ``timeout``).  The server may have it.

The DATA step is written out here instead of calling ``smtplib.SMTP.data``, which raises
the same exception whether the connection broke before or after the final ``.``.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from types import TracebackType

from . import credentials
from .config import SMTPConfig
from .errors import AuthError, ConfigError, DeliveryUnknown, NotSent, SyncError
from .imap import certificate_problem, ssl_context

Refused = dict[str, str]  # recipient -> the server's answer


class _Stale(Exception):
    """A kept connection the server has closed meanwhile."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [f"{rcpt}: {_answer(code, resp)}" for rcpt, (code, resp) in exc.recipients.items()]
        text = "recipient refused: " + "; ".join(parts)
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = f"server said {_answer(exc.smtp_code, exc.smtp_error)}"
    elif isinstance(exc, socket.timeout | TimeoutError):
        text = "timed out"
    else:
        text = str(exc) or exc.__class__.__name__
    return " ".join(text.split())[:300]


def _answer(code: int, resp: bytes | str) -> str:
    reply = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(f"{code} {reply}".split())


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _dot_stuffed(raw: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ending in CRLF . CRLF."""
    data = _LINE_END.sub(b"\r\n", raw)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class Mailer:
    """One SMTP connection for any number of messages, opened when first needed and opened
    again after one that broke.  Use as a context manager."""

    def __init__(self, cfg: SMTPConfig | None):
        if cfg is None:
            raise NotSent("no smtp: section in the config", permanent=True, connection=True)
        self.cfg = cfg
        self.where = f"SMTP {cfg.host}:{cfg.port}"
        self.client: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        try:
            ctx = ssl_context(cfg) if cfg.security != "none" else None
        except ConfigError as exc:  # a ca_file that is no CA: no send can work
            raise NotSent(str(exc), permanent=True, connection=True) from None
        client: smtplib.SMTP | None = None
        try:
            if cfg.security == "ssl":
                client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=ctx)
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
                if cfg.security == "starttls":
                    client.starttls(context=ctx)
                    client.ehlo()
            self._login(client)
        except smtplib.SMTPAuthenticationError as exc:
            _close(client)
            hint = f"; {_refused(cfg)}" if cfg.auth == "oauth2" else ""
            raise NotSent(f"{self.where}: login failed for {cfg.username} ({_describe(exc)})"
                          + hint, connection=True) from None
        except ssl.SSLCertVerificationError as exc:
            _close(client)
            raise NotSent(f"{self.where}: {certificate_problem(exc, cfg)}",
                          connection=True) from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            _close(client)
            raise NotSent(f"{self.where}: {_describe(exc)}", connection=True) from None
        except BaseException:
            _close(client)
            raise
        return client

    def _login(self, client: smtplib.SMTP) -> None:
        cfg = self.cfg
        if cfg.auth in ("xoauth2", "oauth2"):
            try:
                token = credentials.oauth2_token(cfg)
            except (AuthError, SyncError) as exc:  # a refused login: nothing can be sent
                raise NotSent(f"{self.where}: {exc}", connection=True) from None
            user = cfg.username

            def xoauth2(challenge: bytes | None = None) -> str:
                return f"user={user}\x01auth=Bearer {token}\x01\x01"

            client.ehlo_or_helo_if_needed()
            client.auth("XOAUTH2", xoauth2, initial_response_ok=True)
        elif cfg.username:
            client.login(cfg.username, credentials.password(cfg))

    def connect(self) -> None:
        """Open the connection now (NotSent with ``connection`` when that fails)."""
        if self.client is None:
            self.client = self._connect()

    def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> Refused:
        """One SMTP transaction; the refused recipients when the others were accepted."""
        # A kept connection the server closed while idle gets one fresh try; _Stale means
        # MAIL FROM got no answer, so the server has nothing of this message.
        for _attempt in range(2 if self.client is not None else 1):
            with contextlib.suppress(_Stale):
                return self._transaction(raw, sender, recipients)
        raise NotSent(f"{self.where}: connection lost", connection=True)

    def _transaction(self, raw: bytes, sender: str, recipients: Sequence[str]) -> Refused:
        if self.client is None:
            self.client = self._connect()
        client = self.client
        try:
            code, resp = client.mail(sender)
        except (smtplib.SMTPServerDisconnected, OSError):
            self._drop()
            raise _Stale() from None
        try:
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, resp, sender)
            refused = self._recipients(client, recipients)
            code, resp = client.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, resp)
            client.send(_dot_stuffed(raw))  # a failure here: the server never saw the "."
        except smtplib.SMTPResponseException as exc:
            self._reset()
            raise NotSent(f"{self.where}: {_describe(exc)}",
                          permanent=exc.smtp_code >= 500) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise NotSent(f"{self.where}: {_describe(exc)}") from None
        self._final_answer(client)
        return refused

    def _recipients(self, client: smtplib.SMTP, recipients: Sequence[str]) -> Refused:
        """RCPT TO each; NotSent when the server refused them all."""
        refused: Refused = {}
        worst = 0
        for rcpt in recipients:
            code, resp = client.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = _answer(code, resp)
                worst = max(worst, code)
        if len(refused) == len(recipients):
            self._reset()
            raise NotSent(f"{self.where}: recipient refused: "
                          + "; ".join(f"{r}: {a}" for r, a in refused.items()),
                          permanent=worst >= 500)
        return refused

    def _final_answer(self, client: smtplib.SMTP) -> None:
        """The answer to the whole message: without one, nobody knows whether it arrived."""
        try:
            code, resp = client.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise DeliveryUnknown(f"{self.where}: the message was sent, then "
                                  f"{_describe(exc)} waiting for the server's answer") from None
        if 200 <= code < 300:
            return
        if not 400 <= code < 600:  # a cut-off line ("2", "25"): the answer was on its way
            self._drop()
            raise DeliveryUnknown(f"{self.where}: the message was sent, then the server's "
                                  f"answer broke off ({_answer(code, resp)})")
        self._reset()
        raise NotSent(f"{self.where}: server said {_answer(code, resp)}",
                      permanent=code >= 500)

    def _reset(self) -> None:
        """After a refused transaction the connection is still good: start over on it."""
        try:
            if self.client is not None:
                self.client.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        _close(self.client)
        self.client = None

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


def _close(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError):
            client.close()


def envelope_sender(msg: EmailMessage) -> str:
    froms = msg["From"].addresses if msg["From"] is not None else ()
    return froms[0].addr_spec if froms else ""


def header_recipients(msg: EmailMessage) -> list[str]:
    """The addresses in a message's own To and Cc (the report's envelope)."""
    return [a.addr_spec for name in ("To", "Cc") if msg[name] is not None
            for a in msg[name].addresses]


def wire_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def send_message(smtp_cfg: SMTPConfig | None, msg: EmailMessage) -> None:
    """Hand ``msg`` to the server, to the addresses in its own To and Cc (``report --send``:
    a person asked for it; cron's report goes through the outbox)."""
    with Mailer(smtp_cfg) as mailer:
        refused = mailer.send(wire_bytes(msg), envelope_sender(msg), header_recipients(msg))
    if refused:
        raise NotSent("recipient refused: " + "; ".join(f"{r}: {a}" for r, a in refused.items()))


def _refused(cfg: SMTPConfig) -> str:
    from . import oauth2  # its HTTP and TLS modules: only for those who log in so

    return str(oauth2.refused(cfg))
