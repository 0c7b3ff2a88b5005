"""Group messages into conversations, incrementally, batch by batch.

The rule (README, "Threads"):

1. Two messages are in one thread when their *link sets* overlap.  A message's
   link set is its own Message-ID, its In-Reply-To and its References.  This is
   JWZ's grouping without the tree: siblings whose parent we never saw still meet
   at the parent's id, and a later message that references two threads merges
   them (the older thread id survives; the other becomes an alias).
2. Gmail's X-GM-THRID, where present, links messages the same way.
3. A message with neither In-Reply-To nor References whose subject starts with a
   reply prefix ("Re:", "AW:", ...) joins the thread holding an earlier message
   with the same normalised subject, sent or received within the last
   ``SUBJECT_WINDOW``, that shares at least one participant who is not the team;
   one with a forward prefix ("Fwd:", "WG:", ...) does when its sender (not the
   team) is a participant of that earlier message: a customer resending.  Whichever
   of the two is stored first, they meet: the threads do not depend on sync order.
4. What we sent (the ``outbox``) joins the thread we sent it to by its Message-ID.

A split made by hand (decisions.py) keeps its two sides apart whatever links them later.

Union-find over ids keeps it linear; a References cycle is just more unions, so
no input can make it loop.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from . import decisions, subjects
from .states import record
from .store import iso, parse_iso, query_in, query_rows

if TYPE_CHECKING:
    import sqlite_utils

SUBJECT_WINDOW = dt.timedelta(days=14)


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, x: Hashable) -> Hashable:
        parent = self.parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression, iteratively
            parent[x], x = root, parent[x]
        return root

    def union(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def link(self, key: Hashable, links: Iterable[str]) -> Hashable:
        """Join message ``key`` with every id of its link set (rule 1); return its node."""
        node = ("m", key)
        self.find(node)
        for ref in links:
            self.union(node, ("r", ref))
        return node


def link_set(message_id: str | None, in_reply_to: str | None, refs: Iterable[str]) -> set[str]:
    links = set(refs)
    if message_id:
        links.add(message_id)
    if in_reply_to:
        links.add(in_reply_to)
    return links


def group(items: Sequence[tuple[Hashable, Iterable[str]]]) -> list[list[Hashable]]:
    """Pure grouping by overlapping link sets: [(key, links)] -> groups of keys."""
    uf = UnionFind()
    for key, links in items:
        uf.link(key, links)
    groups: dict[Hashable, list[Hashable]] = defaultdict(list)
    for key, _ in items:
        groups[uf.find(("m", key))].append(key)
    return list(groups.values())


@dataclass
class NewMessage:
    """What threading needs of a message that was just stored."""

    id: int
    links: set[str]
    has_reply_headers: bool
    reply_subject: bool
    subject_norm: str
    participants: set[str]
    arrived_at: dt.datetime | None
    gm_thrid: str | None = None
    thread_id: int | None = field(default=None)
    forward_subject: bool = False  # "Fwd: ..." and the other forward prefixes
    sender: str | None = None
    message_id: str | None = None
    parents: tuple[str, ...] = ()  # In-Reply-To, then References nearest first


def assign_threads(
    db: sqlite_utils.Database,
    new: Sequence[NewMessage],
    is_us: Callable[[str], bool],
    now: dt.datetime,
) -> dict[int, int]:
    """Choose a thread for every message in ``new`` (not yet stored), creating threads and
    merging the ones it links; return {message id: thread id}.

    Runs inside the caller's transaction. Queries are per batch, never per message.
    """
    if not new:
        return {}
    uf = UnionFind()
    for msg in new:
        node = uf.link(msg.id, msg.links)
        if msg.gm_thrid:
            uf.union(node, ("g", msg.gm_thrid))
    _link_to_stored(db, new, uf)
    _link_by_subject(db, new, uf, is_us)
    return _settle(db, new, uf, now)


def _link_to_stored(db: sqlite_utils.Database, new: Sequence[NewMessage],
                    uf: UnionFind) -> None:
    """Join the stored threads that hold any of these links (rules 1, 2 and 4)."""
    all_links = set().union(*(m.links for m in new))
    for ref, tid in query_rows(
            db, "SELECT ref, thread_id FROM message_refs WHERE ref IN ({in})", all_links):
        uf.union(("r", ref), ("t", tid))
    # What we sent joins the thread we sent it to, whatever its headers say: a reply to
    # mail without a Message-ID has no In-Reply-To, yet its Sent copy is part of the thread.
    for mid, tid in query_rows(
            db, "SELECT message_id, thread_id FROM outbox WHERE message_id IN ({in}) "
                "AND thread_id IS NOT NULL", all_links):  # a report has no thread
        uf.union(("r", mid), ("t", tid))
    gm = {m.gm_thrid for m in new if m.gm_thrid}
    for row in query_in(db, "SELECT id, gm_thrid FROM threads WHERE gm_thrid IN ({in})", gm):
        uf.union(("g", row["gm_thrid"]), ("t", row["id"]))


def _settle(db: sqlite_utils.Database, new: Sequence[NewMessage], uf: UnionFind,
            now: dt.datetime) -> dict[int, int]:
    """One thread per group: the oldest stored one it touches (merging the others into it),
    else a new one."""
    new_ids = {m.id for m in new}
    components: dict[Hashable, list[int]] = defaultdict(list)
    existing: dict[Hashable, set[int]] = defaultdict(set)
    for node in list(uf.parent):
        kind, value = cast("tuple[str, Any]", node)  # every node is a (kind, value) pair
        if kind == "m" and value in new_ids:
            components[uf.find(node)].append(value)
        elif kind == "t":
            existing[uf.find(node)].add(value)
    gm_by_id = {m.id: m.gm_thrid for m in new if m.gm_thrid}
    next_id = next_thread_id(db)
    assignments: dict[int, int] = {}
    new_threads: list[dict[str, Any]] = []
    by_id = {m.id: m for m in new}
    for root, message_ids in components.items():
        tids = sorted(existing.get(root, ()))
        sides = decisions.keep_apart(db, tids) if len(tids) > 1 else [tids]
        for side in sides:
            if len(side) > 1:
                merge_threads(db, side[0], side[1:], now)
        if len(sides) > 1:  # a split by hand: each message joins the side it answers
            assignments.update(decisions.place(db, sides, [by_id[i] for i in message_ids]))
            continue
        if tids:
            survivor = tids[0]
        else:
            survivor, next_id = next_id, next_id + 1
            thrid = next((gm_by_id[i] for i in message_ids if i in gm_by_id), None)
            new_threads.append({"id": survivor, "dirty": 1, "gm_thrid": thrid})
        assignments.update((mid, survivor) for mid in message_ids)
    if new_threads:
        db.table("threads").insert_all(new_threads)
    mark_dirty(db, set(assignments.values()))
    return assignments


@dataclass(frozen=True)
class _Dated:
    """A message as rule 3 compares it; ``seeks`` is set when it may join by subject."""

    at: dt.datetime
    people: frozenset[str]
    node: Hashable
    seeks: frozenset[str] = frozenset()  # one of these must be among the earlier one's people


def _seeks(reply: bool, forward: bool, people: Iterable[str], sender: str | None,
           is_us: Callable[[str], bool]) -> frozenset[str]:
    """A reply shares a participant; a forward is a resend by one of the thread's people."""
    if reply:
        return frozenset(p for p in people if not is_us(p))
    if forward and sender and not is_us(sender):
        return frozenset({sender})
    return frozenset()


