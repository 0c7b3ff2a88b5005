"""Reading threads back out of the store, as plain dicts ready for JSON or a table.

Every list is built with a fixed number of queries, whatever the number of
threads: one for the threads, one for their tags, one for their Message-IDs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .collisions import TEAMMATE_DRAFT_SQL, teammate_drafts
from .config import PUBLIC_DOMAINS
from .customers import customer_sql, other_threads
from .members import NOBODY
from .states import effective, open_sql
from .store import iso, loads, query_rows, require_thread

if TYPE_CHECKING:
    import sqlite_utils

STATE_COLUMNS = "s.state, s.snoozed_until, s.priority, s.assignee"  # of thread_state s


def assignee_sql(assignee: str) -> tuple[str, list[Any]]:
    """A WHERE clause on ``thread_state s``: owned by that member, or by nobody (``none``)."""
    if assignee.lower() in NOBODY:
        return "s.assignee IS NULL", []
    return "s.assignee = ?", [assignee.lower()]


def thread_tags(db: sqlite_utils.Database, ids: Sequence[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = defaultdict(list)
    for tid, tag in query_rows(db, "SELECT thread_id, tag FROM tags WHERE thread_id IN ({in}) "
                                   "ORDER BY tag", ids):
        tags[tid].append(tag)
    return tags


def draft_authors(db: sqlite_utils.Database, ids: Sequence[int]) -> dict[int, list[str]]:
    """Who has a draft in a Drafts folder for each thread (not ones ``reply --draft`` saved)."""
    return {tid: sorted({d.from_addr or "someone" for d in drafts})
            for tid, drafts in teammate_drafts(db, ids).items()}


def thread_message_ids(db: sqlite_utils.Database, ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for tid, mid in query_rows(db, "SELECT thread_id, message_id FROM messages "
                                   "WHERE thread_id IN ({in}) AND draft = 0 "
                                   "ORDER BY arrived_at, id", ids):
        out[tid].append(mid)
    return out


# The same three lists as JSON text built by SQLite, for the thread whose id is in column
# ``thread`` (overdue --json writes 27,000 of them: Python's encoder took most of its time).
# Each matches its Python twin above, item for item and in order (tests/test_overdue_sql.py).
# Most threads have no tags and no drafts: a look at the index says so, and is cheaper than
# gathering nothing.

def _json_list_sql(select: str, exists: str | None = None) -> str:
    """``[...]`` of what ``select`` (one column, in order) returns, spaced as json.dumps;
    ``[]`` straight away when ``exists`` (SQL) is false."""
    items = ("'[' || COALESCE((SELECT group_concat(json_quote(v), ', ') "
             f"FROM ({select})), '') || ']'")
    return f"(CASE WHEN {exists} THEN {items} ELSE '[]' END)" if exists else f"({items})"


def tags_json_sql(thread: str) -> str:
    """:func:`thread_tags` of one thread, as SQL giving its JSON list."""
    return _json_list_sql(f"SELECT g.tag AS v FROM tags g WHERE g.thread_id = {thread} "
                          "ORDER BY g.tag",
                          f"EXISTS (SELECT 1 FROM tags g WHERE g.thread_id = {thread})")


def message_ids_json_sql(thread: str) -> str:
    """:func:`thread_message_ids` of one thread, as SQL giving its JSON list."""
    return _json_list_sql(f"SELECT m.message_id AS v FROM messages m WHERE m.thread_id = {thread} "
                          "AND m.draft = 0 ORDER BY m.arrived_at, m.id")


def draft_by_json_sql(thread: str) -> str:
    """:func:`draft_authors` of one thread, as SQL giving its JSON list."""
    return _json_list_sql("SELECT DISTINCT COALESCE(NULLIF(m.from_addr, ''), 'someone') AS v "
                          f"FROM messages m WHERE m.thread_id = {thread} AND {TEAMMATE_DRAFT_SQL} "
                          "ORDER BY v",
                          f"EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = {thread} "
                          "AND m.draft = 1)")


def thread_messages(db: sqlite_utils.Database, thread_id: int) -> list[dict[str, Any]]:
    """Every stored message of one thread, oldest first (show, explain, reply)."""
    return list(db.query("SELECT * FROM messages WHERE thread_id = ? ORDER BY arrived_at, id",
                         [thread_id]))


def thread_dict(row: dict[str, Any], tags: list[str], message_ids: list[str],
                now: dt.datetime, draft_by: Sequence[str] = ()) -> dict[str, Any]:
    state = effective(row.get("state"), row.get("snoozed_until"), now)
    return {
        "id": row["id"],
        "subject": row["subject"] or "",
        "customer": row["customer"],
        "customer_name": row["customer_name"],
        "participants": loads(row["participants"]),
        "first_at": row["first_at"],
        "last_at": row["last_at"],
        "message_count": row["message_count"],
        "state": state,
        "snoozed_until": row.get("snoozed_until") if state == "snoozed" else None,
        "priority": row.get("priority"),
        "assignee": row.get("assignee"),
        "tags": tags,
        "waiting_since": row["waiting_since"] if state in ("open", "snoozed") else None,
        "last_sender": row["last_sender"],
        "message_ids": message_ids,
        "draft_by": list(draft_by),  # teammates with a draft for it in Drafts
    }


THREAD_ROWS = (f"SELECT t.*, {STATE_COLUMNS} FROM threads t "
               "LEFT JOIN thread_state s ON s.thread_id = t.id")


def state_where(state: str | None, now: dt.datetime) -> tuple[str, list[Any]]:
    """SQL on ``threads t`` / ``thread_state s`` for ``--state`` (an expired snooze is open)."""
    if state == "open":
        return open_sql(), [iso(now)]
    if state == "snoozed":
        return "s.state = 'snoozed' AND s.snoozed_until > ?", [iso(now)]
    if state:
        return "s.state = ?", [state]
    return "1", []


def thread_dicts(db: sqlite_utils.Database, rows: Sequence[dict[str, Any]],
                 now: dt.datetime) -> list[dict[str, Any]]:
    """Rows of :data:`THREAD_ROWS` as the JSON objects of ``threads --json``, in their order
    (``search`` uses it too: one shape for a thread everywhere)."""
    ids = [r["id"] for r in rows]
    tag_map = thread_tags(db, ids)
    mids = thread_message_ids(db, ids)
    drafts = draft_authors(db, ids)
    return [thread_dict(r, tag_map.get(r["id"], []), mids.get(r["id"], []), now,
                        drafts.get(r["id"], ())) for r in rows]


def list_threads(
    db: sqlite_utils.Database,
    now: dt.datetime,
    *,
    folder: str | None = None,
    since: dt.datetime | None = None,
    state: str | None = None,
    tags: Sequence[str] = (),
    limit: int | None = None,
    assignee: str | None = None,
    customer: str | None = None,
) -> list[dict[str, Any]]:
    """Threads, most recent activity first, filtered as the CLI options ask (``assignee``:
    a member's name, or ``none``; ``customer``: an address or ``@domain``)."""
    state_sql, params = state_where(state, now)
    where = [state_sql]
    if assignee:
        clause, values = assignee_sql(assignee)
        where.append(clause)
        params.extend(values)
    if customer:
        clause, values = customer_sql(customer)
        where.append(clause)
        params.extend(values)
    if folder:
        where.append("t.id IN (SELECT m.thread_id FROM messages m JOIN locations l "
                     "ON l.message = m.id WHERE l.folder = ?)")
        params.append(folder)
    if since:
        where.append("t.last_at >= ?")
        params.append(iso(since))
    for tag in tags:
        where.append("t.id IN (SELECT thread_id FROM tags WHERE tag = ?)")
        params.append(tag)
    sql = f"{THREAD_ROWS} WHERE {' AND '.join(where)} ORDER BY t.last_at DESC, t.id DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return thread_dicts(db, list(db.query(sql, params)), now)


def thread_detail(db: sqlite_utils.Database, ref: str | int, now: dt.datetime,
                  public_domains: frozenset[str] = PUBLIC_DOMAINS) -> dict[str, Any]:
    """One thread with its messages, folders, flags and history (``triage show``)."""
    tid = require_thread(db, ref)
    rows = list(db.query(f"SELECT t.*, {STATE_COLUMNS} FROM threads t "
                         "LEFT JOIN thread_state s ON s.thread_id = t.id WHERE t.id = ?", [tid]))
    out = thread_dict(rows[0], thread_tags(db, [tid]).get(tid, []),
                      thread_message_ids(db, [tid]).get(tid, []), now,
                      draft_authors(db, [tid]).get(tid, ()))
    out["auto_signals"] = loads(rows[0]["auto_signals"])
    where: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in db.query("SELECT l.* FROM locations l JOIN messages m ON m.id = l.message "
                      "WHERE m.thread_id = ? ORDER BY l.folder", [tid]):
        where[r["message"]].append({"account": r["account"], "folder": r["folder"],
                                    "uid": r["uid"], "flags": (r["flags"] or "").split()})
    hits: dict[int, list[str]] = defaultdict(list)
    for r in db.query("SELECT h.message, h.rule FROM rule_hits h JOIN messages m "
                      "ON m.id = h.message WHERE m.thread_id = ?", [tid]):
        hits[r["message"]].append(r["rule"])
    messages = thread_messages(db, tid)
    out["messages"] = [
        {
            "id": m["message_id"],
            "from": m["from_addr"],
            "from_name": m["from_name"],
            "to": loads(m["to_addrs"]),
            "cc": loads(m["cc_addrs"]),
            "date": m["date"],
            "arrived_at": m["arrived_at"],
            "subject": m["subject"],
            "folders": [loc["folder"] for loc in where.get(m["id"], [])],
            "flags": sorted({f for loc in where.get(m["id"], []) for f in loc["flags"]}),
            "snippet": m["snippet"],
            "auto_signals": loads(m["auto_signals"]),
            "rules": hits.get(m["id"], []),
            "parse_error": m["parse_error"],
        }
        for m in messages if not m["draft"]
    ]
    ours = {r["message_id"] for r in db.query(
        "SELECT message_id FROM outbox WHERE thread_id = ? AND kind = 'draft'", [tid])}
    out["drafts"] = [
        {"from": m["from_addr"], "from_name": m["from_name"], "date": m["date"] or m["arrived_at"],
         "subject": m["subject"], "ours": m["message_id"] in ours,
         "folders": [loc["folder"] for loc in where.get(m["id"], [])]}
        for m in messages if m["draft"] and where.get(m["id"])
    ]
    out["notes"] = [
        {"at": n["at"], "author": n["author"], "text": n["text"]}
        for n in db.query("SELECT * FROM notes WHERE thread_id = ? ORDER BY at, id", [tid])
    ]
    out["other_threads"] = other_threads(db, tid, rows[0]["customer"], public_domains, now)
    out["history"] = [
        {"at": h["at"], "field": h["field"], "old": h["old"], "new": h["new"],
         "cause": h["cause"]}
        for h in db.query("SELECT * FROM history WHERE thread_id = ? ORDER BY at, id", [tid])
    ]
    out["outbox"] = [
        {**{k: r[k] for k in ("id", "kind", "template", "message_id", "to_addr", "state",
                              "error", "created_at", "settled_at", "sent_copy", "resolved_at")},
         "cc": loads(r["cc_addrs"]), "holding": bool(r["holding"]), "auto": bool(r["auto"])}
        for r in db.query("SELECT * FROM outbox WHERE thread_id = ? ORDER BY id", [tid])
    ]
    out["bounces"] = [
        {k: r[k] for k in ("recipient", "status", "diagnostic", "original_id", "at")}
        for r in db.query("SELECT * FROM bounces WHERE thread_id = ? ORDER BY at", [tid])
    ]
    return out


def echo_json(value: Any) -> None:
    """Write ``--json`` output to stdout, a list item by item (big lists stay small)."""
    import sys

    if not isinstance(value, list) or not value:
        sys.stdout.write(dumps(value) + "\n")
        return
    last = len(value) - 1
    sys.stdout.write("[\n")
    for n, item in enumerate(value):
        sys.stdout.write(json.dumps(item, ensure_ascii=False) + (",\n" if n < last else "\n"))
    sys.stdout.write("]\n")


def echo_json_lines(batches: Iterable[Sequence[str]]) -> int:
    """Write a list already encoded (each item's ``json.dumps``), a batch at a time, exactly
    as :func:`echo_json` writes it; return how many items there were."""
    import sys

    count = 0
    for batch in batches:
        if batch:
            sys.stdout.write(("[\n" if not count else ",\n") + ",\n".join(batch))
            count += len(batch)
    sys.stdout.write("\n]\n" if count else "[]\n")
    return count


def dumps(value: Any) -> str:
    """JSON for ``--json``: a list as one item per line, anything else indented.

    ``indent=`` switches the json module to its pure-Python encoder (1.4 s for the 27k
    overdue threads of the 100k benchmark); items encoded one by one keep the C encoder
    and still read well in a terminal.
    """
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in value) + "\n]"
    return json.dumps(value, indent=2, ensure_ascii=False)
