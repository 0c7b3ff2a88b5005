"""The daily report: proof, every morning, that nothing fell through the cracks.

:func:`build_report` gathers plain data (JSON-ready: ISO strings, numbers, lists)
with a fixed number of queries, whatever the size of the mailbox;
:func:`render_report` turns it into a subject, a plain-text and an HTML body
through the ``report/report.txt.j2`` and ``report/report.html.j2`` templates
(a user's ``templates/`` folder may override either); :func:`report_message`
wraps them in a ``multipart/alternative`` email.

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
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from .config import Config, ConfigError
from .display import safe
from .overdue import overdue
from .render import environment, holding_templates, render_file
from .sla import format_duration
from .store import iso, parse_iso
from .triage import open_sql

TEXT_TEMPLATE = "report/report.txt.j2"
HTML_TEMPLATE = "report/report.html.j2"

# (label, lower bound, upper bound) of the customer's wait, for the backlog chart.
BUCKETS: tuple[tuple[str, dt.timedelta, dt.timedelta | None], ...] = (
    ("<4h", dt.timedelta(0), dt.timedelta(hours=4)),
    ("4–24h", dt.timedelta(hours=4), dt.timedelta(hours=24)),
    ("1–3d", dt.timedelta(hours=24), dt.timedelta(days=3)),
    (">3d", dt.timedelta(days=3), None),
)
ATTENTION_REASONS = ("delivery_unknown", "delivery_failed", "bounced")
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


def build_report(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                 since: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the report shows, as plain data (also ``triage report --json``)."""
    since = since or now - dt.timedelta(hours=24)
    p = {"now": iso(now), "since": iso(since)}

    items = overdue(db, config, now, holding_templates=holding_templates(config))
    unanswered = [i for i in items if i["reason"] == "unanswered"]
    followups = [i for i in items if i["reason"] == "followup"]
    attention = [i for i in items if i["reason"] in ATTENTION_REASONS]

    # 1. open threads: total, backlog by age, tags
    open_rows = list(db.query(
        "SELECT t.id, t.waiting_since FROM threads t JOIN thread_state s "
        f"ON s.thread_id = t.id WHERE {_OPEN}", p))
    counts = [0] * len(BUCKETS)
    for r in open_rows:
        since_at = parse_iso(r["waiting_since"])
        if since_at is None:
            continue
        wait = now - since_at
        for n, (_label, low, high) in enumerate(BUCKETS):
            if wait >= low and (high is None or wait < high):
                counts[n] += 1
                break
        else:  # a wait in the future (clock skew): the freshest bucket
            counts[0] += 1
    waiting_total = sum(counts)
    backlog = [{"label": label, "count": c,
                "pct": round(100 * c / waiting_total, 1) if waiting_total else 0.0}
               for (label, _lo, _hi), c in zip(BUCKETS, counts, strict=True)]
    tags = [{"tag": r["tag"], "count": r["n"]} for r in db.query(
        "SELECT g.tag, COUNT(*) AS n FROM tags g JOIN thread_state s ON s.thread_id = g.thread_id "
        f"WHERE {_OPEN} GROUP BY g.tag ORDER BY n DESC, g.tag", p)]

    # 2. activity in the period
    new_rows = list(db.query(
        "SELECT t.id, t.subject, t.customer, t.customer_name, t.first_at, s.state "
        "FROM threads t LEFT JOIN thread_state s ON s.thread_id = t.id "
        "WHERE t.first_at >= :since AND t.first_at <= :now AND t.automated = 0 "
        "ORDER BY t.first_at, t.id", p))
    answered_rows = list(db.query(
        "SELECT t.id, t.subject, t.customer, t.customer_name, s.state, "
        " MAX(COALESCE(CASE WHEN t.last_team_at >= :since THEN t.last_team_at END, ''),"
        "     COALESCE((SELECT MAX(r.settled_at) FROM outbox r WHERE r.thread_id = t.id "
        "       AND r.kind = 'reply' AND r.state = 'sent' AND r.auto = 0 "
        "       AND r.settled_at >= :since), '')) AS answered_at "
        "FROM threads t LEFT JOIN thread_state s ON s.thread_id = t.id "
        "WHERE t.last_team_at >= :since OR EXISTS (SELECT 1 FROM outbox r "
        " WHERE r.thread_id = t.id AND r.kind = 'reply' AND r.state = 'sent' AND r.auto = 0 "
        " AND r.settled_at >= :since) ORDER BY answered_at, t.id", p))

    # 3. first-response times: threads whose first customer message is in the last 7 days
    p["window"] = iso(now - RESPONSE_WINDOW)
    response_rows = list(db.query(
        "SELECT first_customer_at, first_response_at FROM ("
        " SELECT t.first_response_at, (SELECT MIN(m.arrived_at) FROM messages m"
        "  WHERE m.thread_id = t.id AND m.from_addr = t.customer AND m.auto_signals IS NULL)"
        "  AS first_customer_at FROM threads t WHERE t.automated = 0 AND t.last_at >= :window)"
        " WHERE first_customer_at >= :window AND first_customer_at <= :now", p))
    times = []
    for r in response_rows:
        asked, answered = parse_iso(r["first_customer_at"]), parse_iso(r["first_response_at"])
        if asked and answered and answered >= asked:
            times.append((answered - asked).total_seconds() / 3600)
    median, p90 = (statistics.median(times) if times else None), percentile(times, 90)
    response = {
        "days": RESPONSE_WINDOW.days,
        "answered": len(times),
        "unanswered": len(response_rows) - len(times),
        "median_hours": round(median, 2) if median is not None else None,
        "p90_hours": round(p90, 2) if p90 is not None else None,
    }

    # 4. completeness: what the server holds against what we stored
    folder_rows = list(db.query(
        "SELECT f.*, (SELECT COUNT(*) FROM locations l WHERE l.account = f.account "
        " AND l.folder = f.folder AND l.uidvalidity = f.uidvalidity) AS stored "
        "FROM folders f ORDER BY f.account, f.folder"))
    folders = []
    for f in folder_rows:
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
                         "error": errors[0] if errors else None})
    synced_all = [a["last_sync_at"] for a in accounts if a["last_sync_at"]]
    stale_accounts = [a["account"] for a in accounts if a["stale"]]

    # 5. quarantined: messages we could not fully parse, first seen in the period
    quarantined_total = db.execute(
        "SELECT COUNT(*) FROM messages WHERE parse_error IS NOT NULL").fetchone()[0]
    quarantined = [
        {"from": r["from_addr"], "from_name": r["from_name"], "subject": r["subject"] or "",
         "arrived_at": r["arrived_at"], "error": r["parse_error"], "thread_id": r["thread_id"]}
        for r in db.query(
            "SELECT from_addr, from_name, subject, arrived_at, parse_error, thread_id "
            "FROM messages WHERE parse_error IS NOT NULL AND first_seen_at >= :since "
            "ORDER BY arrived_at DESC, id DESC LIMIT :cap", {**p, "cap": QUARANTINE_CAP})]
    quarantined_period = db.execute(
        "SELECT COUNT(*) FROM messages WHERE parse_error IS NOT NULL AND first_seen_at >= ?",
        [iso(since)]).fetchone()[0]

    def brief(r: dict[str, Any], at_key: str) -> dict[str, Any]:
        return {"thread_id": r["id"], "subject": r["subject"] or "", "customer": r["customer"],
                "customer_name": r["customer_name"], "state": r["state"], "at": r[at_key]}

    return {
        "generated_at": iso(now),
        "since": iso(since),
        "timezone": config.report.timezone,
        "headline": {
            "waiting_too_long": len(unanswered) + len(followups),
            "overdue": len(unanswered),
            "followup": len(followups),
            "attention": len(attention),
            "open": len(open_rows),
            "all_clear": not items,
        },
        # Replies whose delivery is unknown or was refused, and bounces: for a person.
        "attention": attention[:OVERDUE_CAP],
        "attention_more": max(0, len(attention) - OVERDUE_CAP),
        # The oldest first, capped: a mail listing 27,000 threads helps nobody, and the
        # headline still counts them all.
        "overdue": unanswered[:OVERDUE_CAP],
        "overdue_more": max(0, len(unanswered) - OVERDUE_CAP),
        "followup": followups[:OVERDUE_CAP],
        "followup_more": max(0, len(followups) - OVERDUE_CAP),
        "new": {"count": len(new_rows), "threads": [brief(r, "first_at")
                                                     for r in new_rows[:LIST_CAP]]},
        "answered": {"count": len(answered_rows),
                     "threads": [brief(r, "answered_at") for r in answered_rows[:LIST_CAP]]},
        "backlog": {"waiting": waiting_total, "buckets": backlog},
        "response": response,
        "tags": tags,
        "completeness": {
            "folders": folders,
            "accounts": accounts,
            "complete": all(f["ok"] for f in folders) and len(folders) > 0,
        },
        "quarantined": {"total": quarantined_total, "period": quarantined_period,
                        "messages": quarantined},
        "sync": {
            "last_sync_at": max(synced_all) if synced_all else None,
            "oldest_account_sync_at": (min(synced_all) if len(synced_all) == len(accounts)
                                       else None),
            "stale": bool(stale_accounts),
            "stale_accounts": stale_accounts,
            "stale_after_hours": _hours(config.sla.stale_sync_after),
        },
    }


