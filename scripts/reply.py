"""Canned replies: render a template into a real reply, send it or save it as a draft.

A reply is a proper answer to the customer's latest message: From the team
address, To their Reply-To (else From), ``Re:`` once, In-Reply-To and References,
a fresh Message-ID at the team's domain.  Anything the customer wrote that ends
up in a header is stripped of control characters first, so a subject holding
``\\r\\nBcc: ...`` stays one harmless line.

Sending is SMTP first, then a copy in the Sent folder, then the record in the
database: if SMTP fails nothing changes; if only the copy fails the mail is out,
so it is recorded anyway and the caller gets a warning.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import jinja2
import sqlite_utils
from jinja2.sandbox import SecurityError

from . import render, smtp, triage
from .config import AccountConfig, Config
from .imap import IMAPSession
from .listing import thread_messages, thread_tags
from .overdue import overdue
from .parse import clean_text, reply_subject
from .sla import format_duration
from .store import iso, loads, parse_iso, query_rows

MAX_REFERENCES = 20
FALLBACK_NAME = "there"  # "Hi there," when we do not know the customer's name
SYNTHETIC_SUFFIX = "@mailtriage.invalid"

_MSGID_OK = re.compile(r"[!-;=?-~]+")  # printable ASCII without space, '<' and '>'
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x85\u2028\u2029]+")
_ADDRESS_OK = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")

SessionFactory = Callable[[AccountConfig], IMAPSession]


class ReplyError(Exception):
    """The reply cannot be built (unknown thread, nobody to answer), phrased for the user."""


@dataclass
class Reply:
    message: EmailMessage
    template: render.ReplyTemplate
    thread_id: int
    to_addr: str
    subject: str
    message_id: str  # without angle brackets
    auto: bool = False


# --------------------------------------------------------------------------- helpers


def header_text(value: Any) -> str:
    """One line of text safe for a header: no CR/LF or other control characters."""
    text = _LINE_BREAKS.sub(" ", str(value or ""))  # "a\r\nb" -> "a b", not "ab"
    return " ".join(clean_text(text).split())


def _valid_id(value: str | None) -> bool:
    return bool(value) and _MSGID_OK.fullmatch(value or "") is not None \
        and not (value or "").endswith(SYNTHETIC_SUFFIX)


def first_name_of(name: str) -> str:
    if "," in name:  # "Doe, Jane"
        rest = name.split(",", 1)[1].split()
        if rest:
            return rest[0]
    return name.split()[0]


def customer_block(name: str | None, address: str | None) -> dict[str, str]:
    """``{name, address, first_name}``; names fall back to "there", never to ""."""
    clean = header_text(name).strip("\"' ")
    if not clean or "@" in clean:
        return {"name": FALLBACK_NAME, "first_name": FALLBACK_NAME,
                "address": header_text(address)}
    return {"name": clean, "first_name": first_name_of(clean), "address": header_text(address)}


def _thread_row(db: sqlite_utils.Database, thread_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM threads WHERE id = ?", [thread_id]))
    if not rows:
        raise ReplyError(f"no thread {thread_id}")
    return rows[0]


def latest_customer_message(messages: Sequence[Mapping[str, Any]],
                            config: Config) -> Mapping[str, Any] | None:
    """The newest message that is neither ours nor automated (triage.classify)."""
    for m in reversed(messages):
        if triage.classify(m["from_addr"], loads(m["auto_signals"]),
                           config.team) == triage.CUSTOMER:
            return m
    return None


def latest_outside_message(messages: Sequence[Mapping[str, Any]],
                           config: Config) -> Mapping[str, Any] | None:
    """The newest message not from the team, automated or not (loop protection looks here)."""
    for m in reversed(messages):
        if not config.team.is_us(m["from_addr"]):
            return m
    return None


# --------------------------------------------------------------------------- context


def build_context(db: sqlite_utils.Database, config: Config, thread_id: int,
                  now: dt.datetime) -> dict[str, Any]:
    """What a reply template sees: ``thread``, ``customer`` and ``agent`` (plain values)."""
    row = _thread_row(db, thread_id)
    messages = thread_messages(db, thread_id)
    customer_msg = latest_customer_message(messages, config)
    first_at = parse_iso(row["first_at"]) or (parse_iso(messages[0]["arrived_at"])
                                              if messages else None)
    age = format_duration(max(now - first_at, dt.timedelta())) if first_at else "0m"
    if customer_msg is not None:
        name = customer_msg["from_name"] or row["customer_name"]
        address = customer_msg["from_addr"]
    else:
        name, address = row["customer_name"], row["customer"]
    return {
        "thread": {
            "id": thread_id,
            "subject": header_text(row["subject"]),
            "tags": thread_tags(db, [thread_id]).get(thread_id, []),
            "age": age,
            "messages": [
                {
                    "from": m["from_addr"] or "",
                    "from_name": header_text(m["from_name"]),
                    "date": m["date"] or m["arrived_at"] or "",
                    "subject": header_text(m["subject"]),
                    "snippet": clean_text(m["snippet"] or "", keep_newlines=True),
                }
                for m in messages
            ],
        },
        "customer": customer_block(name, address),
        "agent": agent_block(config),
    }


def agent_block(config: Config | None) -> dict[str, str]:
    if config is None:
        return {"name": "Support team", "signature": "", "address": ""}
    return {"name": config.agent.name, "signature": config.agent.signature,
            "address": config.agent.address or ""}


# --------------------------------------------------------------------------- rendering


def render_text(env: jinja2.Environment, source: str, context: Mapping[str, Any],
                name: str) -> str:
    """Render one template string; every Jinja problem becomes a TemplateProblem."""
    try:
        return env.from_string(source).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise render.TemplateProblem(f"{name}.j2: syntax error: {exc.message} "
                                     f"(line {exc.lineno})") from None
    except SecurityError as exc:
        raise render.TemplateProblem(f"{name}.j2: not allowed in a template: {exc}") from None
    except jinja2.UndefinedError as exc:
        raise render.TemplateProblem(f"{name}.j2: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise render.TemplateProblem(
            f"{name}.j2: includes {exc.name!r}, which is not a template in the template "
            "folders") from None
    except jinja2.TemplateError as exc:
        raise render.TemplateProblem(f"{name}.j2: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise render.TemplateProblem(f"{name}.j2: {exc.__class__.__name__}: {exc}") from None


def render_template(config: Config | None, template: render.ReplyTemplate,
                    context: Mapping[str, Any]) -> tuple[str | None, str]:
    """(subject override or None, body), rendered in the sandbox."""
    env = render.environment(config)
    body = render_text(env, template.body, context, template.name)
    subject = None
    if template.subject:
        subject = header_text(render_text(env, str(template.subject), context, template.name))
    return subject or None, body


def _from_address(config: Config) -> Address:
    addr = config.agent.address or ""  # the config defaults it to the first team address
    if not _ADDRESS_OK.fullmatch(addr or ""):
        raise ReplyError("agent.address: no usable From address "
                         "(set agent.address or team.addresses)")
    user, _, domain = addr.rpartition("@")
    return Address(display_name=header_text(config.agent.name), username=user, domain=domain)


def _references(m: Mapping[str, Any] | None) -> tuple[str | None, list[str]]:
    if m is None:
        return None, []
    mid = m["message_id"] if _valid_id(m["message_id"]) else None
    ids = [r for r in loads(m["refs"]) if _valid_id(r)]
    if mid:
        ids.append(mid)
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_REFERENCES:  # keep the root and the most recent ones
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return mid, ids


def render_reply(db: sqlite_utils.Database, config: Config, thread_id: int,
                 template_name: str, now: dt.datetime, auto: bool = False) -> Reply:
    """Build the full reply message for a thread from a template; changes nothing."""
    template = render.load_reply(config, template_name)
    row = _thread_row(db, thread_id)
    messages = thread_messages(db, thread_id)
    context = build_context(db, config, thread_id, now)
    subject_override, body = render_template(config, template, context)

    target = latest_customer_message(messages, config) or latest_outside_message(messages,
                                                                                 config)
    to_addr = header_text((target["reply_to"] or target["from_addr"]) if target
                          else row["customer"])
    if not _ADDRESS_OK.fullmatch(to_addr) or config.team.is_us(to_addr):
        raise ReplyError(f"thread {thread_id}: no customer address to reply to")
    sender = _from_address(config)
    subject = subject_override or reply_subject(header_text(row["subject"] or (
        target["subject"] if target else "")))
    in_reply_to, refs = _references(target)
    message_id = make_msgid(domain=sender.domain)

    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = sender
    msg["To"] = to_addr
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    msg["X-Mailtriage-Template"] = header_text(template.name)
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
    if body.isascii():
        msg.set_content(body)
    else:  # quoted-printable goes through any relay, 8BITMIME or not
        msg.set_content(body, cte="quoted-printable")
    return Reply(message=msg, template=template, thread_id=thread_id, to_addr=to_addr,
                 subject=subject, message_id=message_id.strip("<>"), auto=auto)


# --------------------------------------------------------------------------- recording


def record_reply(db: sqlite_utils.Database, reply: Reply, mode: str, now: dt.datetime) -> None:
    """Store the reply and its consequences (tags; for ``send`` state and dirty) atomically."""
    if mode not in ("send", "draft"):
        raise ValueError(f"mode must be send or draft, not {mode!r}")
    at = iso(now)
    name = reply.template.name
    with db.atomic():
        db.execute(
            "INSERT INTO replies (thread_id, template, message_id, to_addr, subject, mode, "
            "holding, auto, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [reply.thread_id, name, reply.message_id, reply.to_addr, reply.subject, mode,
             int(reply.template.holding), int(reply.auto), at],
        )
        if reply.template.tags:
            triage.change_tags(db, reply.thread_id, reply.template.tags, [], at,
                               f"reply:{name}")
        if mode == "send":
            triage.set_state(db, reply.thread_id, "waiting", at, "reply")
            db.execute("UPDATE threads SET dirty = 1 WHERE id = ?", [reply.thread_id])


# --------------------------------------------------------------------------- IMAP / SMTP


def default_session_factory(account: AccountConfig) -> IMAPSession:
    return IMAPSession(account)


def account_for(db: sqlite_utils.Database, config: Config, thread_id: int) -> AccountConfig:
    """The IMAP account holding this thread's mail (else the first IMAP account)."""
    imap_accounts = [a for a in config.accounts if a.source == "imap"]
    if not imap_accounts:
        raise ReplyError("no IMAP account in the config to store the message in")
    row = db.execute(
        "SELECT l.account FROM locations l JOIN messages m ON m.id = l.message "
        "WHERE m.thread_id = ? ORDER BY m.arrived_at DESC LIMIT 1", [thread_id]).fetchone()
    if row:
        for account in imap_accounts:
            if account.name == row[0]:
                return account
    return imap_accounts[0]


