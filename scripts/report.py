"""The daily report: proof, every morning, that nothing fell through the cracks.

:func:`build_report` gathers plain data (JSON-ready: ISO strings, numbers, lists, also
``triage report --json``) with a fixed number of queries, whatever the size of the
mailbox, one function per section; reportmail.py renders it and mails it.

Most urgent first: the headline, the threads waiting too long, what came in and
what was answered, the backlog by age, response times, tags, and last the
evidence that the data is complete (per-folder counts, sync times and errors,
quarantined messages).  A stale sync is said loudly: a quiet report built on old
data would be worse than none.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from . import render
from .config import Config
from .overdue import ATTENTION_REASONS, REASONS, counted
from .states import open_sql
from .store import iso, parse_iso

if TYPE_CHECKING:
    import sqlite_utils

# (label, lower bound, upper bound) of the customer's wait, for the backlog chart.
BUCKETS: tuple[tuple[str, dt.timedelta, dt.timedelta | None], ...] = (
    ("<4h", dt.timedelta(0), dt.timedelta(hours=4)),
    ("4–24h", dt.timedelta(hours=4), dt.timedelta(hours=24)),
    ("1–3d", dt.timedelta(hours=24), dt.timedelta(days=3)),
    (">3d", dt.timedelta(days=3), None),
)
RESPONSE_WINDOW = dt.timedelta(days=7)
LIST_CAP = 50  # new/answered threads listed (the counts are always complete)
OVERDUE_CAP = 200  # threads listed per section of the report
QUARANTINE_CAP = 20

# Open, or snoozed with the snooze run out (the same rule as listing/overdue).
_OPEN = open_sql(":now")


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (``pct`` in 0–100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _hours(td: dt.timedelta) -> float:
    return round(td.total_seconds() / 3600, 2)


def _capped(items: list[dict[str, Any]], count: int) -> tuple[list[dict[str, Any]], int]:
    """The oldest first, capped, and how many more there are: a mail listing 27,000 threads
    helps nobody (the headline still counts them all)."""
    listed = items[:OVERDUE_CAP]
    return listed, count - len(listed)


def _backlog(db: sqlite_utils.Database, p: dict[str, Any],
             now: dt.datetime) -> tuple[int, dict[str, Any]]:
    """How many threads are open, and those with a customer waiting by how long, for the
    bars: counted by SQLite (27,000 open threads at 100,000 messages).  A wait of at least
    ``low`` began at or before ``iso(now - low)``: times are stored to the second, so the
    text compares as the moments do."""
    bounds: dict[str, str] = {}
    cases = []
    for n, (_label, low, high) in enumerate(BUCKETS):
        bounds[f"low{n}"] = iso(now - low)
        cond = f"t.waiting_since <= :low{n}"
        if high is not None:
            bounds[f"high{n}"] = iso(now - high)
            cond += f" AND t.waiting_since > :high{n}"
        cases.append(f"WHEN {cond} THEN {n}")
    counts = [0] * len(BUCKETS)
    total_open = 0
    for bucket, n in db.execute(
            # the first bucket that holds the wait; one in the future (clock skew): the
            # freshest; no wait at all: none
            "SELECT CASE WHEN COALESCE(t.waiting_since, '') = '' THEN NULL "
            f"{' '.join(cases)} ELSE 0 END AS bucket, COUNT(*) FROM threads t "
            f"JOIN thread_state s ON s.thread_id = t.id WHERE {_OPEN} GROUP BY bucket",
            {**p, **bounds}):
        total_open += n
        if bucket is not None:
            counts[bucket] = n
    total = sum(counts)
    return total_open, {"waiting": total, "buckets": [
        {"label": label, "count": c, "pct": round(100 * c / total, 1) if total else 0.0}
        for (label, _lo, _hi), c in zip(BUCKETS, counts, strict=True)]}


def _brief(r: dict[str, Any], at_key: str) -> dict[str, Any]:
    return {"thread_id": r["id"], "subject": r["subject"] or "", "customer": r["customer"],
            "customer_name": r["customer_name"], "state": r["state"], "at": r[at_key]}


def _activity(db: sqlite_utils.Database, p: dict[str, Any]) -> dict[str, Any]:
    """Threads started, answered and gone in the period."""
    new_rows = list(db.query(
        "SELECT t.id, t.subject, t.customer, t.customer_name, t.first_at, s.state "
        "FROM threads t LEFT JOIN thread_state s ON s.thread_id = t.id "
        "WHERE t.first_at >= :since AND t.first_at <= :now AND t.automated = 0 "
        "ORDER BY t.first_at, t.id", p))
    sent = ("FROM outbox r WHERE r.thread_id = t.id AND r.kind = 'reply' AND r.state = 'sent' "
            "AND r.auto = 0 AND r.settled_at >= :since")
    answered_rows = list(db.query(
        "SELECT t.id, t.subject, t.customer, t.customer_name, s.state, "
        " MAX(COALESCE(CASE WHEN t.last_team_at >= :since THEN t.last_team_at END, ''),"
        f"     COALESCE((SELECT MAX(r.settled_at) {sent}), '')) AS answered_at "
        "FROM threads t LEFT JOIN thread_state s ON s.thread_id = t.id "
        f"WHERE t.last_team_at >= :since OR EXISTS (SELECT 1 {sent}) "
        "ORDER BY answered_at, t.id", p))
    gone_rows = list(db.query(
        "SELECT t.id, t.subject, t.customer, t.customer_name, s.state, s.changed_at "
        "FROM threads t JOIN thread_state s ON s.thread_id = t.id WHERE s.state = 'gone' "
        "AND s.changed_at >= :since AND s.changed_at <= :now ORDER BY s.changed_at, t.id", p))
    return {
        "new": {"count": len(new_rows),
                "threads": [_brief(r, "first_at") for r in new_rows[:LIST_CAP]]},
        # threads whose mail all left the synced folders in the period: listed once
        "gone": {"count": len(gone_rows),
                 "threads": [_brief(r, "changed_at") for r in gone_rows[:LIST_CAP]]},
        "answered": {"count": len(answered_rows),
                     "threads": [_brief(r, "answered_at") for r in answered_rows[:LIST_CAP]]},
    }


def activity(db: sqlite_utils.Database, since: dt.datetime,
             now: dt.datetime) -> dict[str, Any]:
    """Threads started, answered and gone between ``since`` and ``now`` (dailystats.py)."""
    return _activity(db, {"since": iso(since), "now": iso(now)})


def open_tags(db: sqlite_utils.Database, now: dt.datetime) -> list[dict[str, Any]]:
    """Open threads by tag, the most used first."""
    return [{"tag": r["tag"], "count": r["n"]} for r in db.query(
        "SELECT g.tag, COUNT(*) AS n FROM tags g JOIN thread_state s "
        f"ON s.thread_id = g.thread_id WHERE {_OPEN} GROUP BY g.tag ORDER BY n DESC, g.tag",
        {"now": iso(now)})]


def first_response(db: sqlite_utils.Database, now: dt.datetime) -> dict[str, Any]:
    """The report's first-response figures for the :data:`RESPONSE_WINDOW` up to ``now``."""
    return _response(db, {"now": iso(now), "window": iso(now - RESPONSE_WINDOW)})


