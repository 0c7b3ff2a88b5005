"""The outbox: mail to customers is sent exactly once, or flagged for a person.

Every reply is written to ``outbox`` (thread, template, its fixed Message-ID, recipients)
as ``sending`` and committed before the SMTP transaction starts.  Then SMTP, then one of:

* ``sent``: the server said 250.  The thread counts as answered from this row at once
  (automatic acknowledgements never count); the copy in Sent comes after, and its failure
  is recorded, not fatal.
* ``failed``: the server certainly does not have it.  ``permanent`` for a 5xx refusal or an
  address we would not send to; a person may send again.  A 4xx or a connection failure is
  not permanent: ``triage run`` may try an acknowledgement again next time.
* ``unknown``: the message went out whole and no answer came (connection lost, or slower
  than ``smtp.timeout``), or the process died between DATA and recording.  Nothing sends it
  again without ``--force``; ``overdue``, ``show`` and the report list it until a person
  settles it (``triage outbox resolve``), a provider's own Sent copy shows it arrived, or a
  later reply supersedes it.

SIGTERM, SIGINT and SIGHUP wait while a row is ``sending``, so a stopped process records
what happened before it goes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import states
from .config import AccountConfig, Config
from .errors import DeliveryUnknown, NotSent, OutboxError, ReplyError
from .store import iso

# Composing needs Jinja, sending imapclient and smtplib; the outbox queries of sync and
# overdue need none of them.
if TYPE_CHECKING:
    from email.message import EmailMessage

    import sqlite_utils

    from .compose import Reply
    from .imap import IMAPSession
    from .smtp import Mailer

SENDING, SENT, FAILED, UNKNOWN, DRAFTED = "sending", "sent", "failed", "unknown", "drafted"
ACTIVE = (SENDING, SENT, UNKNOWN)  # a row in one of these means: do not send this again

SessionFactory = Callable[[AccountConfig], "IMAPSession"]
_HELD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_in_progress: set[int] = set()  # outbox rows this process is sending right now


@dataclass
class Outcome:
    """What became of one reply: its row, its state and, for a person, why."""

    outbox_id: int
    state: str
    error: str | None = None
    permanent: bool = False
    connection: bool = False  # the SMTP server itself failed: later sends would fail too
    warning: str | None = None  # sent, but no copy in the Sent folder


def default_session_factory(account: AccountConfig) -> IMAPSession:
    from .imap import IMAPSession

    return IMAPSession(account)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGINT and SIGHUP until the block ends (they arrive then)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return False  # ours, and not in _in_progress (checked by the caller): interrupted
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def settle_interrupted(db: sqlite_utils.Database, now: dt.datetime) -> list[int]:
    """Rows left ``sending`` by a process that died: their outcome is ``unknown``."""
    stale = [r["id"] for r in db.query("SELECT id, pid FROM outbox WHERE state = ?", [SENDING])
             if r["id"] not in _in_progress and not _alive(r["pid"])]
    with db.atomic():
        for oid in stale:
            db.execute("UPDATE outbox SET state = ?, error = ?, settled_at = ?, pid = NULL "
                       "WHERE id = ? AND state = ?",
                       [UNKNOWN, "the sending process stopped before the server's answer "
                        "was recorded", iso(now), oid, SENDING])
    return stale


def blocking(db: sqlite_utils.Database, thread_id: int) -> list[dict[str, Any]]:
    """Replies to this thread whose fate a person must settle before another goes out."""
    return list(db.query(
        "SELECT * FROM outbox WHERE thread_id = ? AND kind = 'reply' AND resolved_at IS NULL "
        "AND state IN (?, ?) ORDER BY id", [thread_id, SENDING, UNKNOWN]))


def _claim(db: sqlite_utils.Database, reply: Reply, now: dt.datetime) -> int:
    with db.atomic():  # BEGIN IMMEDIATE (store.StateDatabase): one claim at a time
        cur = db.execute(
            "INSERT INTO outbox (thread_id, kind, template, message_id, to_addr, cc_addrs, "
            "subject, holding, auto, state, created_at, pid, sent_copy) "
            "VALUES (?, 'reply', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            [reply.thread_id, reply.template.name, reply.message_id, reply.to_addr,
             json.dumps(reply.cc), reply.subject, int(reply.template.holding), int(reply.auto),
             SENDING, iso(now), os.getpid()])
        assert cur.lastrowid is not None
        return cur.lastrowid


def record_failure(db: sqlite_utils.Database, reply: Reply | None, thread_id: int,
                   template: str, error: str, now: dt.datetime, *, auto: bool) -> int:
    """A reply that could not even be attempted (no valid address, a template error):
    recorded on its thread like a refusal, so it is shown and not tried every run."""
    cur = db.execute(
        "INSERT INTO outbox (thread_id, kind, template, message_id, to_addr, cc_addrs, "
        "subject, holding, auto, state, error, permanent, created_at, settled_at) "
        "VALUES (?, 'reply', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
        [thread_id, template, reply.message_id if reply else None,
         reply.to_addr if reply else None, json.dumps(reply.cc if reply else []),
         reply.subject if reply else None, int(bool(reply and reply.template.holding)),
         int(auto), FAILED, error, iso(now), iso(now)])
    db.conn.commit()
    assert cur.lastrowid is not None
    return cur.lastrowid


def _settle(db: sqlite_utils.Database, config: Config, reply: Reply, oid: int, state: str,
            now: dt.datetime, error: str | None = None, permanent: bool = False) -> None:
    at = iso(now)
    with db.atomic():
        db.execute("UPDATE outbox SET state = ?, error = ?, permanent = ?, settled_at = ?, "
                   "pid = NULL, sent_copy = CASE WHEN ? = 'sent' THEN sent_copy END "
                   "WHERE id = ?", [state, error, int(permanent), at, state, oid])
        if state == SENT:
            answered(db, config, reply.thread_id, reply.template.tags, reply.template.name,
                     reply.auto, now)


def answered(db: sqlite_utils.Database, config: Config, thread_id: int, tags: Sequence[str],
             template: str, auto: bool, now: dt.datetime) -> None:
    """What a reply that went out changes (caller's transaction): the template's tags, and
    unless it was automatic the state; the thread's summary is brought up to date now."""
    from . import triage  # (subjects, tagging, summary): overdue reads the outbox without it

    at = iso(now)
    if tags:
        states.change_tags(db, thread_id, tags, [], at, f"reply:{template}")
    if not auto:
        states.set_state(db, thread_id, states.State.WAITING, at, "reply")
    triage.refresh_threads(db, config, [thread_id], now, triage.RefreshResult())


def deliver(db: sqlite_utils.Database, config: Config, reply: Reply, now: dt.datetime,
            mailer: Mailer,
            session_factory: SessionFactory = default_session_factory) -> Outcome:
    """Send ``reply`` exactly once: record, transmit, record the outcome, file a copy.

    A server that cannot be reached or logged in to is reported before anything is
    recorded: no transaction was attempted."""
    try:
        mailer.connect()
    except NotSent as exc:
        return Outcome(0, FAILED, str(exc), exc.permanent, connection=True)
    with signals_held():  # from the claim to the outcome: a stop waits for the record
        oid = _claim(db, reply, now)
        _in_progress.add(oid)
        try:
            refused = mailer.send(reply.raw(), reply.sender, reply.recipients)
        except NotSent as exc:
            _settle(db, config, reply, oid, FAILED, now, str(exc), exc.permanent)
            return Outcome(oid, FAILED, str(exc), exc.permanent, exc.connection)
        except DeliveryUnknown as exc:
            _settle(db, config, reply, oid, UNKNOWN, now, str(exc))
            return Outcome(oid, UNKNOWN, str(exc))
        except BaseException as exc:  # a bug, not an answer: no one knows what went out
            _settle(db, config, reply, oid, UNKNOWN, now, f"{exc!r}"[:300])
            raise
        else:
            note = ("refused: " + "; ".join(f"{r}: {a}" for r, a in refused.items())
                    if refused else None)
            _settle(db, config, reply, oid, SENT, now, note)
        finally:
            _in_progress.discard(oid)
    return Outcome(oid, SENT, note, warning=file_sent_copy(db, config, reply, oid, now,
                                                           session_factory))


def file_sent_copy(db: sqlite_utils.Database, config: Config, reply: Reply, oid: int,
                   now: dt.datetime, session_factory: SessionFactory) -> str | None:
    """A \\Seen copy in the Sent folder, unless the provider files one itself
    (``smtp.sent_copy``); a failure is recorded and returned as a warning."""
    assert config.smtp is not None
    outcome, warning = "appended", None
    if not config.smtp.appends_sent_copy:
        outcome = "provider" if config.smtp.sent_copy == "auto" else "off"
    else:
        try:
            account = account_for(db, config, reply.thread_id)
            append(account, reply, "\\Sent", account.sent_folder, "Sent", ["\\Seen"], now,
                   session_factory)
        except Exception as exc:  # the mail is out: whatever broke the copy must not lose it
            outcome = "failed"
            warning = (f"thread {reply.thread_id}: sent, but no copy in the Sent folder: "
                       f"{' '.join(str(exc).split()) or exc.__class__.__name__}")
    db.execute("UPDATE outbox SET sent_copy = ? WHERE id = ?", [outcome, oid])
    db.conn.commit()
    return warning


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


def append(account: AccountConfig, reply: Reply, flag: str, configured: str | None,
           fallback: str, flags: Sequence[str], now: dt.datetime,
           factory: SessionFactory) -> str:
    with factory(account) as session:
        folder = configured or session.find_special(flag, fallback) or fallback
        session.append(folder, reply.raw(), flags=flags, when=now)
    return folder


def save_draft(db: sqlite_utils.Database, config: Config, reply: Reply, now: dt.datetime,
               session_factory: SessionFactory = default_session_factory) -> str:
    """APPEND to Drafts with \\Draft \\Seen and record it; no state or tag changes (a person
    still has to send it)."""
    account = account_for(db, config, reply.thread_id)
    folder = append(account, reply, "\\Drafts", account.drafts_folder, "Drafts",
                    ["\\Draft", "\\Seen"], now, session_factory)
    db.execute(
        "INSERT INTO outbox (thread_id, kind, template, message_id, to_addr, cc_addrs, subject, "
        "holding, auto, state, created_at, settled_at) "
        "VALUES (?, 'draft', ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        [reply.thread_id, reply.template.name, reply.message_id, reply.to_addr,
         json.dumps(reply.cc), reply.subject, int(reply.template.holding), DRAFTED, iso(now),
         iso(now)])
    db.conn.commit()
    return folder