def _append(account: AccountConfig, reply: Reply, flag: str, configured: str | None,
            fallback: str, flags: Sequence[str], now: dt.datetime,
            factory: SessionFactory) -> str:
    raw = reply.message.as_bytes(policy=reply.message.policy.clone(linesep="\r\n"))
    with factory(account) as session:
        folder = configured or session.find_special(flag, fallback) or fallback
        session.append(folder, raw, flags=flags, when=now)
    return folder


def send_reply(db: sqlite_utils.Database, config: Config, reply: Reply, now: dt.datetime,
               imap_session_factory: SessionFactory = default_session_factory) -> str | None:
    """SMTP, then a \\Seen copy in Sent, then the record; return a warning or None.

    Raises smtp.SendError (and records nothing) when the server did not take the mail.
    """
    smtp.send_message(config.smtp, reply.message)
    warning = None
    try:
        account = account_for(db, config, reply.thread_id)
        _append(account, reply, "\\Sent", account.sent_folder, "Sent", ["\\Seen"], now,
                imap_session_factory)
    except Exception as exc:  # the mail is out: whatever broke the copy must not lose the record
        warning = (f"thread {reply.thread_id}: sent, but no copy in the Sent folder: "
                   f"{' '.join(str(exc).split()) or exc.__class__.__name__}")
    record_reply(db, reply, "send", now)
    return warning


