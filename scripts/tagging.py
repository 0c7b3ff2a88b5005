"""The tagging rules (rules.py) applied to stored mail: to new messages after every
sync, to everything with ``triage retag``.  Each change goes to history with cause
``rule:NAME``; ``dry_run`` says what would change and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .config import Config
from .rules import MessageView, Rule, matching_rules
from .states import State, assign_if_unowned, change_tags, set_priority, set_state
from .store import chunks, iso, query_in, query_rows

if TYPE_CHECKING:
    import sqlite_utils


def apply_rules(db: sqlite_utils.Database, config: Config, message_ids: Sequence[int],
                now: dt.datetime, dry_run: bool = False) -> list[dict[str, Any]]:
    """Run the rules on these messages and act on their threads; return what fired (with
    ``dry_run``, what it would change)."""
    if not config.rules:
        rows: list[dict[str, Any]] = [{"id": m} for m in message_ids]
    else:
        rows = list(query_in(db, "SELECT * FROM messages WHERE id IN ({in}) ORDER BY id",
                             message_ids))
    fired = _fired(db, config.rules, rows) if config.rules else []
    if dry_run:
        looks = _threads_now(db, {tid for _r, _m, tid in fired})
        changes = [_would_change(*looks(tid), rule) for rule, _m, tid in fired]
    else:
        changes = [_act(db, rule, message, tid, iso(now)) for rule, message, tid in fired]
        db.conn.executemany("UPDATE messages SET triaged = 1 WHERE id = ?",
                            [(r["id"],) for r in rows])
    return [{"rule": rule.name, "message": message, "thread_id": tid, "changes": change}
            for (rule, message, tid), change in zip(fired, changes, strict=True)]


def _fired(db: sqlite_utils.Database, rules: Sequence[Rule],
           rows: list[dict[str, Any]]) -> list[tuple[Rule, int, int]]:
    """``(rule, message, thread)`` for every rule that matches one of these messages."""
    folders: dict[int, list[str]] = defaultdict(list)
    for r in query_in(db, "SELECT message, folder FROM locations WHERE message IN ({in})",
                      [row["id"] for row in rows]):
        folders[r["message"]].append(r["folder"])
    return [(rule, row["id"], row["thread_id"])
            for row in rows
            for rule in matching_rules(rules, MessageView(row, folders.get(row["id"], [])))]


def _act(db: sqlite_utils.Database, rule: Rule, message: int, tid: int, at: str) -> list[str]:
    """One rule's actions on one thread, with history; the changes made."""
    cause = f"rule:{rule.name}"
    db.execute("INSERT OR IGNORE INTO rule_hits (message, rule, at) VALUES (?, ?, ?)",
               [message, rule.name, at])
    changes = change_tags(db, tid, rule.add_tags, rule.remove_tags, at, cause)
    if rule.priority and set_priority(db, tid, rule.priority, at, cause):
        changes.append(f"priority={rule.priority}")
    if rule.close and set_state(db, tid, State.CLOSED, at, cause):
        changes.append("state=closed")
    if rule.assign and assign_if_unowned(db, tid, rule.assign, at, cause):
        changes.append(f"assignee={rule.assign}")
    return changes


def _threads_now(db: sqlite_utils.Database, thread_ids: set[int],
                 ) -> Callable[[int], tuple[set[str], tuple[str, str | None] | None]]:
    """What the threads look like now (tags, state and priority), read once for a chunk."""
    tags: dict[int, set[str]] = defaultdict(set)
    for tid, tag in query_rows(db, "SELECT thread_id, tag FROM tags WHERE thread_id IN ({in})",
                               thread_ids):
        tags[tid].add(tag)
    states = {tid: (state, priority) for tid, state, priority in query_rows(
        db, "SELECT thread_id, state, priority FROM thread_state WHERE thread_id IN ({in})",
        thread_ids)}
    return lambda tid: (tags[tid], states.get(tid))


def _would_change(tags: set[str], state: tuple[str, str | None] | None,
                  rule: Rule) -> list[str]:
    out = ["+" + t for t in rule.add_tags if t not in tags]
    out += ["-" + t for t in rule.remove_tags if t in tags]
    if rule.priority and (not state or state[1] != rule.priority):
        out.append(f"priority={rule.priority}")
    if rule.close and (not state or state[0] != State.CLOSED):
        out.append("state=closed")
    return out


def retag(db: sqlite_utils.Database, config: Config, now: dt.datetime,
          dry_run: bool = False) -> list[dict[str, Any]]:
    """Apply the rules to every message again (``triage retag``)."""
    hits: list[dict[str, Any]] = []
    ids = [r[0] for r in db.execute("SELECT id FROM messages ORDER BY id")]
    for part in chunks(ids):
        with db.atomic():
            hits.extend(apply_rules(db, config, part, now, dry_run=dry_run))
    return hits