def report_state(db: sqlite_utils.Database, report_for: str) -> str | None:
    """``sent`` or ``unknown`` when the report for this local date went out (or may have),
    ``sending`` while another process sends it; None when it is still to be sent."""
    row = db.execute("SELECT state FROM outbox WHERE kind = 'report' AND report_for = ? "
                     "AND state IN (?, ?, ?) ORDER BY id DESC LIMIT 1",
                     [report_for, *ACTIVE]).fetchone()
    return row[0] if row else None


def deliver_report(db: sqlite_utils.Database, config: Config, msg: EmailMessage,
                   report_for: str, now: dt.datetime) -> Outcome:
    """cron's daily report, like a reply: recorded ``sending`` before the SMTP transaction,
    so a lost answer or a killed run never sends that day's report twice (its fate is then
    ``unknown``, and the next report says so)."""
    from .smtp import Mailer, envelope_sender, header_recipients, wire_bytes

    raw, sender, recipients = wire_bytes(msg), envelope_sender(msg), header_recipients(msg)
    with Mailer(config.smtp) as mailer:
        try:
            mailer.connect()
        except NotSent as exc:
            return Outcome(0, FAILED, str(exc), exc.permanent, connection=True)
        with signals_held():
            with db.atomic():
                cur = db.execute(
                    "INSERT INTO outbox (kind, template, message_id, to_addr, cc_addrs, "
                    "subject, holding, auto, state, created_at, pid, sent_copy, report_for) "
                    "VALUES ('report', 'report', ?, ?, '[]', ?, 0, 1, ?, ?, ?, 'off', ?)",
                    [str(msg["Message-ID"]).strip("<>"), ", ".join(recipients),
                     str(msg["Subject"]), SENDING, iso(now), os.getpid(), report_for])
            oid = cur.lastrowid
            assert oid is not None
            _in_progress.add(oid)
            try:
                outcome = _transmit(mailer, raw, sender, recipients, oid)
            except BaseException as exc:  # a bug, not an answer: no one knows what went out
                outcome = Outcome(oid, UNKNOWN, f"{exc!r}"[:300])
                raise
            finally:
                with db.atomic():
                    db.execute("UPDATE outbox SET state = ?, error = ?, permanent = ?, "
                               "settled_at = ?, pid = NULL WHERE id = ?",
                               [outcome.state, outcome.error, int(outcome.permanent), iso(now),
                                oid])
                _in_progress.discard(oid)
    return outcome