def _link_by_subject(
    db: sqlite_utils.Database, new: Sequence[NewMessage], uf: UnionFind,
    is_us: Callable[[str], bool],
) -> None:
    """Rule 3 as a relation between two messages, so the threads do not depend on which of
    them was stored first: a new follow-up joins every earlier match, stored or in this
    batch, and a new message joins every stored follow-up it is the earlier match of."""
    by_subject: dict[str, list[_Dated]] = defaultdict(list)
    for m in new:
        if m.subject_norm and m.arrived_at:
            seeks = (frozenset() if m.has_reply_headers else
                     _seeks(m.reply_subject, m.forward_subject, m.participants, m.sender, is_us))
            by_subject[m.subject_norm].append(
                _Dated(m.arrived_at, frozenset(m.participants), ("m", m.id), seeks))
    if not by_subject:
        return
    stored = _stored_by_subject(db, by_subject, is_us)
    fresh = {("m", m.id) for m in new}
    for subject, batch in by_subject.items():
        pool = batch + stored.get(subject, [])
        for late in pool:
            if not late.seeks:
                continue
            for early in pool:
                if ((late.node in fresh or early.node in fresh)
                        and late.at - SUBJECT_WINDOW <= early.at < late.at
                        and late.seeks & early.people):
                    uf.union(late.node, early.node)