def _trend(db: sqlite_utils.Database, config: Config, now: dt.datetime) -> dict[str, Any]:
    """The "Last 14 days" bars, from what ``triage run`` wrote into ``daily_stats``."""
    from . import dailystats  # it uses this module's queries

    today = dailystats.local_day(now, config.report.timezone)
    return dailystats.trend(dailystats.recent(db, today), today)


def _response(db: sqlite_utils.Database, p: dict[str, Any]) -> dict[str, Any]:
    """First-response times of threads whose first customer message is in the window."""
    rows = list(db.query(
        "SELECT first_customer_at, first_response_at FROM ("
        " SELECT t.first_response_at, (SELECT MIN(m.arrived_at) FROM messages m"
        "  WHERE m.thread_id = t.id AND m.from_addr = t.customer AND m.auto_signals IS NULL)"
        "  AS first_customer_at FROM threads t WHERE t.automated = 0 AND t.last_at >= :window)"
        " WHERE first_customer_at >= :window AND first_customer_at <= :now", p))
    times = []
    for r in rows:
        asked, answered = parse_iso(r["first_customer_at"]), parse_iso(r["first_response_at"])
        if asked and answered and answered >= asked:
            times.append((answered - asked).total_seconds() / 3600)
    median, p90 = (statistics.median(times) if times else None), percentile(times, 90)
    return {
        "days": RESPONSE_WINDOW.days,
        "answered": len(times),
        "unanswered": len(rows) - len(times),
        "median_hours": round(median, 2) if median is not None else None,
        "p90_hours": round(p90, 2) if p90 is not None else None,
    }


