"""Thread states, and the one place each rule about them is written.

``open`` (the customer waits on us), ``waiting`` (we answered), ``snoozed`` (hidden until a
time), ``closed``, and ``gone``: none of its mail is left in a synced folder (expunged, or
moved to a folder that is not synced), so nobody can answer it and it is never overdue; it
takes the state its mail calls for again when the mail comes back.  A snooze runs out at
its time, not at the next sync: a snoozed thread whose time has passed counts as open
everywhere, through :func:`open_sql` in queries and :func:`effective` in Python.  Customer
mail that a ``keep_closed`` rule matches ("Thanks!") leaves a closed thread closed
(:func:`keep_closed`).  Every change -- and every change of tags, priority and assignee --
is written with its cause to ``history``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from . import decisions
from .rules import MessageView
from .senders import CUSTOMER, classify_row
from .store import iso, parse_iso, query_in, query_rows

if TYPE_CHECKING:
    import sqlite_utils

    from .config import Config
    from .summary import Summary


class State(StrEnum):
    OPEN = "open"
    WAITING = "waiting"
    SNOOZED = "snoozed"
    CLOSED = "closed"
    GONE = "gone"


STATES = tuple(s.value for s in State)


def open_sql(now_param: str = "?") -> str:
    """SQL on ``thread_state s``: open, or snoozed until a time that has passed."""
    return f"(s.state = 'open' OR (s.state = 'snoozed' AND s.snoozed_until <= {now_param}))"


def effective(state: str | None, snoozed_until: str | None, now: dt.datetime) -> str:
    """The state a thread is in at ``now``: an expired snooze is open."""
    if state == State.SNOOZED and snoozed_until and snoozed_until <= iso(now):
        return State.OPEN.value
    return state or State.OPEN.value


def record(db: sqlite_utils.Database, thread_id: int, at: str, fld: str, old: Any, new: Any,
           cause: str) -> None:
    db.execute(
        "INSERT INTO history (thread_id, at, field, old, new, cause) VALUES (?, ?, ?, ?, ?, ?)",
        [thread_id, at, fld, None if old is None else str(old),
         None if new is None else str(new), cause],
    )


def set_state(db: sqlite_utils.Database, thread_id: int, state: str, at: str, cause: str,
              snoozed_until: str | None = None, current: Mapping[str, Any] | None = None) -> bool:
    """Change a thread's state (with history); return whether it changed."""
    if current is None:
        rows = list(db.query("SELECT * FROM thread_state WHERE thread_id = ?", [thread_id]))
        current = rows[0] if rows else None
    old = current["state"] if current else None
    old_until = current["snoozed_until"] if current else None
    if old == state and old_until == snoozed_until:
        return False
    db.execute(
        "INSERT INTO thread_state (thread_id, state, snoozed_until, changed_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT(thread_id) DO UPDATE SET state = excluded.state, "
        "snoozed_until = excluded.snoozed_until, changed_at = excluded.changed_at",
        [thread_id, state, snoozed_until, at],
    )
    record(db, thread_id, at, "state", old, state + (f" until {snoozed_until}"
                                                       if snoozed_until else ""), cause)
    return True


def change_tags(db: sqlite_utils.Database, thread_id: int, add: Iterable[str],
                remove: Iterable[str], at: str, cause: str) -> list[str]:
    """Add and remove tags with history; return the changes made (``+tag``/``-tag``)."""
    changes = []
    for tag in add:
        cur = db.execute("INSERT OR IGNORE INTO tags (thread_id, tag, added_at, cause) "
                         "VALUES (?, ?, ?, ?)", [thread_id, tag, at, cause])
        if cur.rowcount:
            record(db, thread_id, at, "tag", None, "+" + tag, cause)
            changes.append("+" + tag)
    for tag in remove:
        cur = db.execute("DELETE FROM tags WHERE thread_id = ? AND tag = ?", [thread_id, tag])
        if cur.rowcount:
            record(db, thread_id, at, "tag", None, "-" + tag, cause)
            changes.append("-" + tag)
    return changes


def set_priority(db: sqlite_utils.Database, thread_id: int, priority: str | None, at: str,
                 cause: str) -> bool:
    return _set_decision(db, thread_id, "priority", priority, at, cause)


def set_assignee(db: sqlite_utils.Database, thread_id: int, name: str | None, at: str,
                 cause: str) -> bool:
    """Give a thread to a team member (``None``: to nobody), with history."""
    return _set_decision(db, thread_id, "assignee", name, at, cause)


def _set_decision(db: sqlite_utils.Database, thread_id: int, column: str, value: str | None,
                  at: str, cause: str) -> bool:
    """Set one column of ``thread_state`` (a thread without a row yet gets one, open), with
    history; whether it changed."""
    assert column in ("priority", "assignee")  # a column name, never a value
    row = db.execute(f"SELECT {column} FROM thread_state WHERE thread_id = ?",
                     [thread_id]).fetchone()
    old = row[0] if row else None
    if old == value:
        return False
    if row:
        db.execute(f"UPDATE thread_state SET {column} = ? WHERE thread_id = ?",
                   [value, thread_id])
    else:
        db.execute(f"INSERT INTO thread_state (thread_id, state, {column}, changed_at) "
                   "VALUES (?, 'open', ?, ?)", [thread_id, value, at])
    record(db, thread_id, at, column, old, value, cause)
    return True