def _stored_by_subject(
    db: sqlite_utils.Database, batch: dict[str, list[_Dated]], is_us: Callable[[str], bool],
) -> dict[str, list[_Dated]]:
    """Stored messages with a subject of this batch that rule 3 may pair with it: those up
    to ``SUBJECT_WINDOW`` before a follow-up in it, and follow-ups up to as long after any
    message in it."""
    seeking = {s for s, items in batch.items() if any(d.seeks for d in items)}
    times = [d.at for items in batch.values() for d in items]
    first, last = min(times), max(times)
    rows = {}
    for row in query_in(
        db, f"SELECT {_STORED} FROM messages WHERE subject_norm IN ({{in}}) AND arrived_at >= ? "
            "AND arrived_at < ? AND thread_id IS NOT NULL", seeking,
            [iso(first - SUBJECT_WINDOW), iso(last)]):
        rows[row["id"]] = row
    for row in query_in(
        db, f"SELECT {_STORED} FROM messages WHERE subject_norm IN ({{in}}) AND arrived_at > ? "
            "AND arrived_at <= ? AND thread_id IS NOT NULL AND follow_up_subject = 1 "
            "AND in_reply_to IS NULL AND refs IS NULL", list(batch),
            [iso(first), iso(last + SUBJECT_WINDOW)]):
        rows[row["id"]] = row
    out: dict[str, list[_Dated]] = defaultdict(list)
    for row in rows.values():
        at = parse_iso(row["arrived_at"])
        if not at:
            continue
        people = _people(row["from_addr"], row["to_addrs"], row["cc_addrs"])
        seeks: frozenset[str] = frozenset()
        if row["in_reply_to"] is None and row["refs"] is None:
            subject = row["subject"] or ""
            seeks = _seeks(subjects.is_reply_subject(subject),
                           subjects.is_forward_subject(subject), people, row["from_addr"],
                           is_us)
        out[row["subject_norm"]].append(
            _Dated(at, frozenset(people), ("t", row["thread_id"]), seeks))
    return out


_STORED = ("id, subject, subject_norm, thread_id, from_addr, to_addrs, cc_addrs, arrived_at, "
           "in_reply_to, refs")


def _people(from_addr: str | None, to_json: str | None, cc_json: str | None) -> set[str]:
    people = set(json.loads(to_json or "[]")) | set(json.loads(cc_json or "[]"))
    if from_addr:
        people.add(from_addr)
    return people


def next_thread_id(db: sqlite_utils.Database) -> int:
    """An id no thread had yet (merged ones' ids still resolve to where they went)."""
    row = db.execute(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM threads), 0), "
        "COALESCE((SELECT MAX(old_id) FROM thread_aliases), 0))"
    ).fetchone()
    return int(row[0]) + 1


def mark_dirty(db: sqlite_utils.Database, thread_ids: Iterable[int]) -> None:
    db.conn.executemany("UPDATE threads SET dirty = 1 WHERE id = ?", [(t,) for t in thread_ids])


def merge_threads(
    db: sqlite_utils.Database, survivor: int, others: Sequence[int], now: dt.datetime,
    cause: str = "sync",
) -> None:
    """Fold ``others`` into ``survivor``, keeping every tag, state and history row."""
    at = iso(now)
    for old in others:
        args = [survivor, old]
        db.execute("UPDATE message_refs SET thread_id = ? WHERE message IN "
                   "(SELECT id FROM messages WHERE thread_id = ?)", args)
        db.execute("UPDATE messages SET thread_id = ? WHERE thread_id = ?", args)
        db.execute(
            "INSERT OR IGNORE INTO tags (thread_id, tag, added_at, cause) "
            "SELECT ?, tag, added_at, cause FROM tags WHERE thread_id = ?", args
        )
        db.execute("DELETE FROM tags WHERE thread_id = ?", [old])
        db.execute(
            "INSERT OR IGNORE INTO thread_state (thread_id, state, snoozed_until, priority, "
            "changed_at, assignee) SELECT ?, state, snoozed_until, priority, changed_at, assignee "
            "FROM thread_state WHERE thread_id = ?", args
        )
        db.execute("UPDATE thread_state SET assignee = COALESCE(assignee, (SELECT assignee "
                   "FROM thread_state WHERE thread_id = ?)) WHERE thread_id = ?", [old, survivor])
        db.execute("DELETE FROM thread_state WHERE thread_id = ?", [old])
        db.execute("UPDATE notes SET thread_id = ? WHERE thread_id = ?", args)
        db.execute("UPDATE history SET thread_id = ? WHERE thread_id = ?", args)
        db.execute("UPDATE outbox SET thread_id = ? WHERE thread_id = ?", args)
        db.execute("UPDATE bounces SET thread_id = ? WHERE thread_id = ?", args)
        db.execute("UPDATE thread_aliases SET thread_id = ? WHERE thread_id = ?", args)
        db.execute("INSERT OR REPLACE INTO thread_aliases (old_id, thread_id) VALUES (?, ?)",
                   [old, survivor])
        record(db, survivor, at, "merge", old, survivor, cause)
        db.execute("DELETE FROM threads WHERE id = ?", [old])
    db.execute("UPDATE threads SET dirty = 1 WHERE id = ?", [survivor])
