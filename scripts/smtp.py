"""Sending one message over SMTP: verified TLS, a password or an OAuth2 token, one-line errors.

``security``: ``ssl`` (implicit TLS, port 465), ``starttls`` (587) or ``none``
(loopback or ``allow_insecure`` only; config.py enforces that).  TLS is always
verified, against the system store plus ``ca_file`` for a private CA.  Every
failure becomes :class:`SendError` with one line that names the server and never
the password.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage

from . import credentials
from .config import SMTPConfig
from .imap import ssl_context


class SendError(Exception):
    """The message was not sent (nothing was accepted by the server)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = []
        for rcpt, (code, resp) in exc.recipients.items():
            reply = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
            parts.append(f"{rcpt}: {code} {reply}")
        text = "recipient refused: " + "; ".join(parts)
    elif isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        reply_text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        text = f"server said {exc.smtp_code} {reply_text}"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        text = f"TLS certificate not trusted ({exc.verify_message}); set ca_file for a private CA"
    elif isinstance(exc, socket.timeout | TimeoutError):
        text = "timed out"
    else:
        text = str(exc) or exc.__class__.__name__
    return " ".join(text.split())[:300]


def _login(client: smtplib.SMTP, cfg: SMTPConfig) -> None:
    if cfg.auth == "xoauth2":
        token = credentials.oauth2_token(cfg)
        user = cfg.username

        def xoauth2(challenge: bytes | None = None) -> str:
            return f"user={user}\x01auth=Bearer {token}\x01\x01"

        client.ehlo_or_helo_if_needed()
        client.auth("XOAUTH2", xoauth2, initial_response_ok=True)
    elif cfg.username:
        client.login(cfg.username, credentials.password(cfg))


def send_message(smtp_cfg: SMTPConfig | None, msg: EmailMessage) -> None:
    """Hand ``msg`` to the configured SMTP server; raise SendError on any failure.

    Credentials are resolved first, so a missing password is a ConfigError (exit 2)
    before any connection is made.
    """
    if smtp_cfg is None:
        raise SendError("no smtp: section in the config")
    cfg = smtp_cfg
    where = f"SMTP {cfg.host}:{cfg.port}"
    try:
        ctx = ssl_context(cfg.ca_file) if cfg.security != "none" else None
    except (OSError, ssl.SSLError) as exc:
        raise SendError(f"{cfg.key_prefix}.ca_file: cannot load {cfg.ca_file}: "
                        f"{_describe(exc)}") from None
    client: smtplib.SMTP | None = None
    try:
        if cfg.security == "ssl":
            client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=ctx)
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            if cfg.security == "starttls":
                client.starttls(context=ctx)
                client.ehlo()
        _login(client, cfg)
        refused = client.send_message(msg)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(f"{where}: login failed for {cfg.username} ({_describe(exc)})") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise SendError(f"{where}: {_describe(exc)}") from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise SendError(f"{where}: {_describe(exc)}") from None
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