def _completeness(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                  since: dt.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the server holds against what we stored, per folder; how old each sync is."""
    folders = []
    for f in db.query(
            "SELECT f.*, (SELECT COUNT(*) FROM locations l WHERE l.account = f.account "
            " AND l.folder = f.folder AND l.uidvalidity = f.uidvalidity) AS stored "
            "FROM folders f ORDER BY f.account, f.folder"):
        changed = f["uidvalidity_changed_at"]
        folders.append({
            "account": f["account"], "folder": f["folder"],
            "server_count": f["server_count"], "stored": f["stored"],
            "synced_at": f["synced_at"], "last_error": f["last_error"],
            "uidvalidity_changed_at": changed if changed and changed >= iso(since) else None,
            "ok": (f["server_count"] is not None and f["stored"] == f["server_count"]
                   and not f["last_error"] and f["synced_at"] is not None),
        })
    stale_limit = now - config.sla.stale_sync_after
    accounts = []
    for acc in config.accounts:
        rows = [f for f in folders if f["account"] == acc.name]
        synced = [at for f in rows if (at := parse_iso(f["synced_at"])) is not None]
        last = max(synced) if synced else None
        errors = [f["last_error"] for f in rows if f["last_error"]]
        accounts.append({"account": acc.name, "last_sync_at": iso(last),
                         "stale": last is None or last < stale_limit,
                         "error": errors[0] if errors else None,
                         # every folder failed: the login (or the server), not one folder
                         "unreadable": bool(rows) and len(errors) == len(rows)})
    synced_all = [a["last_sync_at"] for a in accounts if a["last_sync_at"]]
    stale_accounts = [a["account"] for a in accounts if a["stale"]]
    completeness = {"folders": folders, "accounts": accounts,
                    "complete": all(f["ok"] for f in folders) and len(folders) > 0}
    sync = {
        "unreadable": [{"account": a["account"], "error": a["error"]}
                       for a in accounts if a["unreadable"]],
        "last_sync_at": max(synced_all) if synced_all else None,
        "oldest_account_sync_at": min(synced_all) if len(synced_all) == len(accounts) else None,
        "stale": bool(stale_accounts),
        "stale_accounts": stale_accounts,
        "stale_after_hours": _hours(config.sla.stale_sync_after),
    }
    return completeness, sync


def _quarantined(db: sqlite_utils.Database, p: dict[str, Any]) -> dict[str, Any]:
    """Messages we could not fully parse: all of them counted, the period's listed."""
    return {
        "total": db.execute(
            "SELECT COUNT(*) FROM messages WHERE parse_error IS NOT NULL").fetchone()[0],
        "period": db.execute(
            "SELECT COUNT(*) FROM messages WHERE parse_error IS NOT NULL "
            "AND first_seen_at >= :since", p).fetchone()[0],
        "messages": [
            {"from": r["from_addr"], "from_name": r["from_name"], "subject": r["subject"] or "",
             "arrived_at": r["arrived_at"], "error": r["parse_error"],
             "thread_id": r["thread_id"]}
            for r in db.query(
                "SELECT from_addr, from_name, subject, arrived_at, parse_error, thread_id "
                "FROM messages WHERE parse_error IS NOT NULL AND first_seen_at >= :since "
                "ORDER BY arrived_at DESC, id DESC LIMIT :cap", {**p, "cap": QUARANTINE_CAP})],
    }


def _by_owner(items: list[dict[str, Any]], members: Sequence[str]) -> list[dict[str, Any]]:
    """``items`` grouped by assignee, order kept within each: nobody's first (someone must
    pick them up), then the members in config order, then names no longer in the config."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(item.get("assignee"), []).append(item)
    rank = {name: n for n, name in enumerate(members)}
    order = sorted(groups, key=lambda o: (o is not None, rank.get(o or "", len(rank)), o or ""))
    return [{"owner": o, "label": o or "unassigned", "threads": groups[o]} for o in order]


def build_report(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                 since: dt.datetime | None = None, *,
                 holding_templates: Collection[str] | None = None,
                 items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything the report shows, as plain data (also ``triage report --json``); a fixed
    number of queries whatever the size of the mailbox.  ``items``: what ``overdue`` lists
    now, when the caller has it already; else it is asked, with ``holding_templates``."""
    since = since or now - dt.timedelta(hours=24)
    p = {"now": iso(now), "since": iso(since), "window": iso(now - RESPONSE_WINDOW)}
    if items is None:
        if holding_templates is None:
            holding_templates = render.holding_templates(config)
        # the first of each list and how many there are: not 27,000 items built
        counts, items = counted(db, config, now, OVERDUE_CAP,
                                holding_templates=holding_templates)
    else:
        counts = dict.fromkeys(REASONS, 0)
        for item in items:
            counts[item["reason"]] += 1
    unanswered = [i for i in items if i["reason"] == "unanswered"]
    followups = [i for i in items if i["reason"] == "followup"]
    attention = [i for i in items if i["reason"] in ATTENTION_REASONS]
    attention_count = sum(counts[r] for r in ATTENTION_REASONS)
    open_count, backlog = _backlog(db, p, now)
    completeness, sync = _completeness(db, config, now, since)
    overdue_listed, overdue_more = _capped(unanswered, counts["unanswered"])
    followup_listed, followup_more = _capped(followups, counts["followup"])
    attention_listed, attention_more = _capped(attention, attention_count)
    members = [m.name for m in config.team.members]
    return {
        "generated_at": iso(now),
        "since": iso(since),
        "timezone": config.report.timezone,
        "headline": {
            "waiting_too_long": counts["unanswered"] + counts["followup"],
            "overdue": counts["unanswered"],
            "followup": counts["followup"],
            "attention": attention_count,
            "open": open_count,
            "all_clear": not any(counts.values()),
        },
        # replies whose delivery is unknown or was refused, and bounces: for a person
        "attention": attention_listed,
        "attention_more": attention_more,
        "overdue": overdue_listed,
        "overdue_more": overdue_more,
        "followup": followup_listed,
        "followup_more": followup_more,
        # the same lists by owner (one group, nobody's, when team.members is not set)
        "by_owner": bool(members),
        "overdue_groups": _by_owner(overdue_listed, members),
        "followup_groups": _by_owner(followup_listed, members),
        **_activity(db, p),
        "backlog": backlog,
        "response": _response(db, p),
        "trend": _trend(db, config, now),
        "tags": open_tags(db, now),
        "completeness": completeness,
        # earlier reports whose delivery is unknown (not sent again: outbox.deliver_report)
        "reports_unknown": [r[0] for r in db.execute(
            "SELECT report_for FROM outbox WHERE kind = 'report' AND state = 'unknown' "
            "AND created_at >= :since ORDER BY report_for", p)],
        "quarantined": _quarantined(db, p),
        "sync": sync,
    }
