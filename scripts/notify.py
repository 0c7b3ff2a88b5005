"""A nudge in chat: ``triage run`` posts one message per run listing what newly happened.

Each event is a condition that holds now for a thread (or, for ``sync_failed``, an account);
it is told once when it starts to hold and again only after it cleared and came back:

* ``overdue``: ``overdue`` lists the thread as unanswered past its SLA or due for a
  follow-up.  Clears when it is not listed so: answered, closed, snoozed, news sent.
* ``bounced``: ``overdue`` lists it as bounced (bounces.py): a delivery report names our
  mail to it.  Clears when someone writes to the thread again or sets its state by hand.
* ``delivery_unknown``: ``overdue`` lists a reply of ours to it whose delivery is unknown
  (outbox.py).  Clears when settled: ``outbox resolve``, a later reply, a state by hand, or
  its copy turning up in Sent.
* ``urgent``: priority ``urgent`` (a rule) while the customer waits on us (open, or an
  expired snooze: states.py).  Clears when answered, closed, snoozed or re-prioritised.
* ``sync_failed``: a folder of the account holds the error of its last sync
  (``folders.last_error``).  Clears at the next good sync.

The first three reuse the list ``overdue()`` made for the run, so each rule stays where it
is written.  A message that no URL took is tried again by the next runs (at most
:data:`MAX_ATTEMPTS` times) with whatever is still new; a failure is recorded in
``notify_attempts`` and becomes a warning of the run, never a failure.  No URL is ever
written anywhere: an entry is named by its place in the config (``notify.urls[1]``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import Config
from .credentials import from_env_or_cmd
from .errors import ConfigError
from .notifyconfig import EVENTS, NotifyURL
from .states import open_sql
from .store import iso
from .text import one_line

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # messages listing an event that no URL took, then it is given up
MAX_LINES = 20  # per event in one message; the rest is counted
TIMEOUT = 30.0  # seconds for one URL, all of Apprise's retries included
HEADINGS = {"overdue": "Waiting too long", "bounced": "Our mail bounced",
            "delivery_unknown": "Delivery of our reply unknown", "urgent": "Urgent",
            "sync_failed": "Sync failed"}
ITEM_EVENTS = {"unanswered": "overdue", "followup": "overdue", "bounced": "bounced",
               "delivery_unknown": "delivery_unknown"}  # overdue()'s reasons -> events

Key = tuple[str, int | None, str | None]  # (event, thread_id, account)


@dataclass
class Attempt:
    """What became of the message at one URL."""

    target: str
    service: str
    error: str | None = None


def _defang(value: Any, width: int) -> str:
    """A stranger's text (a subject, a bounce's diagnostic) made one clean line that cannot
    ping the channel: ``@everyone``, ``@here`` and Slack's ``<!channel>`` are mentions."""
    text = re.sub(r"(?<![\w.+-])@", "(at)", one_line(value, width))
    return text.replace("<!", "< !")


def _thread_line(tid: int, subject: Any, customer: Any, extra: str = "") -> str:
    text = f'#{tid} "{_defang(subject, 80)}"'
    if customer:
        text += f" from {_defang(customer, 80)}"
    return text + (f" ({_defang(extra, 160)})" if extra else "")


def conditions(items: Iterable[Mapping[str, Any]], urgent: Iterable[Mapping[str, Any]],
               failed: Mapping[str, str], events: Sequence[str]) -> dict[Key, str]:
    """Every event that holds now, with the line a message shows for it (pure): ``items``
    as ``overdue()`` lists them, the urgent open threads, the accounts whose sync failed."""
    now: dict[Key, str] = {}
    for item in items:
        event = ITEM_EVENTS.get(item["reason"], "")
        key: Key = (event, item["thread_id"], None)
        if event in events and key not in now:
            extra = "due for a follow-up" if item["reason"] == "followup" else (
                f"since {item['waiting_since']}" if event == "overdue" else item.get("detail"))
            now[key] = _thread_line(item["thread_id"], item["subject"], item["customer"],
                                    extra or "")
    if "urgent" in events:
        for row in urgent:
            now[("urgent", row["id"], None)] = _thread_line(row["id"], row["subject"],
                                                            row["customer"])
    if "sync_failed" in events:
        for account, error in failed.items():
            now[("sync_failed", None, account)] = f"account {account}: {_defang(error, 200)}"
    return now


def diff(open_keys: Iterable[Key], current: Iterable[Key]) -> tuple[set[Key], set[Key]]:
    """(started, cleared): what holds now and was not open, what was open and holds no
    more (pure).  Something that cleared and holds again is started anew."""
    was, now = set(open_keys), set(current)
    return now - was, was - now


def message(lines: Mapping[Key, str]) -> tuple[str, str]:
    """(title, body) of the one message listing ``lines``, grouped by event (pure)."""
    counts = []
    body = []
    for event in EVENTS:
        mine = sorted(line for key, line in lines.items() if key[0] == event)
        if not mine:
            continue
        counts.append(f"{len(mine)} {event}")
        body.append(f"{HEADINGS[event]} ({len(mine)}):")
        body += [f"- {line}" for line in mine[:MAX_LINES]]
        if len(mine) > MAX_LINES:
            body.append(f"- … and {len(mine) - MAX_LINES} more (triage overdue)")
    return "mailtriage: " + ", ".join(counts), "\n".join(body)


