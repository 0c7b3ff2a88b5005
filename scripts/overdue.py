"""Which threads are waiting on us too long, and which were promised news.

Two reasons put a thread on the list (README, "What the tool decides"):

* ``unanswered``: open (or with an expired snooze), the customer waiting since
  ``waiting_since``, and the SLA due time ``clock.add(waiting_since, threshold)``
  has passed.  The threshold is ``--threshold``, else the smallest ``sla.overrides``
  entry matching one of the thread's tags or its priority, else ``sla.default``.
* ``followup``: in ``waiting``, our last message was a holding reply (sent from
  a template with ``holding: true``, or the thread was tagged ``acked`` after it)
  and ``sla.followup_after`` of wall-clock time passed with nothing from us since.

* ``delivery_unknown`` / ``delivery_failed``: a reply of ours whose delivery is unknown, or
  that the server refused for good, and nothing has settled since (outbox.py);
* ``bounced``: a delivery report says our mail to the thread did not arrive, and nobody has
  written to the thread or set its state by hand since.

These last three are listed at any threshold: they wait for a person, not for a clock.
A fixed number of queries, whatever the number of threads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from . import bounces
from .config import Config, SLAConfig
from .listing import draft_authors, thread_message_ids, thread_tags
from .members import NOBODY
from .outbox import needs_a_person_sql
from .sla import Clock
from .states import open_sql
from .store import iso, parse_iso

if TYPE_CHECKING:
    import sqlite_utils


def threshold_for(sla: SLAConfig, tags: Sequence[str], priority: str | None,
                  override: dt.timedelta | None = None) -> dt.timedelta:
    if override is not None:
        return override
    matches = [sla.overrides[k] for k in [*tags, priority or ""] if k in sla.overrides]
    return min(matches) if matches else sla.default


ATTENTION_REASONS = ("delivery_unknown", "delivery_failed", "bounced")  # waiting for a person


def _attention(db: sqlite_utils.Database, columns: str) -> list[dict[str, Any]]:
    """Threads waiting for a person: unknown or refused replies, and bounces of our mail."""
    rows = list(db.query(
        f"SELECT {columns}, o.created_at AS since, o.error AS detail, "
        "CASE o.state WHEN 'unknown' THEN 'delivery_unknown' ELSE 'delivery_failed' END "
        "AS reason FROM outbox o JOIN threads t ON t.id = o.thread_id "
        f"JOIN thread_state s ON s.thread_id = t.id WHERE {needs_a_person_sql()}"))
    rows += db.query(
        f"SELECT {columns}, MIN(b.at) AS since, 'bounced' AS reason, "
        "group_concat(b.recipient || ': ' || COALESCE(b.status, '') || ' ' "
        "  || COALESCE(b.diagnostic, ''), '; ') AS detail "
        "FROM bounces b JOIN threads t ON t.id = b.thread_id "
        "JOIN thread_state s ON s.thread_id = t.id "
        f"WHERE {bounces.OPEN_SQL} GROUP BY t.id")
    return rows


def overdue(
    db: sqlite_utils.Database,
    config: Config,
    now: dt.datetime,
    *,
    threshold: dt.timedelta | None = None,
    tags: Sequence[str] = (),
    state: str | None = None,
    holding_templates: Collection[str] = (),
    include_not_due: bool = False,
    assignee: str | None = None,
) -> list[dict[str, Any]]:
    """Overdue and follow-up threads and those waiting for a person, oldest wait first
    (``include_not_due``: every open thread with its due time, as the tests check it;
    ``assignee``: a member's name, or ``none``)."""
    clock = Clock(config.sla.business_hours)
    at = iso(now)
    columns = ("t.id, t.subject, t.customer, t.customer_name, t.waiting_since, t.last_team_at, "
               "s.state, s.priority, s.assignee")
    open_rows = list(db.query(
        f"SELECT {columns} FROM threads t "
        "JOIN thread_state s ON s.thread_id = t.id WHERE t.waiting_since IS NOT NULL "
        f"AND {open_sql()}", [at]))
    holding = sorted(set(holding_templates))
    marks = ",".join("?" * len(holding)) or "NULL"
    follow_rows = list(db.query(
        f"SELECT {columns} FROM threads t "
        "JOIN thread_state s ON s.thread_id = t.id "
        "WHERE s.state = 'waiting' AND t.last_sender = 'us' AND t.last_team_at <= ? AND ("
        f" t.last_team_template IN ({marks})"
        " OR EXISTS (SELECT 1 FROM outbox r WHERE r.thread_id = t.id AND r.holding = 1"
        "   AND r.kind = 'reply' AND r.state = 'sent' AND r.auto = 0"
        "   AND r.message_id = t.last_team_message_id)"
        " OR EXISTS (SELECT 1 FROM tags g WHERE g.thread_id = t.id AND g.tag = 'acked'"
        "   AND g.added_at >= t.last_team_at))",
        [iso(now - config.sla.followup_after), *holding]))
    attention_rows = _attention(db, columns)
    ids = [r["id"] for r in open_rows + follow_rows + attention_rows]
    tag_map = thread_tags(db, ids)  # thresholds and filters need them
    # Message-IDs are read only for the threads that end up on the list.
    items = []
    for kind, rows in (("unanswered", open_rows), ("followup", follow_rows),
                       ("attention", attention_rows)):
        for r in rows:
            reason = r["reason"] if kind == "attention" else kind
            ttags = tag_map.get(r["id"], [])
            if any(t not in ttags for t in tags):
                continue
            shown_state = "open" if r["state"] == "snoozed" else r["state"]
            if state and shown_state != state:
                continue
            if assignee and r["assignee"] != (None if assignee.lower() in NOBODY
                                              else assignee.lower()):
                continue
            if kind == "attention":
                since = parse_iso(r["since"])
                due = since or now
            elif reason == "unanswered":
                since = parse_iso(r["waiting_since"])
                limit = threshold_for(config.sla, ttags, r["priority"], threshold)
                due = clock.add(since, limit) if since else now
            else:
                since = parse_iso(r["last_team_at"])
                limit = config.sla.followup_after
                due = since + limit if since else now
            if since is None or (due > now and not include_not_due):
                continue
            items.append({
                "thread_id": r["id"],
                "subject": r["subject"] or "",
                "customer": r["customer"],
                "customer_name": r["customer_name"],
                "waiting_since": iso(since),
                "due_at": iso(due),
                "age_hours": round((now - since).total_seconds() / 3600, 2),
                "sla_age_hours": round(clock.elapsed(since, now).total_seconds() / 3600, 2)
                if reason == "unanswered" else None,
                "overdue": due <= now,
                "reason": reason,
                "state": shown_state,
                "priority": r["priority"],
                "assignee": r["assignee"],
                "tags": ttags,
                "message_ids": [],
                "detail": r.get("detail"),
                "draft_by": [],
            })
    listed = [i["thread_id"] for i in items]
    mids = thread_message_ids(db, listed)
    drafts = draft_authors(db, listed)
    for item in items:
        item["message_ids"] = mids.get(item["thread_id"], [])
        item["draft_by"] = drafts.get(item["thread_id"], [])
    items.sort(key=lambda i: (i["waiting_since"], i["thread_id"]))
    return items
