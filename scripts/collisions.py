"""Look before sending: someone may already be on it.

Right before a reply goes out, the mail of its account is brought up to date from the
server (an incremental sync: one STATUS per folder when nothing changed, milliseconds) and
the send is refused, unless ``--force``, when that brought something new into the thread
(a teammate's reply, a new customer message) or a teammate's draft for the thread sits in
Drafts.  Drafts that ``reply --draft`` saved are ours and do not count.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import Config
from .store import query_in, query_rows, resolve_thread_id
from .text import one_line

if TYPE_CHECKING:
    import sqlite_utils


@dataclass
class Change:
    """Something in a thread the person sending has not seen."""

    thread_id: int
    kind: str  # message | draft
    from_addr: str
    from_name: str
    at: str
    subject: str
    snippet: str

    def describe(self) -> str:
        who = one_line(f"{self.from_name} <{self.from_addr}>" if self.from_name
                       else self.from_addr or "someone")
        what = "a draft by" if self.kind == "draft" else "a new message from"
        return f"{what} {who} ({self.at}): {one_line(self.snippet or self.subject, 80)}"


def _messages(db: sqlite_utils.Database, thread_ids: Iterable[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for tid, mid in query_rows(db, "SELECT thread_id, id FROM messages WHERE thread_id IN ({in})",
                               list(thread_ids)):
        out[tid].add(mid)
    return out


def _row_change(thread_id: int, row: Any, kind: str) -> Change:
    return Change(thread_id, kind, row["from_addr"] or "", row["from_name"] or "",
                  row["arrived_at"] or "", row["subject"] or "", row["snippet"] or "")


# SQL on ``messages m``: a draft in a Drafts folder now that we did not save ourselves
# (teammate_drafts; listing.draft_by_json_sql lists their authors in SQL).
TEAMMATE_DRAFT_SQL = ("m.draft = 1 AND EXISTS (SELECT 1 FROM locations l WHERE l.message = m.id) "
                      "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.message_id)")


def teammate_drafts(db: sqlite_utils.Database,
                    thread_ids: Sequence[int]) -> dict[int, list[Change]]:
    """Drafts in a Drafts folder now, for these threads, that we did not save ourselves."""
    out: dict[int, list[Change]] = defaultdict(list)
    for row in query_in(
            db, "SELECT * FROM messages m WHERE m.thread_id IN ({in}) "
                f"AND {TEAMMATE_DRAFT_SQL} ORDER BY m.arrived_at", list(thread_ids)):
        out[row["thread_id"]].append(_row_change(row["thread_id"], row, "draft"))
    return out


def look_before_sending(db: sqlite_utils.Database, config: Config, thread_ids: Sequence[int],
                        now: dt.datetime, sync: Callable[..., Any]) -> dict[int, list[Change]]:
    """Sync the accounts holding these threads, then say for each thread what is new in it
    and which teammate drafts it has.  ``sync`` is :func:`mailtriage.sync.sync`; its
    failure (a SyncError, also a folder the server refused) means nobody can tell, and the
    caller must not send.  Accounts no longer in the config are not looked at."""
    before = _messages(db, thread_ids)
    configured = {a.name for a in config.accounts}
    accounts = sorted({r[0] for r in query_rows(
        db, "SELECT DISTINCT l.account FROM locations l JOIN messages m ON m.id = l.message "
            "WHERE m.thread_id IN ({in})", list(thread_ids))} & configured)
    if accounts and (failure := sync(db, config, now, accounts=accounts).failure()):
        raise failure
    current = {tid: resolve_thread_id(db, tid) or tid for tid in thread_ids}
    after = _messages(db, set(current.values()))
    ours = {r[0] for r in db.execute("SELECT message_id FROM outbox WHERE message_id IS NOT NULL")}
    changes: dict[int, list[Change]] = defaultdict(list)
    for tid, now_tid in current.items():
        new = after.get(now_tid, set()) - before.get(tid, set())
        marks = ",".join("?" * len(new)) or "NULL"
        for row in db.query(f"SELECT * FROM messages WHERE id IN ({marks}) AND draft = 0 "
                            "ORDER BY arrived_at", sorted(new)):
            if row["message_id"] not in ours and row["original_id"] not in ours:
                changes[tid].append(_row_change(tid, row, "message"))
    drafts = teammate_drafts(db, list(set(current.values())))
    for tid, now_tid in current.items():
        changes[tid].extend(drafts.get(now_tid, []))
    return {tid: found for tid, found in changes.items() if found}