def _urgent(db: sqlite_utils.Database, now: dt.datetime) -> list[dict[str, Any]]:
    return list(db.query(
        "SELECT t.id, t.subject, t.customer FROM threads t JOIN thread_state s "
        f"ON s.thread_id = t.id WHERE s.priority = 'urgent' AND {open_sql()}", [iso(now)]))


def _failed_accounts(db: sqlite_utils.Database, config: Config) -> dict[str, str]:
    names = [a.name for a in config.accounts]
    rows = db.execute(
        "SELECT account, MIN(last_error) FROM folders WHERE last_error IS NOT NULL "
        f"AND account IN ({','.join('?' * len(names))}) GROUP BY account", names)
    return {account: error for account, error in rows}


def track(db: sqlite_utils.Database, current: Mapping[Key, str],
          now: dt.datetime) -> dict[Key, int]:
    """Record what started and cleared; return the events to tell now (with their ids):
    open, never delivered, not yet given up."""
    at = iso(now)
    with db.atomic():
        rows = {(r[1], r[2], r[3]): r[0] for r in db.execute(
            "SELECT id, event, thread_id, account FROM notify_events WHERE cleared_at IS NULL")}
        started, cleared = diff(rows, current)
        db.conn.executemany("UPDATE notify_events SET cleared_at = ? WHERE id = ?",
                            [(at, rows[key]) for key in cleared])
        db.conn.executemany(
            "INSERT INTO notify_events (event, thread_id, account, since) VALUES (?, ?, ?, ?)",
            [(*key, at) for key in sorted(started, key=repr)])
        pending = list(db.execute(
            "SELECT id, event, thread_id, account FROM notify_events WHERE cleared_at IS NULL "
            "AND notified_at IS NULL AND attempts < ?", [MAX_ATTEMPTS]))
    return {(r[1], r[2], r[3]): r[0] for r in pending}


def _redact(text: str, url: str) -> str:
    """Apprise's words about a failure, with every piece of the URL taken out."""
    pieces = {url, *re.split(r"[^A-Za-z0-9_\-]+", url.partition("://")[2])}
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= 4:
            text = text.replace(piece, "***")
    return one_line(text, 300)


def deliver(entry: NotifyURL, title: str, body: str) -> Attempt:
    """Post the message to one URL through Apprise (imported only now: a run without
    ``notify:`` never loads it); any failure is in the Attempt, never raised."""
    attempt = Attempt(entry.key_prefix, entry.service)
    try:
        url = entry.url or from_env_or_cmd(entry, "url", entry.url_env, entry.url_cmd)
    except ConfigError as exc:  # names the key and the variable or command, never a value
        attempt.error = str(exc)
        return attempt
    said: list[str] = []
    try:
        import apprise

        logging.getLogger("apprise").propagate = False  # its debug lines show whole URLs
        app = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
        if not app.add(url):
            attempt.error = "not a URL Apprise can send to"
            return attempt
        ok = bool(app.notify(body=body, title=title, timeout=TIMEOUT,
                             log_callback=lambda line, _service: said.append(line.message)))
    except Exception as exc:  # Apprise missing, or a plugin's bug: never stops the run
        said.append(type(exc).__name__)
        ok = False
    if not ok:
        attempt.error = _redact(said[-1] if said else "not delivered", url)
    return attempt


def record(db: sqlite_utils.Database, pending: Iterable[int], attempts: Sequence[Attempt],
           now: dt.datetime) -> None:
    """Each URL's outcome; the events are told once any URL took the message."""
    at, ids = iso(now), [(i,) for i in pending]
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO notify_attempts (at, target, service, events, ok, error) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(at, a.target, a.service, len(ids), int(a.error is None), a.error)
             for a in attempts])
        if any(a.error is None for a in attempts):
            db.conn.executemany("UPDATE notify_events SET notified_at = ? WHERE id = ?",
                                [(at, i) for (i,) in ids])
        else:
            db.conn.executemany("UPDATE notify_events SET attempts = attempts + 1 "
                                "WHERE id = ?", ids)


def notify_run(db: sqlite_utils.Database, config: Config, now: dt.datetime,
               items: Iterable[Mapping[str, Any]]) -> list[str]:
    """The run's one message, if anything new happened; the warnings it leaves."""
    settings = config.notify
    if settings is None:
        return []
    events = settings.events
    current = conditions(items, _urgent(db, now) if "urgent" in events else [],
                         _failed_accounts(db, config) if "sync_failed" in events else {},
                         events)
    pending = track(db, current, now)
    if not pending:
        return []
    title, body = message({key: current[key] for key in pending})
    attempts = [deliver(entry, title, body) for entry in settings.urls]
    record(db, pending.values(), attempts, now)
    log.info("notified %d event(s) to %d of %d URL(s)", len(pending),
             sum(a.error is None for a in attempts), len(attempts))
    return [f"notify {a.target} ({a.service}): not delivered: {a.error}"
            for a in attempts if a.error]
