"""Decisions about threads that threading must respect, read from ``thread_decisions``.

A person's split (threadfix.py) says: these messages do not belong with those.  Threading
never separates a thread by itself, so a merge holds without help; a split does not: the
split-off message still references its old thread, and so will every later reply to
either side.  :func:`keep_apart` tells the threader which of the threads a new message
links must stay apart, and :func:`place` puts each new message on the side it answers.

Decisions name messages by ``key`` (Message-ID plus a hash of From, Date and Subject), not
by row or thread id: keys are what ``sync --full`` and a UIDVALIDITY re-map find again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .store import query_rows

if TYPE_CHECKING:
    import sqlite_utils

    from .threader import NewMessage

Pair = tuple[int, int]


def add(db: sqlite_utils.Database, kind: str, at: str, cause: str, thread_id: int, *,
        new_thread_id: int | None = None, moved: Iterable[str] = (),
        stayed: Iterable[str] = (), message_key: str | None = None) -> None:
    """Keep one decision (caller's transaction)."""
    db.execute(
        "INSERT INTO thread_decisions (kind, at, cause, thread_id, new_thread_id, moved, "
        "stayed, message_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [kind, at, cause, thread_id, new_thread_id, json.dumps(sorted(moved)),
         json.dumps(sorted(stayed)), message_key])


def partition(tids: Sequence[int], apart: set[Pair]) -> list[list[int]]:
    """Pure: the threads in groups that may be one thread, oldest first; a thread joins
    the oldest group none of whose threads it must stay apart from."""
    groups: list[list[int]] = []
    for tid in sorted(tids):
        for g in groups:
            if not any((tid, other) in apart or (other, tid) in apart for other in g):
                g.append(tid)
                break
        else:
            groups.append([tid])
    return groups


def conflicts(splits: Iterable[tuple[Sequence[str], Sequence[str]]],
              thread_of: Mapping[str, int]) -> set[Pair]:
    """Pure: pairs of threads a split keeps apart: one holds a message split off, the
    other one that stayed."""
    out: set[Pair] = set()
    for moved, stayed in splits:
        left = {thread_of[k] for k in moved if k in thread_of}
        right = {thread_of[k] for k in stayed if k in thread_of}
        out.update((a, b) for a in left for b in right if a != b)
    return out


def keep_apart(db: sqlite_utils.Database, tids: Sequence[int]) -> list[list[int]]:
    """``tids`` (threads one new message links) grouped as hand splits allow: one group
    when no split separates any two of them."""
    splits = [(json.loads(moved), json.loads(stayed)) for moved, stayed in db.execute(
        "SELECT moved, stayed FROM thread_decisions WHERE kind = 'split'")]
    if not splits:
        return [sorted(tids)]
    keys = {k for moved, stayed in splits for k in (*moved, *stayed)}
    wanted = set(tids)
    thread_of = {key: tid for key, tid in query_rows(
        db, "SELECT key, thread_id FROM messages WHERE key IN ({in})", keys)
        if tid in wanted}
    return partition(tids, conflicts(splits, thread_of))


def place(db: sqlite_utils.Database, sides: Sequence[Sequence[int]],
          batch: Sequence[NewMessage]) -> dict[int, int]:
    """{message id: thread} for new messages whose links reach threads a split keeps apart:
    each joins the side holding the message it answers (In-Reply-To, else the nearest
    Reference), directly or through another new message it answers; else the oldest."""
    stored = _sides_of(db, sides, {p for m in batch for p in m.parents})
    placed: dict[int, int] = {}
    in_batch = {m.message_id: m.id for m in batch if m.message_id}
    for _ in range(len(batch)):  # answers within the batch: at most one pass per message
        progress = False
        for m in batch:
            if m.id in placed:
                continue
            for ref in m.parents:
                side = stored.get(ref)
                if side is None and ref in in_batch:
                    side = placed.get(in_batch[ref])
                if side is not None:
                    placed[m.id] = side
                    progress = True
                    break
        if not progress:
            break
    return {m.id: placed.get(m.id, sides[0][0]) for m in batch}


def _sides_of(db: sqlite_utils.Database, sides: Sequence[Sequence[int]],
              message_ids: set[str]) -> dict[str, int]:
    """{Message-ID: the side (its oldest thread) holding that message} for stored messages
    and for our replies not synced back from Sent yet."""
    survivor = {tid: side[0] for side in sides for tid in side}
    out: dict[str, int] = {}
    for sql in ("SELECT m.message_id, m.thread_id FROM message_refs r JOIN messages m "
                "ON m.id = r.message WHERE r.ref IN ({in}) AND m.message_id = r.ref",
                "SELECT message_id, thread_id FROM outbox WHERE message_id IN ({in})"):
        for mid, tid in query_rows(db, sql, message_ids):
            if tid in survivor:
                out.setdefault(mid, survivor[tid])
    return out


def kept_closed(db: sqlite_utils.Database, thread_ids: Sequence[int]) -> dict[str, str]:
    """{message key: cause} of the messages of these threads that a ``keep_closed`` rule
    left out of the wait (states.keep_closed)."""
    out: dict[str, str] = {}
    for key, cause in query_rows(
            db, "SELECT d.message_key, d.cause FROM thread_decisions d JOIN messages m "
                "ON m.key = d.message_key WHERE d.kind = 'keep_closed' "
                "AND m.thread_id IN ({in})", thread_ids):
        out[key] = cause
    return out


def by_hand(history: Iterable[Mapping[str, str | None]]) -> list[str]:
    """Pure: the merges and splits a person made, as ``explain`` says them, from the
    thread's history rows."""
    out: list[str] = []
    for h in history:
        if h["cause"] != "cli" or h["field"] not in ("merge", "split"):
            continue
        day = (h["at"] or "")[:16].replace("T", " ")
        if h["field"] == "merge":
            out.append(f"merged by hand on {day}: thread {h['old']} into {h['new']}")
        else:
            out.append(f"split by hand on {day}: messages of thread {h['old']} moved to "
                       f"thread {h['new']}")
    return out
