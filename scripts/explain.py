"""Why a thread is where it is: links, senders, rules and the SLA clock, spelled out."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from . import decisions, senders
from .config import Config
from .listing import thread_messages, thread_tags
from .overdue import threshold_for
from .senders import AUTO, CUSTOMER, classify_row
from .sla import Clock
from .states import State, effective
from .store import iso, loads, parse_iso, require_thread
from .times import format_duration

if TYPE_CHECKING:
    import sqlite_utils


def _link_reason(m: dict[str, Any], by_id: dict[str, int], earlier_refs: dict[str, int]) -> str:
    if m["in_reply_to"] and m["in_reply_to"] in by_id:
        return f"In-Reply-To <{m['in_reply_to']}> (message {by_id[m['in_reply_to']]})"
    for ref in reversed(loads(m["refs"])):
        if ref in by_id:
            return f"References <{ref}> (message {by_id[ref]})"
    links = ([m["in_reply_to"]] if m["in_reply_to"] else []) + loads(m["refs"])
    for ref in links:
        if ref in earlier_refs:
            return f"shares <{ref}> with message {earlier_refs[ref]} (that message was not seen)"
    if m["gm_thrid"]:
        return f"Gmail thread id {m['gm_thrid']}"
    if not links:
        return "no In-Reply-To/References: joined by subject, participant and time window"
    return "links to a message not in the mailbox"


def explain_thread(db: sqlite_utils.Database, config: Config, ref: str | int,
                   now: dt.datetime) -> dict[str, Any]:
    """Why a thread is where it is (``triage explain``)."""
    tid = require_thread(db, ref)
    [t] = db.query("SELECT t.*, s.state, s.priority, s.snoozed_until, s.assignee FROM threads t "
                   "LEFT JOIN thread_state s ON s.thread_id = t.id WHERE t.id = ?", [tid])
    msgs = thread_messages(db, tid)
    hits: dict[int, list[str]] = {}
    for r in db.query("SELECT h.message, h.rule FROM rule_hits h JOIN messages m "
                      "ON m.id = h.message WHERE m.thread_id = ?", [tid]):
        hits.setdefault(r["message"], []).append(r["rule"])
    by_id: dict[str, int] = {}
    refs_seen: dict[str, int] = {}
    out_msgs = []
    quiet = decisions.kept_closed(db, [tid])
    for n, m in enumerate(msgs, 1):
        kind = "draft" if m["draft"] else classify_row(m, config.team)
        why = ("a draft, never sent: it answers nothing" if m["draft"]
               else senders.why(m, config.team))
        link = "starts the thread" if n == 1 else _link_reason(m, by_id, refs_seen)
        out_msgs.append({"n": n, "message_id": m["message_id"], "from": m["from_addr"],
                         "arrived_at": m["arrived_at"], "subject": m["subject"], "kind": kind,
                         "why": why, "linked_by": link, "rules": hits.get(m["id"], []),
                         "kept_closed": _kept_closed(quiet.get(m["key"]))})
        if m["message_id"]:
            by_id[m["message_id"]] = n
        for r in loads(m["refs"]) + ([m["in_reply_to"]] if m["in_reply_to"] else []):
            refs_seen.setdefault(r, n)
    clock = Clock(config.sla.business_hours)
    tags = thread_tags(db, [tid]).get(tid, [])
    since = parse_iso(t["waiting_since"])
    sla: dict[str, Any] = {"business_hours": config.sla.business_hours is not None}
    if since and effective(t["state"], t["snoozed_until"], now) == State.OPEN:
        limit = threshold_for(config.sla, tags, t["priority"])
        due = clock.add(since, limit)
        sla.update({
            "waiting_since": iso(since), "threshold": format_duration(limit), "due_at": iso(due),
            "wall_clock": format_duration(now - since),
            "sla_time": format_duration(clock.elapsed(since, now)),
            "overdue": due <= now,
            "segments": [[iso(a), iso(b)] for a, b in clock.segments(since, now, limit=50)],
        })
    last = next((m for m in reversed(out_msgs)
                 if m["kind"] not in (AUTO, "draft") and not m["kept_closed"]), None)
    if out_msgs and out_msgs[-1]["kept_closed"] and t["state"] == State.CLOSED:
        turn = f"closed, and it stayed closed: {out_msgs[-1]['kept_closed']}"
    elif last is None:
        turn = "only automated mail: nobody is waiting"
    elif last["kind"] == CUSTOMER:
        turn = "the customer spoke last: our turn"
    else:
        turn = "we spoke last: the customer's turn"
    history = [dict(h) for h in db.query(
        "SELECT at, field, old, new, cause FROM history WHERE thread_id = ? ORDER BY at, id",
        [tid])]
    return {"thread_id": tid, "subject": t["subject"], "state": t["state"], "tags": tags,
            "turn": turn, "messages": out_msgs, "sla": sla, "history": history,
            "by_hand": decisions.by_hand(history),
            "participants": json.loads(t["participants"] or "[]"),
            "assignee": t["assignee"],
            "notes": [dict(n) for n in db.query(
                "SELECT at, author, text FROM notes WHERE thread_id = ? ORDER BY at, id", [tid])]}


def _kept_closed(cause: str | None) -> str | None:
    """Why a customer's message left its closed thread closed, or None."""
    if cause is None:
        return None
    rule = cause.removeprefix("rule:")
    return (f"rule {rule} (keep_closed) matched it in a closed thread: it neither reopened "
            "the thread nor started a wait")
