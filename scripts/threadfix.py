"""Fixing threads by hand (``triage merge``, ``triage split``).

A merge folds threads into the oldest one, exactly as threading's own merges do (tags,
state, assignee, notes, history and replies kept; the old ids still resolve).  A split
moves messages to a new thread whose state, like any new thread's, follows from its mail;
the thread they left keeps its tags, state and history.  Both are kept in
``thread_decisions`` (decisions.py) so later threading cannot undo them, and in
``history`` with cause ``cli``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import decisions
from .errors import UsageError
from .states import record
from .store import chunks, iso, query_rows, resolve_thread_id
from .threader import mark_dirty, merge_threads, next_thread_id

if TYPE_CHECKING:
    import sqlite_utils


def thread_arg(db: sqlite_utils.Database, ref: str) -> int:
    """A thread id as typed, following merges; an unknown one is a usage error (exit 2)."""
    tid = resolve_thread_id(db, ref)
    if tid is None:
        raise UsageError(f"no thread {ref!r}")
    return tid


def _keys(db: sqlite_utils.Database, tid: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT key FROM messages WHERE thread_id = ?", [tid])]


def merge(db: sqlite_utils.Database, refs: Sequence[str], now: dt.datetime) -> int:
    """Fold the threads named into the oldest (lowest id) of them; return it.  Caller's
    transaction."""
    tids = sorted({thread_arg(db, ref) for ref in refs})
    if len(tids) < 2:
        raise UsageError(f"{' and '.join(refs)}: that is one thread, nothing to merge"
                         if len(refs) > 1 else "name at least two threads to merge")
    survivor, others = tids[0], tids[1:]
    stayed = _keys(db, survivor)
    moved = [k for tid in others for k in _keys(db, tid)]
    merge_threads(db, survivor, others, now, cause="cli")
    decisions.add(db, "merge", iso(now), "cli", survivor, moved=moved, stayed=stayed)
    return survivor


def _message_ref(text: str) -> str:
    return text.strip().removeprefix("<").removesuffix(">")


def split(db: sqlite_utils.Database, ref: str, message_ids: Sequence[str],
          now: dt.datetime) -> int:
    """Move the messages with these Message-IDs out of thread ``ref`` into a new thread;
    return its id.  Caller's transaction."""
    tid = thread_arg(db, ref)
    wanted = {_message_ref(m) for m in message_ids}
    rows = list(db.execute("SELECT id, key, message_id, original_id FROM messages "
                           "WHERE thread_id = ?", [tid]))
    moving = [r for r in rows if r[2] in wanted]
    missing = sorted(wanted - {r[2] for r in moving})
    if missing:
        raise UsageError(_not_in_thread(db, missing[0], tid))
    if len(moving) == len(rows):
        raise UsageError(f"that is every message of thread {tid}: nothing would stay "
                         "(split off fewer)")
    new = next_thread_id(db)
    at = iso(now)
    db.table("threads").insert({"id": new, "dirty": 1})
    ids = [r[0] for r in moving]
    sent_ids = sorted({i for r in moving for i in (r[2], r[3]) if i})
    # The messages are triaged again: the rules act on the new thread as on new mail.
    _update(db, "UPDATE messages SET thread_id = ?, triaged = 0 WHERE id IN ({in})", new, ids)
    _update(db, "UPDATE message_refs SET thread_id = ? WHERE message IN ({in})", new, ids)
    # What we sent, and its bounces, go where the message went.
    _update(db, "UPDATE outbox SET thread_id = ? WHERE message_id IN ({in}) "
                "AND thread_id = ?", new, sent_ids, tid)
    _update(db, "UPDATE bounces SET thread_id = ? WHERE original_id IN ({in}) "
                "AND thread_id = ?", new, sent_ids, tid)
    moved = [r[1] for r in moving]
    decisions.add(db, "split", at, "cli", tid, new_thread_id=new, moved=moved,
                  stayed=[r[1] for r in rows if r[0] not in set(ids)])
    for thread in (tid, new):
        record(db, thread, at, "split", tid, new, "cli")
    mark_dirty(db, [tid, new])
    return new


def _update(db: sqlite_utils.Database, sql: str, new: int, values: Sequence[object],
            *extra: object) -> None:
    for part in chunks(values):
        db.execute(sql.format(**{"in": ",".join("?" * len(part))}), [new, *part, *extra])


def _not_in_thread(db: sqlite_utils.Database, message_id: str, tid: int) -> str:
    where = [t for (t,) in query_rows(
        db, "SELECT DISTINCT thread_id FROM messages WHERE message_id IN ({in})", [message_id])]
    if where:
        return (f"message <{message_id}> is not in thread {tid} "
                f"(it is in thread {', '.join(map(str, where))})")
    return f"no message <{message_id}> in thread {tid}"