def _transmit(mailer: Mailer, raw: bytes, sender: str, recipients: Sequence[str],
              oid: int) -> Outcome:
    try:
        refused = mailer.send(raw, sender, recipients)
    except NotSent as exc:
        return Outcome(oid, FAILED, str(exc), exc.permanent, exc.connection)
    except DeliveryUnknown as exc:
        return Outcome(oid, UNKNOWN, str(exc))
    note = "refused: " + "; ".join(f"{r}: {a}" for r, a in refused.items()) if refused else None
    return Outcome(oid, SENT, note, warning=note)


def needs_a_person_sql() -> str:
    """SQL on ``outbox o``: a reply whose fate is unknown, or that was refused for good, and
    that nothing has settled since — a person, a later reply, or the thread's state set by
    hand after it."""
    return (
        "(o.kind = 'reply' AND o.resolved_at IS NULL "
        " AND (o.state = 'unknown' OR (o.state = 'failed' AND o.permanent = 1)) "
        " AND NOT EXISTS (SELECT 1 FROM outbox l WHERE l.thread_id = o.thread_id "
        "   AND l.kind = 'reply' AND l.state = 'sent' AND l.auto = 0 AND l.id > o.id) "
        " AND NOT EXISTS (SELECT 1 FROM history h WHERE h.thread_id = o.thread_id "
        "   AND h.field = 'state' AND h.cause = 'cli' AND h.at > o.created_at))")