def save_draft(db: sqlite_utils.Database, config: Config, reply: Reply, now: dt.datetime,
               imap_session_factory: SessionFactory = default_session_factory) -> str:
    """APPEND to Drafts with \\Draft \\Seen and record it; the thread state stays."""
    account = account_for(db, config, reply.thread_id)
    folder = _append(account, reply, "\\Drafts", account.drafts_folder, "Drafts",
                     ["\\Draft", "\\Seen"], now, imap_session_factory)
    record_reply(db, reply, "draft", now)
    return folder


# --------------------------------------------------------------------------- bulk


def bulk_targets(db: sqlite_utils.Database, config: Config, template_name: str,
                 now: dt.datetime, *, skip_drafted: bool = False) -> list[int]:
    """Overdue threads to answer with this template: no automated mail, never twice.

    ``skip_drafted`` also leaves out threads holding a draft from this template
    (so re-running a bulk ``--draft`` does not pile up drafts).
    """
    modes = "('send', 'draft')" if skip_drafted else "('send')"
    reasons = {"unanswered"} | ({"followup"} if template_name == "followup" else set())
    items = overdue(db, config, now, holding_templates=render.holding_templates(config))
    candidates = list(dict.fromkeys(
        i["thread_id"] for i in items
        if i["reason"] in reasons and "automated" not in i["tags"]))
    # A fixed number of queries for any number of threads (a backlog can be thousands).
    automated = {tid for (tid,) in query_rows(
        db, "SELECT id FROM threads WHERE id IN ({in}) AND automated = 1", candidates)}
    latest_outside: dict[int, str | None] = {}  # thread -> auto_signals of that message
    for tid, from_addr, signals in query_rows(
            db, "SELECT thread_id, from_addr, auto_signals FROM messages "
                "WHERE thread_id IN ({in}) ORDER BY arrived_at, id", candidates):
        if not config.team.is_us(from_addr):
            latest_outside[tid] = signals
    answered = {tid for (tid,) in query_rows(
        db, f"SELECT DISTINCT thread_id FROM replies WHERE thread_id IN ({{in}}) "
            f"AND template = ? AND mode IN {modes}", candidates, [template_name])}
    return [
        tid for tid in candidates
        if tid not in automated and tid not in answered
        # loop protection: never answer an auto-reply or a bounce
        and not loads(latest_outside.get(tid))
    ]


