"""How the sample mailbox is written: a builder that turns the cases into real messages
(threading headers, MIME, dates in the writers' own time zones), all randomness through
one ``random.Random``.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TypedDict, Unpack

from .samplecast import AGENTS, SUPPORT, SUPPORT_ADDRESS, Person

MAILDIR_LETTERS = {"\\Flagged": "F", "\\Answered": "R", "\\Seen": "S"}
SEEN = ("\\Seen",)
ANSWERED = ("\\Answered", "\\Seen")
UNSEEN: tuple[str, ...] = ()


@dataclass
class SampleMessage:
    """One message of the sample mailbox and where it belongs."""

    folder: str
    raw: bytes
    flags: tuple[str, ...]
    date: datetime
    expect: str


# ---------------------------------------------------------------------------------- the builder


def wrap(text: str, width: int = 72) -> str:
    """Wrap each paragraph, so plain ASCII bodies stay 7bit instead of becoming quoted-printable."""
    out = []
    for para in text.split("\n\n"):
        lines = para.split("\n")
        if all(len(line) <= width for line in lines):
            out.append(para)
        else:
            out.append(textwrap.fill(" ".join(lines), width))
    return "\n\n".join(out)


def first_name(person: Person) -> str:
    return person.name.split()[0] if " " in person.name else person.name


def reply_subject(subject: str, prefix: str = "Re: ") -> str:
    return subject if subject.lower().startswith(("re:", "aw:")) else prefix + subject


@dataclass
class Note:
    """A built message plus what later replies need to quote and reference it."""

    msg: EmailMessage
    author: Person
    date: datetime
    subject: str
    body: str
    message_id: str | None
    references: list[str] = field(default_factory=list)


class LinkOptions(TypedDict, total=False):
    """The keyword switches :meth:`Builder.customer` passes on to :meth:`Builder.new`."""

    message_id: bool
    in_reply_to_only: bool
    no_links: bool


class Builder:
    """Collects the sample messages; all randomness flows through one Random."""

    def __init__(self, now: datetime, rng: random.Random):
        self.now = now
        self.rng = rng
        self.out: list[SampleMessage] = []

    def ago(self, days: float = 0, hours: float = 0, minutes: float = 0,
            jitter: int = 20) -> datetime:
        """A moment before now, a few random minutes earlier still, so times look natural."""
        extra = self.rng.randint(0, jitter) if jitter else 0
        moment = self.now - timedelta(days=days, hours=hours, minutes=minutes + extra)
        return moment.replace(microsecond=0)

    def message_id(self, domain: str) -> str:
        return f"<{self.rng.getrandbits(64):016x}.{len(self.out) + 1}@{domain}>"

    def boundary(self) -> str:
        return f"=_sample_{self.rng.getrandbits(64):016x}"

    # -- construction

    def new(self, author: Person, to: Sequence[Address | str], subject: str, date: datetime,
            *, parent: Note | None = None, cc: Sequence[Address | str] = (),
            message_id: bool = True, in_reply_to_only: bool = False,
            no_links: bool = False) -> tuple[EmailMessage, str | None, list[str]]:
        """Headers in the order real clients write them; links to ``parent`` unless told not to."""
        msg = EmailMessage(policy=policy.default)
        msg["From"] = author.address
        msg["To"] = [address(a) for a in to]
        if cc:
            msg["Cc"] = [address(a) for a in cc]
        msg["Subject"] = subject
        msg["Date"] = format_datetime(date.astimezone(author.tz))
        mid = self.message_id(author.domain) if message_id else None
        if mid:
            msg["Message-ID"] = mid
        refs: list[str] = []
        if parent is not None and parent.message_id and not no_links:
            refs = [*parent.references, parent.message_id]
            msg["In-Reply-To"] = parent.message_id
            if not in_reply_to_only:
                msg["References"] = " ".join(refs)
        return msg, mid, refs

    def text(self, msg: EmailMessage, body: str, cte: str | None = None) -> None:
        if cte is None and not body.isascii():
            cte = "quoted-printable"
        msg.set_content(body, cte=cte)

    def add(self, note: Note, folder: str, flags: tuple[str, ...], expect: str) -> Note:
        for part in note.msg.walk():
            if part.get_content_maintype() == "multipart":
                part.set_boundary(self.boundary())
            elif part is not note.msg:
                del part["MIME-Version"]  # set_content adds it to subparts; clients don't
        self.out.append(SampleMessage(folder=folder, raw=note.msg.as_bytes(), flags=flags,
                                      date=note.date, expect=expect))
        return note

    # -- the common shapes

    def customer(self, who: Person, subject: str, body: str, date: datetime, expect: str,
                 flags: tuple[str, ...] = SEEN, *, parent: Note | None = None,
                 quote: bool = True, **kw: Unpack[LinkOptions]) -> Note:
        """A plain-text customer message in INBOX, quoting ``parent`` like a mail client."""
        body = wrap(body) + f"\n\n{first_name(who)}\n"
        if parent is not None and quote:
            body += quote_of(parent)
        msg, mid, refs = self.new(who, [SUPPORT_ADDRESS], subject, date, parent=parent, **kw)
        self.text(msg, body)
        return self.add(Note(msg, who, date, subject, body, mid, refs), "INBOX", flags, expect)

    def ours(self, parent: Note, body: str, date: datetime, expect: str, *,
             author: Person = SUPPORT, folder: str = "Sent", flags: tuple[str, ...] = SEEN,
             to: Person | str | None = None, cc: Sequence[str] = (),
             headers: Sequence[tuple[str, str]] = ()) -> Note:
        """A reply from the team, quoting the customer; by default the shared Sent copy."""
        customer = parent.author
        agent = first_name(author) if author is not SUPPORT else self.rng.choice(AGENTS)
        text = wrap(body.format(first=first_name(customer))) + f"\n\nBest,\n{agent}\n"
        text += "Support Team | example.com\n\n" + quote_of(parent)
        subject = reply_subject(parent.subject)
        if to is None:
            recipient: Address | str = customer.address
        else:
            recipient = to.address if isinstance(to, Person) else to
        msg, mid, refs = self.new(author, [recipient], subject, date, parent=parent, cc=cc)
        for name, value in headers:
            msg[name] = value
        self.text(msg, text)
        return self.add(Note(msg, author, date, subject, text, mid, refs), folder, flags, expect)


def address(value: Address | str) -> Address:
    return value if isinstance(value, Address) else Address(addr_spec=value)


def quote_of(note: Note) -> str:
    stamp = f"{note.date:%Y-%m-%d %H:%M} UTC"
    quoted = "\n".join(("> " + line).rstrip() for line in note.body.rstrip("\n").split("\n"))
    return f"On {stamp}, {note.author.name} wrote:\n{quoted}\n"


# ---------------------------------------------------------------------------------- the cases
