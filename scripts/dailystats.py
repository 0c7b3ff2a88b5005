"""One row a day in ``daily_stats``, and the "Last 14 days" the report and the web page show.

``triage run`` calls :func:`record` on every run: it writes the row of the current local
day (``report.timezone``), replacing that day's row, so the last run of a day leaves the
day's closing numbers; a day that is over is never written again (a run after midnight
writes the next day's row).  Running twice in a day changes nothing but the numbers.

The counts reuse the rules of the commands: ``open`` and ``overdue`` come from the list
``overdue`` returns (or the open-thread rule of states.py), ``new`` and ``answered`` from
the report's own queries over the day so far.  The first-response figures are of the
first replies sent that day (how long those customers had waited), which is final once
the day is over, unlike a window of questions still waiting for an answer.

:func:`trend` and :func:`text_bar` are pure: rows in, the bars' numbers out.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .config import Config
from .report import activity, percentile
from .states import open_sql
from .store import iso, parse_iso

if TYPE_CHECKING:
    import sqlite_utils

DAYS = 14
REWRITE_EVERY = dt.timedelta(minutes=30)  # today's row is at most this old at midnight
TABLE = "daily_stats"


def day_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """Start and end (UTC) of a local day; DST days are 23 or 25 hours long."""
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_day(now: dt.datetime, zone: str) -> dt.date:
    return now.astimezone(ZoneInfo(zone)).date()


def response_hours(pairs: Sequence[tuple[str | None, str | None]]) -> list[float]:
    """Hours from each (first customer message, first reply) pair; pairs out of order or
    incomplete are left out."""
    out = []
    for asked_at, answered_at in pairs:
        asked, answered = parse_iso(asked_at), parse_iso(answered_at)
        if asked and answered and answered >= asked:
            out.append((answered - asked).total_seconds() / 3600)
    return out


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def compute(db: sqlite_utils.Database, config: Config, now: dt.datetime,
            items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Today's row as of ``now``; ``items`` is what ``overdue`` lists at ``now``."""
    day = local_day(now, config.report.timezone)
    start, _end = day_bounds(day, config.report.timezone)
    at = iso(now)
    waits = [r[0] for r in db.execute(
        "SELECT t.waiting_since FROM threads t JOIN thread_state s ON s.thread_id = t.id "
        f"WHERE {open_sql()}", [at])]
    oldest = min((w for w in waits if w), default=None)
    oldest_at = parse_iso(oldest)
    pairs = [(r[0], r[1]) for r in db.execute(
        "SELECT (SELECT MIN(m.arrived_at) FROM messages m WHERE m.thread_id = t.id "
        " AND m.from_addr = t.customer AND m.auto_signals IS NULL), t.first_response_at "
        "FROM threads t WHERE t.automated = 0 AND t.last_at >= ? "
        "AND t.first_response_at >= ? AND t.first_response_at <= ?",
        [iso(start), iso(start), at])]
    hours = response_hours(pairs)
    counts = activity(db, start, now)
    return {
        "day": day.isoformat(),
        "open": len(waits),
        "overdue": sum(i["reason"] == "unanswered" for i in items),
        "followup": sum(i["reason"] == "followup" for i in items),
        "new": counts["new"]["count"],
        "answered": counts["answered"]["count"],
        "first_responses": len(hours),
        "median_first_response_hours": _round(statistics.median(hours)) if hours else None,
        "p90_first_response_hours": _round(percentile(hours, 90)),
        "oldest_wait_hours": _round(max(0.0, (now - oldest_at).total_seconds() / 3600))
        if oldest_at else None,
        "updated_at": at,
    }


def record(db: sqlite_utils.Database, config: Config, now: dt.datetime,
           items: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Write today's row (the same day's row is replaced: one row per day), at most every
    ``REWRITE_EVERY``: its queries scan every open thread, and cron runs every few minutes.
    None when the row is recent enough."""
    day = local_day(now, config.report.timezone).isoformat()
    written = db.execute(f"SELECT updated_at FROM {TABLE} WHERE day = ?", [day]).fetchone()
    last = parse_iso(written[0]) if written else None
    if last is not None and dt.timedelta(0) <= now - last < REWRITE_EVERY:
        return None
    row = compute(db, config, now, items)
    with db.atomic():
        db.table(TABLE).upsert(row, pk="day")
    return row


def recent(db: sqlite_utils.Database, today: dt.date, days: int = DAYS) -> list[dict[str, Any]]:
    """The stored rows of the ``days`` local days up to ``today``, oldest first."""
    if TABLE not in db.table_names():
        return []
    first = (today - dt.timedelta(days=days - 1)).isoformat()
    return list(db.query(f"SELECT * FROM {TABLE} WHERE day >= ? AND day <= ? ORDER BY day",
                         [first, today.isoformat()]))


def trend(rows: Sequence[dict[str, Any]], today: dt.date, days: int = DAYS) -> dict[str, Any]:
    """Every one of the last ``days`` days (a day without a row has ``None`` counts: no run
    that day), with bar widths in percent of the largest count of either series, so an
    overdue bar and a new bar of one length mean the same number."""
    by_day = {r["day"]: r for r in rows}
    out: list[dict[str, Any]] = []
    for n in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=n)
        r = by_day.get(day.isoformat())
        out.append({"day": day.isoformat(), "label": day.strftime("%a %d"),
                    "today": n == 0,
                    "overdue": r["overdue"] if r else None, "new": r["new"] if r else None,
                    "open": r["open"] if r else None})
    peak: int = max([d[k] or 0 for d in out for k in ("overdue", "new")] + [0])
    for d in out:
        for k in ("overdue", "new"):
            d[f"{k}_pct"] = round(100 * (d[k] or 0) / peak, 1) if peak else 0.0
    return {"days": out, "peak": peak, "recorded": sum(d["new"] is not None for d in out)}


def text_bar(pct: float, width: int = 20) -> str:
    """A bar of ``#`` for the text report: any count above zero shows at least one."""
    if pct <= 0:
        return ""
    return "#" * max(1, round(pct / 100 * width))
