"""Bounces of our own mail: a delivery report (dsn.py) linked to the thread it failed in.

A report names the Message-ID of the message that did not arrive; when that is one of
ours (in the outbox, or a message from the team in the store), the thread it belongs to is
flagged: ``overdue`` lists it (``reason: "bounced"``) at any threshold until someone acts —
writes to the thread again, or sets its state by hand.  The report itself stays automated
mail in its own thread.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from .config import TeamConfig
from .store import iso

if TYPE_CHECKING:
    import sqlite_utils

    from .dsn import DeliveryReport

# A report whose original is not (yet) in the store is looked at again at every sync for
# this long: our Sent copy may be in a folder synced after the report's.
LINK_WINDOW = dt.timedelta(days=7)

# SQL on ``bounces b`` and ``threads t``: nobody has acted on the bounce yet.
OPEN_SQL = (
    "(t.last_team_at IS NULL OR t.last_team_at <= b.at) "
    "AND NOT EXISTS (SELECT 1 FROM history h WHERE h.thread_id = b.thread_id "
    "  AND h.field = 'state' AND h.cause = 'cli' AND h.at > b.at)")


def _our_thread(db: sqlite_utils.Database, message_id: str, team: TeamConfig) -> int | None:
    row = db.execute("SELECT thread_id FROM outbox WHERE message_id = ? AND kind = 'reply' "
                     "ORDER BY id DESC LIMIT 1", [message_id]).fetchone()
    if row:
        return int(row[0])
    for thread_id, from_addr, from_sent in db.execute(
            "SELECT thread_id, from_addr, from_sent FROM messages "
            "WHERE message_id = ? OR original_id = ?", [message_id, message_id]):
        if from_sent or team.is_us(from_addr):
            return int(thread_id)
    return None


def to_json(report: DeliveryReport) -> str:
    """How sync keeps a report it read in ``messages.dsn`` until it is linked."""
    return json.dumps({"ids": list(report.original_ids),
                       "failed": [[r.address, r.status, r.diagnostic] for r in report.recipients]})


def from_json(raw: str) -> DeliveryReport:
    """The report :func:`to_json` kept."""
    from .dsn import DeliveryReport, FailedRecipient  # (the email parser): most syncs have none

    data = json.loads(raw)
    return DeliveryReport(tuple(data["ids"]), tuple(FailedRecipient(*r) for r in data["failed"]))


def link_reports(db: sqlite_utils.Database, team: TeamConfig, now: dt.datetime) -> int:
    """Link the reports sync read to the threads of our mail they name (caller's
    transaction); return how many threads were flagged."""
    flagged = 0
    for message, raw, arrived in list(db.execute(
            "SELECT id, dsn, arrived_at FROM messages WHERE dsn IS NOT NULL "
            "AND dsn != 'pending'")):
        report = from_json(raw)
        found = record_bounce(db, message, report, team)
        flagged += found
        if found or (arrived or "") < iso(now - LINK_WINDOW):
            db.execute("UPDATE messages SET dsn = NULL WHERE id = ?", [message])
    return flagged


def record_bounce(db: sqlite_utils.Database, message: int, report: DeliveryReport,
                  team: TeamConfig) -> int:
    """Link the report stored as ``message`` to our mail it names (caller's transaction);
    return how many of our threads it flags."""
    arrived = db.execute("SELECT arrived_at FROM messages WHERE id = ?", [message]).fetchone()
    at = arrived[0] if arrived else None
    threads = 0
    for original in report.original_ids:
        thread_id = _our_thread(db, original, team)
        if thread_id is None:
            continue
        threads += 1
        rows = [(r.address, r.status, r.diagnostic) for r in report.recipients] or [("", "", "")]
        db.conn.executemany(
            "INSERT OR REPLACE INTO bounces (message, recipient, thread_id, original_id, status, "
            "diagnostic, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(message, addr, thread_id, original, status, diagnostic, at)
             for addr, status, diagnostic in rows])
    return threads