def resolve(db: sqlite_utils.Database, config: Config, outbox_id: int, delivered: bool,
            now: dt.datetime) -> dict[str, Any]:
    """A person settles an unknown or failed reply: it arrived after all, or it did not."""
    rows = list(db.query("SELECT * FROM outbox WHERE id = ?", [outbox_id]))
    if not rows or rows[0]["kind"] != "reply":
        raise OutboxError(f"no reply {outbox_id} in the outbox")
    row = rows[0]
    if row["state"] not in (UNKNOWN, FAILED) or row["resolved_at"]:
        raise OutboxError(f"outbox {outbox_id} is {row['state']}"
                          f"{' and settled' if row['resolved_at'] else ''}: nothing to resolve")
    at = iso(now)
    with db.atomic():
        if delivered:  # it counts from when it was sent, not from now
            db.execute("UPDATE outbox SET state = ?, settled_at = created_at, resolved_at = ? "
                       "WHERE id = ?", [SENT, at, outbox_id])
            from .render import load_reply

            tags: list[str] = []
            with contextlib.suppress(Exception):  # the template may be gone by now
                tags = load_reply(config, row["template"]).tags
            answered(db, config, row["thread_id"], tags, row["template"], bool(row["auto"]), now)
        else:
            db.execute("UPDATE outbox SET state = ?, resolved_at = ? WHERE id = ?",
                       [FAILED, at, outbox_id])
        states.record(db, row["thread_id"], at, "outbox", row["state"],
                      SENT if delivered else FAILED, "cli")
    return {**row, "state": SENT if delivered else FAILED, "resolved_at": at}


def arrived_copies(db: sqlite_utils.Database, message_ids: Sequence[str],
                   now: dt.datetime) -> int:
    """Unknown replies whose copy appeared in a Sent folder: the server took them (caller's
    transaction; the provider files that copy only for mail it accepted)."""
    if not message_ids:
        return 0
    marks = ",".join("?" * len(message_ids))
    cur = db.execute(f"UPDATE outbox SET state = ?, settled_at = created_at, resolved_at = ? "
                     f"WHERE state = ? AND message_id IN ({marks})",
                     [SENT, iso(now), UNKNOWN, *message_ids])
    return cur.rowcount