# --------------------------------------------------------------------------- checking


def sample_contexts(config: Config | None) -> list[tuple[str, dict[str, Any]]]:
    """Plain contexts covering the awkward cases a template must survive."""
    agent = agent_block(config)

    def thread(subject: str, sender: str, name: str) -> dict[str, Any]:
        return {
            "id": 1, "subject": subject, "tags": ["billing"], "age": "2d 4h",
            "messages": [{"from": sender, "from_name": name, "date": "2026-01-05T09:30:00Z",
                          "subject": subject, "snippet": "Hello, I need help with this."}],
        }

    samples = [
        ("display name", "Invoice charged twice", "Carol Customer", "carol@customer.test"),
        ("no display name", "Can't log in", "", "dave@customer.test"),
        ("non-ASCII name", "Überweisung fehlgeschlagen – bitte prüfen", "Zoë Ångström-Þórsdóttir",
         "zoe@kunde.test"),
        ("HTML-ish subject", "<b>Broken</b> & <script>alert(1)</script> {{ x }}",
         "\"Bob <bob@x.test>\"", "bob@x.test"),
        ("name is an address", "Help", "erin@customer.test", "erin@customer.test"),
    ]
    return [
        (label, {"thread": thread(subject, addr, name), "customer": customer_block(name, addr),
                 "agent": agent})
        for label, subject, name, addr in samples
    ]


_EMPTY_GREETING = re.compile(r"^[ \t]*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))"
                             r"[ \t]*[,!:]?[ \t]*$", re.IGNORECASE | re.MULTILINE)
_SPACE_COMMA = re.compile(r"^[ \t]*\w+[ \t]+,", re.MULTILINE)


def check_templates(config: Config | None) -> list[str]:
    """Render every reply template against the samples; one error line per problem."""
    errors: list[str] = []
    for name in render.reply_names(config):
        try:
            template = render.load_reply(config, name)
        except render.TemplateProblem as exc:
            errors.append(header_text(exc))
            continue
        for label, context in sample_contexts(config):
            try:
                subject, body = render_template(config, template, context)
            except render.TemplateProblem as exc:
                errors.append(f"{header_text(exc)} (sample: {label})")
                break  # the same error would repeat for every sample
            if not body.strip():
                errors.append(f"{name}.j2: renders an empty body (sample: {label})")
            elif _EMPTY_GREETING.search(body) or _SPACE_COMMA.search(body):
                errors.append(f"{name}.j2: greeting without a name (sample: {label})")
            if template.subject is not None and not subject:
                errors.append(f"{name}.j2: subject renders empty (sample: {label})")
    return errors
