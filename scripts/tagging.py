"""The tagging rules (rules.py) applied to stored mail: to new messages after every
sync, to everything with ``triage retag``.  Each change goes to history with cause
``rule:NAME``; ``dry_run`` says what would change and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlite_utils

from .config import Config
from .rules import MessageView, Rule, matching_rules
from .states import State, change_tags, set_priority, set_state
from .store import chunks, iso, query_in, query_rows


def apply_rules(db: sqlite_utils.Database, config: Config, message_ids: Sequence[int],
                now: dt.datetime, dry_run: bool = False) -> list[dict[str, Any]]:
    """Run the rules on these messages and act on their threads; return what fired."""
    at = iso(now)
    if not config.rules:
        if not dry_run:
            db.conn.executemany("UPDATE messages SET triaged = 1 WHERE id = ?",
                                [(m,) for m in message_ids])
        return []
    folders: dict[int, list[str]] = defaultdict(list)
    for r in query_in(db, "SELECT message, folder FROM locations WHERE message IN ({in})",
                      message_ids):
        folders[r["message"]].append(r["folder"])
    hits = []
    rows = list(query_in(db, "SELECT * FROM messages WHERE id IN ({in}) ORDER BY id",
                         message_ids))
    if dry_run:  # what the threads look like now, read once for the whole chunk
        thread_ids = {r["thread_id"] for r in rows}
        tags: dict[int, set[str]] = defaultdict(set)
        for tid, tag in query_rows(db, "SELECT thread_id, tag FROM tags "
                                       "WHERE thread_id IN ({in})", thread_ids):
            tags[tid].add(tag)
        states = {tid: (state, priority) for tid, state, priority in query_rows(
            db, "SELECT thread_id, state, priority FROM thread_state WHERE thread_id IN ({in})",
            thread_ids)}
    for row in rows:
        view = MessageView(row, folders.get(row["id"], []))
        for rule in matching_rules(config.rules, view):
            tid = row["thread_id"]
            hit = {"rule": rule.name, "message": row["id"], "thread_id": tid,
                   "changes": []}
            if not dry_run:
                cause = f"rule:{rule.name}"
                db.execute("INSERT OR IGNORE INTO rule_hits (message, rule, at) VALUES (?, ?, ?)",
                           [row["id"], rule.name, at])
                hit["changes"] = change_tags(db, tid, rule.add_tags, rule.remove_tags, at, cause)
                if rule.priority and set_priority(db, tid, rule.priority, at, cause):
                    hit["changes"].append(f"priority={rule.priority}")
                if rule.close and set_state(db, tid, State.CLOSED, at, cause):
                    hit["changes"].append("state=closed")
            else:
                hit["changes"] = _would_change(tags[tid], states.get(tid), rule)
            hits.append(hit)
    if not dry_run:
        db.conn.executemany("UPDATE messages SET triaged = 1 WHERE id = ?",
                            [(r["id"],) for r in rows])
    return hits


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