def subject_for(config: Config, data: dict[str, Any]) -> str:
    """The report's Subject: the configured text plus a short status."""
    parts = []
    if data["sync"]["stale"]:
        parts.append("SYNC STALE")
    n = data["headline"]["waiting_too_long"]
    if n:
        parts.append(f"{n} waiting too long")
    if data["headline"]["attention"]:
        parts.append(f"{data['headline']['attention']} need a person")
    if not parts:
        parts.append("all clear")
    return safe(f"{config.report.subject}: {', '.join(parts)}")


def _filters(config: Config) -> dict[str, Any]:
    zone = ZoneInfo(config.report.timezone)

    def localtime(value: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        at = parse_iso(value)
        return at.astimezone(zone).strftime(fmt) if at else "-"

    def duration(hours: float | None) -> str:
        if hours is None:
            return "n/a"
        return format_duration(dt.timedelta(hours=hours))

    def clean(value: Any, width: int | None = None) -> str:
        return safe(value, width)

    def pad(value: Any, width: int) -> str:
        return safe(value, width).ljust(width)

    def rpad(value: Any, width: int) -> str:
        return safe(value, width).rjust(width)

    def bar(pct: float, width: int = 30) -> str:
        return "#" * round(pct / 100 * width)

    return {"localtime": localtime, "duration": duration, "clean": clean, "pad": pad,
            "rpad": rpad, "bar": bar}


def render_report(config: Config, data: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of the report, from the templates."""
    subject = subject_for(config, data)
    out = []
    for name, autoescape in ((TEXT_TEMPLATE, False), (HTML_TEMPLATE, True)):
        env = environment(config, autoescape=autoescape)
        env.filters.update(_filters(config))
        out.append(render_file(env, name, {"report": data, "subject": subject,
                                           "config_subject": config.report.subject}))
    return subject, out[0], out[1]


def report_message(config: Config, data: dict[str, Any], now: dt.datetime) -> EmailMessage:
    """The report as a ``multipart/alternative`` email to ``report.to``."""
    sender = config.agent.address
    if not sender:
        raise ConfigError(config.path, "agent.address",
                          "missing: the report needs a From address (or list team.addresses)")
    subject, text, html = render_report(config, data)
    msg = EmailMessage()
    msg["From"] = formataddr((config.agent.name, sender))
    msg["To"] = ", ".join(config.report.to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = make_msgid("report", domain=sender.rpartition("@")[2] or None)
    # RFC 3834: machine-generated; autoresponders must not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg
