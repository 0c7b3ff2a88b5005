"""A reply, composed: whom it goes to, what the template sees, and the message itself.

A reply answers the thread's latest customer message: To its Reply-To (else its From),
Cc the other customers that message was written to (never the team, never a machine),
``Re:`` once, In-Reply-To and References, a Message-ID at the team's domain fixed now, so
the outbox can record it before anything is sent.  Every recipient is one address that
addresses.py found valid; the built headers are read back to prove it.  Composing changes
nothing: outbox.py records and sends.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any

from . import addresses, quoting, render
from .config import AgentConfig, Config
from .errors import AddressError, ReplyError
from .listing import thread_messages, thread_tags
from .parse import SYNTHETIC_SUFFIX, TEMPLATE_HEADER
from .senders import AUTO, CUSTOMER, classify_row
from .store import loads, parse_iso
from .subjects import reply_subject
from .text import clean_text, one_line
from .times import format_duration

if TYPE_CHECKING:
    import sqlite_utils

MAX_REFERENCES = 20
FALLBACK_NAME = "there"  # "Hi there," when we do not know the customer's name
# Senders that never read what they get: a reply-all leaves them out.
_MACHINE_LOCAL = re.compile(r"^(?:no-?reply|do-?not-?reply|mailer-daemon|postmaster|bounces?)"
                            r"(?:[+.-].*)?$")
_MSGID_OK = re.compile(r"[!-;=?-~]+")  # printable ASCII without space, '<' and '>'


@dataclass
class Reply:
    message: EmailMessage
    template: render.ReplyTemplate
    thread_id: int
    to_addr: str
    subject: str
    message_id: str  # without angle brackets
    cc: list[str] = field(default_factory=list)
    auto: bool = False

    @property
    def recipients(self) -> list[str]:
        return [self.to_addr, *self.cc]

    @property
    def sender(self) -> str:
        return self.message["From"].addresses[0].addr_spec

    def raw(self) -> bytes:
        return self.message.as_bytes(policy=self.message.policy.clone(linesep="\r\n"))


def first_name_of(name: str) -> str:
    if "," in name:  # "Doe, Jane"
        rest = name.split(",", 1)[1].split()
        if rest:
            return rest[0]
    return name.split()[0]


def customer_block(name: str | None, address: str | None) -> dict[str, str]:
    """``{name, address, first_name}``; names fall back to "there", never to ""."""
    clean = one_line(name).strip("\"' ")
    if not clean or "@" in clean:
        return {"name": FALLBACK_NAME, "first_name": FALLBACK_NAME,
                "address": one_line(address)}
    return {"name": clean, "first_name": first_name_of(clean), "address": one_line(address)}


def agent_block(config: Config | None) -> dict[str, str]:
    agent = config.agent if config is not None else AgentConfig()
    return {"name": agent.name, "signature": agent.signature, "address": agent.address or ""}


def _thread_row(db: sqlite_utils.Database, thread_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM threads WHERE id = ?", [thread_id]))
    if not rows:
        raise ReplyError(f"no thread {thread_id}")
    return rows[0]


def reply_target(messages: Sequence[Mapping[str, Any]],
                 config: Config) -> Mapping[str, Any] | None:
    """The message a reply answers: the newest customer message, else the newest one not
    from the team (a thread of a machine's mail only); drafts never."""
    sent = [m for m in messages if not m["draft"]]
    for m in reversed(sent):
        if classify_row(m, config.team) == CUSTOMER:
            return m
    for m in reversed(sent):
        if not config.team.is_us(m["from_addr"]):
            return m
    return None


@dataclass
class Recipients:
    to_addr: str
    to_name: str  # the person written to, for the greeting ('' when unknown)
    cc: list[str]


def recipients(messages: Sequence[Mapping[str, Any]], target: Mapping[str, Any] | None,
               config: Config, thread_id: int, cc: bool = True) -> Recipients:
    """To: the target's Reply-To or From; Cc: the other customers it was written to."""
    if target is None:
        raise ReplyError(f"thread {thread_id}: no customer address to reply to")
    raw_to = target["reply_to"] or target["from_addr"] or ""
    try:
        to_addr = addresses.check_sendable(raw_to)
    except AddressError as exc:
        raise ReplyError(f"thread {thread_id}: cannot reply to {one_line(raw_to, 60)!r}: "
                         f"{exc}") from None
    if config.team.is_us(to_addr):
        raise ReplyError(f"thread {thread_id}: the address to reply to ({to_addr}) is the "
                         "team's own")
    from_addr = target["from_addr"] or ""
    if not target["reply_to"]:
        name = target["from_name"] or ""
    elif target["reply_to_name"]:
        name = target["reply_to_name"]
    else:  # "Carol <carol@x>" with Reply-To: carol.private@x is still Carol; a form is not
        same_domain = to_addr.rpartition("@")[2] == from_addr.rpartition("@")[2]
        name = (target["from_name"] or "") if same_domain else ""
    copies: list[str] = []
    if cc:
        machines = {m["from_addr"] for m in messages if classify_row(m, config.team) == AUTO}
        for addr in [*loads(target["to_addrs"]), *loads(target["cc_addrs"])]:
            if (addr in copies or addr in (to_addr, from_addr) or addr in machines
                    or config.team.is_us(addr)
                    or _MACHINE_LOCAL.match(addr.rpartition("@")[0])):
                continue
            try:
                copies.append(addresses.check_sendable(addr))
            except AddressError:
                continue
    return Recipients(to_addr, name, copies)


def build_context(db: sqlite_utils.Database, config: Config, thread_id: int,
                  now: dt.datetime, person: Recipients | None = None,
                  target: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a reply template sees: ``thread``, ``customer`` and ``agent`` (plain values).

    ``customer`` is the person the reply is written to (``person``), else the thread's
    customer; ``thread.last_customer`` the message answered (``target``), whose whole text
    is asked of the server only if the template uses it (quoting.py).
    """
    row = _thread_row(db, thread_id)
    messages = [m for m in thread_messages(db, thread_id) if not m["draft"]]
    first_at = parse_iso(row["first_at"]) or (parse_iso(messages[0]["arrived_at"])
                                              if messages else None)
    age = format_duration(max(now - first_at, dt.timedelta())) if first_at else "0m"
    name, address = ((person.to_name, person.to_addr) if person
                     else (row["customer_name"], row["customer"]))
    return {
        "thread": {
            "id": thread_id,
            "subject": one_line(row["subject"]),
            "tags": thread_tags(db, [thread_id]).get(thread_id, []),
            "age": age,
            "messages": [
                {
                    "from": m["from_addr"] or "",
                    "from_name": one_line(m["from_name"]),
                    "date": m["date"] or m["arrived_at"] or "",
                    "subject": one_line(m["subject"]),
                    "snippet": clean_text(m["snippet"] or "", keep_newlines=True),
                }
                for m in messages
            ],
            "last_customer": _last_customer(db, config, target),
        },
        "customer": customer_block(name, address),
        "agent": agent_block(config),
    }


def _last_customer(db: sqlite_utils.Database, config: Config,
                   target: Mapping[str, Any] | None) -> quoting.LastCustomer | None:
    if target is None:
        return None
    message = target["id"]
    return quoting.LastCustomer(target, lambda: quoting.server_text(db, config, message))


def render_template(config: Config | None, template: render.ReplyTemplate,
                    context: Mapping[str, Any]) -> tuple[str | None, str]:
    """(subject override or None, body), rendered in the sandbox."""
    env = render.environment(config)
    name = f"{template.name}.j2"
    context = {**context, "quote": template.quote}
    body = render.render_string(env, template.body, context, name)
    subject = None
    if template.subject:
        subject = one_line(render.render_string(env, str(template.subject), context, name))
    return subject or None, body


def _from_address(config: Config) -> Address:
    try:
        addr = addresses.check_sendable(config.agent.address or "")
    except AddressError:
        raise ReplyError("agent.address: no usable From address "
                         "(set agent.address or team.addresses)") from None
    user, _, domain = addr.rpartition("@")
    return Address(display_name=one_line(config.agent.name), username=user, domain=domain)


def _valid_id(value: str | None) -> bool:
    return bool(value) and _MSGID_OK.fullmatch(value or "") is not None \
        and not (value or "").endswith(SYNTHETIC_SUFFIX)


def _references(m: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    mid = m["message_id"] if _valid_id(m["message_id"]) else None
    ids = [r for r in loads(m["refs"]) if _valid_id(r)]
    if mid:
        ids.append(mid)
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_REFERENCES:  # keep the root and the most recent ones
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return mid, ids


def render_reply(db: sqlite_utils.Database, config: Config, thread_id: int,
                 template_name: str, now: dt.datetime, *, auto: bool = False,
                 cc: bool = True) -> Reply:
    """Compose the full reply to a thread from a template; changes nothing."""
    template = render.load_reply(config, template_name)
    draft = templated_draft(db, config, thread_id, template, now, cc=cc)
    return compose(db, config, draft, template, now, auto=auto)


def templated_draft(db: sqlite_utils.Database, config: Config, thread_id: int,
                    template: render.ReplyTemplate, now: dt.datetime, *,
                    cc: bool = True) -> Draft:
    """A reply's draft with ``template`` rendered into it (its subject, if it has one)."""
    draft = reply_draft(db, config, thread_id, cc=cc)
    subject_override, body = render_template(
        config, template, build_context(db, config, thread_id, now, draft.person,
                                        draft.target))
    if subject_override:
        draft.subject = subject_override
    draft.body = body
    return draft


@dataclass
class Draft:
    """A reply before it is a message: what a person may still change (``reply --edit``)."""

    thread_id: int
    person: Recipients
    subject: str
    body: str = ""
    target: Mapping[str, Any] = field(default_factory=dict)  # the message it answers


def reply_draft(db: sqlite_utils.Database, config: Config, thread_id: int, *,
                cc: bool = True) -> Draft:
    """Whom a reply to the thread goes to and its subject, before any body is written."""
    row = _thread_row(db, thread_id)
    messages = thread_messages(db, thread_id)
    target = reply_target(messages, config)
    person = recipients(messages, target, config, thread_id, cc=cc)
    assert target is not None  # recipients() refuses a thread without one
    subject = reply_subject(one_line(row["subject"] or target["subject"]))
    return Draft(thread_id, person, subject, target=target)


def compose(db: sqlite_utils.Database, config: Config, draft: Draft,
            template: render.ReplyTemplate, now: dt.datetime, *, auto: bool = False) -> Reply:
    """The message for a finished draft: threading headers, our Message-ID, the body."""
    sender = _from_address(config)
    person = draft.person
    in_reply_to, refs = _references(draft.target)
    message_id = make_msgid(domain=sender.domain)
    subject = one_line(draft.subject)
    body = draft.body

    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = sender
    # Bare addresses: no stranger's text in a header we write (the email package can misquote
    # a long display name holding specials into two addresses; test_addresses shows one).
    msg["To"] = _address(person.to_addr)
    if person.cc:
        msg["Cc"] = [_address(a) for a in person.cc]
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    msg[TEMPLATE_HEADER] = one_line(template.name)
    if auto:
        msg["Auto-Submitted"] = "auto-replied"  # RFC 3834
        msg["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office back
        msg["X-Loop"] = sender.addr_spec
    if body.isascii():
        msg.set_content(body)
    else:  # quoted-printable goes through any relay, 8BITMIME or not
        msg.set_content(body, cte="quoted-printable")
    reply = Reply(message=msg, template=template, thread_id=draft.thread_id,
                  to_addr=person.to_addr, subject=subject, message_id=message_id.strip("<>"),
                  cc=person.cc, auto=auto)
    _check_headers(reply)
    return reply


def _address(addr: str) -> Address:
    try:
        return Address(addr_spec=addr)
    except (ValueError, IndexError) as exc:  # the email package's own parser disagrees
        raise ReplyError(f"cannot put {addr!r} in a header: {exc}") from None


def _check_headers(reply: Reply) -> None:
    """Read the built To and Cc back: each must be exactly the validated addresses."""
    head = reply.raw().split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    values: dict[str, str] = {}
    for line in re.split(r"\r\n(?![ \t])", head):
        name, _, value = line.partition(":")
        values[name.lower()] = value.replace("\r\n", "")
    for name, expected in (("to", [reply.to_addr]), ("cc", reply.cc)):
        found = addresses.read_list(values.get(name))
        if [m.addr for m in found if m.valid] != expected or not all(m.valid for m in found):
            raise ReplyError(f"thread {reply.thread_id}: refusing a {name.title()} header that "
                             f"does not read back as {', '.join(expected) or 'nothing'}")


def preview(reply: Reply) -> str:
    """The reply as a person reads it: decoded headers, then the text."""
    msg = reply.message
    lines = [f"{name}: {one_line(msg[name])}" for name in
             ("From", "To", "Cc", "Subject", "In-Reply-To", TEMPLATE_HEADER, "Auto-Submitted")
             if msg[name] is not None]
    return "\n".join(lines) + "\n\n" + msg.get_content()
