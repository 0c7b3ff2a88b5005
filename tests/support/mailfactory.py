"""Small builders for test mail and test configs (used by many test modules)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml

from mailtriage.source import Fetched

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def mail(
    subject: str = "Help",
    frm: str = "Carol Customer <carol@customer.test>",
    to: str = "support@example.com",
    msgid: str | None = "m1@customer.test",
    date: dt.datetime | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    body: str = "Hello, I need help.",
    headers: dict[str, str] | None = None,
    cc: str | None = None,
) -> bytes:
    """A plain RFC 5322 message as bytes (CRLF), like a server stores it."""
    msg = EmailMessage(policy=default)
    msg["From"] = frm
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or NOW - dt.timedelta(hours=1))
    if msgid:
        msg["Message-ID"] = f"<{msgid}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes(policy=default.clone(linesep="\r\n"))


def put(mb, folder: str = "INBOX", flags=(), **mail_kwargs: Any) -> int | None:
    """APPEND ``mail(**mail_kwargs)`` with INTERNALDATE = its Date header, as a real
    delivery would have it (default: an hour before NOW)."""
    date = mail_kwargs.setdefault("date", NOW - dt.timedelta(hours=1))
    return mb.append(folder, mail(**mail_kwargs), flags=flags, internaldate=date)


def write_config(directory: Path, account: Any = None, **extra: Any) -> Path:
    """A config.yaml for a test Dovecot account (plain IMAP on loopback by default)."""
    data: dict[str, Any] = {
        "team": {"addresses": ["support@example.com"], "domains": ["example.com"]},
        "db": "state.db",
    }
    if account is not None:
        data["imap"] = {
            "host": account.host,
            "port": account.port,
            "security": "none",
            "username": account.username,
            "password_env": "TEST_IMAP_PASSWORD",
            "folders": ["INBOX"],
        }
    for key, value in extra.items():
        if key == "imap" and "imap" in data:
            data["imap"].update(value)
        else:
            data[key] = value
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def fetched(raw: bytes, uid: int, at: dt.datetime) -> Fetched:
    """``raw`` as a source hands it to sync: header block, body, INTERNALDATE ``at``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return Fetched(uid=uid, header_bytes=head + b"\r\n\r\n", body_prefix=body, flags=(),
                   internal_date=at, size=len(raw))