def assign_if_unowned(db: sqlite_utils.Database, thread_id: int, name: str, at: str,
                      cause: str) -> bool:
    """Give the thread to ``name`` only if nobody owns it: a rule or a member's reply never
    overrides a person's choice."""
    row = db.execute("SELECT assignee FROM thread_state WHERE thread_id = ?",
                     [thread_id]).fetchone()
    return not (row and row[0]) and set_assignee(db, thread_id, name, at, cause)


def follow_mail(db: sqlite_utils.Database, tid: int, s: Summary,
                current: Mapping[str, Any], at: str) -> bool:
    """Move a thread's state after its mail changed (caller's transaction): new customer
    mail reopens a closed or snoozed thread, our answer moves open to waiting, the customer
    writing again moves waiting back to open.  True when it reopened the thread."""
    waiting = s.waiting_since is not None
    state = current["state"]
    changed_at = parse_iso(current["changed_at"]) or dt.datetime.min.replace(tzinfo=dt.UTC)
    new_customer_mail = waiting and s.last_customer_at is not None \
        and s.last_customer_at > changed_at
    if state in (State.CLOSED, State.SNOOZED) and new_customer_mail:
        set_state(db, tid, State.OPEN, at, "sync: new customer mail", current=current)
        return True
    if state == State.OPEN and not waiting and not s.automated:
        set_state(db, tid, State.WAITING, at, "sync: answered", current=current)
    elif state == State.WAITING and waiting:
        set_state(db, tid, State.OPEN, at, "sync: customer wrote again", current=current)
    return False


def follow_presence(db: sqlite_utils.Database, tid: int, s: Summary,
                    current: Mapping[str, Any], at: str, present: bool) -> bool:
    """A thread whose mail all left the synced folders is gone (a closed one stays closed);
    a gone one whose mail is back gets the state a new thread with this mail would.  True
    when it changed the state (then :func:`follow_mail` has nothing to do)."""
    state = current["state"]
    if not present and state in (State.OPEN, State.WAITING, State.SNOOZED):
        return set_state(db, tid, State.GONE, at,
                         "sync: none of its mail is left in a synced folder", current=current)
    if present and state == State.GONE:
        return set_state(db, tid, first_state(s), at, "sync: its mail is back", current=current)
    return False


def first_state(s: Summary) -> State:
    """A new thread's state: closed when only machines wrote, open when the customer waits."""
    if s.automated:
        return State.CLOSED
    return State.OPEN if s.waiting_since is not None else State.WAITING


def wake_snoozed(db: sqlite_utils.Database, now: dt.datetime) -> list[int]:
    """Snoozes that have run out go back to open (customer waiting) or waiting."""
    at = iso(now)
    woken = []
    for r in db.query(
        "SELECT s.*, t.waiting_since FROM thread_state s JOIN threads t ON t.id = s.thread_id "
        "WHERE s.state = 'snoozed' AND s.snoozed_until <= ?", [at]
    ):
        state = State.OPEN if r["waiting_since"] else State.WAITING
        set_state(db, r["thread_id"], state, at, "sync: snooze expired", current=r)
        woken.append(r["thread_id"])
    return woken




def keep_closed(db: sqlite_utils.Database, config: Config, thread_ids: Sequence[int],
                current: Mapping[int, Mapping[str, Any]], at: str) -> None:
    """New customer mail that a ``keep_closed`` rule matches, arriving in a closed thread,
    neither reopens it nor starts a wait.  Decided once, when the mail is first seen (not
    yet triaged), and kept in ``thread_decisions`` by the message's key, so every later
    summary leaves it out (summary.Event.quiet) even after the thread is reopened; a real
    question after it still reopens the thread (caller's transaction, before summaries)."""
    rules = [r for r in config.rules if r.keep_closed]
    closed = [t for t in thread_ids if (c := current.get(t)) and c["state"] == State.CLOSED]
    if not rules or not closed:
        return
    rows = list(query_in(
        db, "SELECT * FROM messages WHERE thread_id IN ({in}) AND triaged = 0 AND draft = 0 "
            "AND key NOT IN (SELECT message_key FROM thread_decisions "
            "WHERE kind = 'keep_closed')", closed))
    folders: dict[int, list[str]] = defaultdict(list)
    for message, folder in query_rows(
            db, "SELECT message, folder FROM locations WHERE message IN ({in})",
            [r["id"] for r in rows]):
        folders[message].append(folder)
    for row in rows:
        if classify_row(row, config.team) != CUSTOMER:
            continue  # ours or a machine's: neither reopens a thread anyway
        view = MessageView(row, folders[row["id"]])
        rule = next((r for r in rules if r.matches(view)), None)
        if rule is None:
            continue
        cause = f"rule:{rule.name}"
        decisions.add(db, "keep_closed", at, cause, row["thread_id"], message_key=row["key"])
        record(db, row["thread_id"], at, "kept_closed", None, row["message_id"], cause)
