"""``triage run`` as a library: what cron does every few minutes.

1. Sync every account (one failing account, or folder, does not stop the others;
   its error is written to ``folders.last_error`` so the report shows it).
2. Optional automatic acknowledgements (``auto_ack:``), only when every sync
   succeeded: acknowledging on stale data could answer a thread the team
   already answered.  Each thread is on its own (see :func:`auto_acknowledge`).
3. The daily report, once per local day at ``report.at`` in ``report.timezone``.
   ``meta.last_report_for`` holds the local date of the last report sent; the
   latest due report slot is sent if it is newer, so a machine that was off for
   a week sends one catch-up report, not seven.  The report goes out even when
   the sync failed (it then says so loudly); the run still reports failure.  It is
   recorded in the outbox before it is sent, so no day's report goes out twice.
4. With ``notify:``, one chat message listing what newly happened (notify.py), before the
   report; a failed one is a warning, never a failure.
5. Today's row of ``daily_stats`` (dailystats.py), for the report's "Last 14 days".

Nothing here prints: :class:`RunResult` says what happened and what went wrong.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from . import dailystats, outbox, render
from . import notify as notify_mod
from . import report as report_mod
from . import sync as sync_mod
from .config import Config, ReportConfig
from .errors import (
    EXIT_FAILURE,
    EXIT_OK,
    ConfigError,
    MailtriageError,
    SyncError,
    TemplateProblem,
    Throttled,
)
from .overdue import overdue
from .reportmail import render_report, report_message
from .store import get_meta, iso, parse_iso, set_meta
from .triage import refresh

if TYPE_CHECKING:
    import sqlite_utils

    from . import sending

log = logging.getLogger(__name__)

LAST_REPORT_KEY = "last_report_for"
# Auto-acknowledge only customers who started waiting recently: turning auto_ack on
# over an old backlog must not mail hundreds of "we got your message" notes.
ACK_WINDOW = dt.timedelta(days=3)
MAX_CATCH_UP = dt.timedelta(days=7)  # the period a catch-up report covers, at most
MAX_ACK_ATTEMPTS = 3  # acknowledgements that failed for a passing reason, then no more


@dataclass
class RunResult:
    synced: list[sync_mod.SyncResult] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    report_for: str | None = None  # local date of the report sent in this run
    overdue: int = 0
    # what went wrong, each with the exit status it calls for (errors.py)
    failures: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # sent, but something minor went wrong

    def failed(self, what: str, exc: MailtriageError | str,
               status: int = EXIT_FAILURE) -> None:
        if isinstance(exc, MailtriageError):
            status = exc.exit_status
        self.failures.append((status, f"{what}: {exc}" if what else str(exc)))

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_status(self) -> int:
        return max((status for status, _ in self.failures), default=EXIT_OK)



def report_slot(report: ReportConfig, now: dt.datetime, last_for: str | None) -> dt.date | None:
    """The local date whose report is due now, or None when nothing is due.

    The latest slot at or before ``now`` is today's if ``report.at`` has passed,
    else yesterday's; it is due when newer than ``last_for``.  Before the very
    first report (``last_for`` None) only today's slot counts.
    """
    zone = ZoneInfo(report.timezone)
    local = now.astimezone(zone)
    today = local.date()
    passed = local >= dt.datetime.combine(today, report.at, tzinfo=zone)
    if last_for is None:
        return today if passed else None
    slot = today if passed else today - dt.timedelta(days=1)
    return slot if slot.isoformat() > last_for else None


def slot_time(report: ReportConfig, day: dt.date) -> dt.datetime:
    """The moment (UTC) the report for local date ``day`` was due."""
    zone = ZoneInfo(report.timezone)
    return dt.datetime.combine(day, report.at, tzinfo=zone).astimezone(dt.UTC)


def _record_sync_error(db: sqlite_utils.Database, config: Config, account: str,
                       message: str) -> None:
    """Put the failure on the account's folder rows (creating them if never synced)."""
    with db.atomic():
        cur = db.execute("UPDATE folders SET last_error = ? WHERE account = ?", [message, account])
        if not cur.rowcount:
            db.conn.executemany(
                "INSERT OR IGNORE INTO folders (account, folder, last_error) VALUES (?, ?, ?)",
                [(account, folder, message) for folder in config.account(account).folders])


def sync_all(db: sqlite_utils.Database, config: Config, now: dt.datetime, result: RunResult,
             sync_fn: Callable[..., sync_mod.SyncResult] | None = None) -> None:
    sync_fn = sync_fn or sync_mod.sync
    for account in config.accounts:
        try:
            synced = sync_fn(db, config, now, accounts=[account.name], refresh=False)
        except Throttled as exc:  # it passes by itself: said once, not a failure of the run
            _record_sync_error(db, config, account.name, str(exc))
            if exc.fresh:
                result.warnings.append(f"sync {account.name}: {exc}")
            continue
        except (ConfigError, SyncError) as exc:  # this account only: the others still sync
            result.failed("" if isinstance(exc, ConfigError) else f"sync {account.name}", exc)
            _record_sync_error(db, config, account.name, str(exc))
            continue
        result.synced.append(synced)
        if (failure := synced.failure()) is not None:  # recorded on its folders already
            result.failed("sync", failure)
    # once for all accounts; states still move for the accounts that did sync
    refresh(db, config, now)


def ack_targets(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                window: dt.timedelta = ACK_WINDOW) -> list[tuple[int, dt.datetime]]:
    """Open threads whose customer started waiting between ``ACK_WINDOW`` and
    ``auto_ack.after`` ago and that were never acknowledged: not sent, being sent, of unknown
    fate, refused for good or tried ``MAX_ACK_ATTEMPTS`` times; never mail in a loop.
    ``(thread, waiting since)``, the newest wait first."""
    ack = config.auto_ack
    if ack is None:
        return []
    rows = [(r[0], parse_iso(r[1])) for r in db.execute(
        "SELECT t.id, t.waiting_since FROM threads t JOIN thread_state s ON s.thread_id = t.id "
        "WHERE s.state = 'open' AND t.automated = 0 AND t.last_sender = 'customer' "
        "AND t.waiting_since IS NOT NULL AND t.waiting_since <= ? AND t.waiting_since >= ? "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.thread_id = t.id AND o.kind = 'reply' "
        "  AND o.template = ? AND (o.state IN ('sending', 'sent', 'unknown') "
        "  OR (o.state = 'failed' AND o.permanent = 1))) "
        "AND (SELECT COUNT(*) FROM outbox o WHERE o.thread_id = t.id AND o.template = ? "
        "  AND o.state = 'failed') < ? "
        "AND COALESCE(t.last_team_template, '') != ? "
        "AND NOT EXISTS (SELECT 1 FROM tags g WHERE g.thread_id = t.id AND g.tag = 'automated') "
        "ORDER BY t.waiting_since DESC, t.id DESC",
        [iso(now - ack.after), iso(now - window), ack.template, ack.template, MAX_ACK_ATTEMPTS,
         ack.template])]
    from . import sending  # (compose, smtp): only with auto_ack

    risky = sending.loop_risks(db, config, [tid for tid, _w in rows])
    return [(tid, since) for tid, since in rows if tid not in risky and since is not None]


def _acked_recently(db: sqlite_utils.Database, address: str, since: dt.datetime) -> bool:
    return db.execute(
        "SELECT 1 FROM outbox WHERE auto = 1 AND kind = 'reply' AND to_addr = ? "
        "AND created_at >= ? AND state IN ('sending', 'sent', 'unknown') LIMIT 1",
        [address, iso(since)]).fetchone() is not None


def auto_acknowledge(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                     result: RunResult) -> None:
    """Send ``auto_ack.template`` to each target thread.  Every thread is on its own: a bad
    address, a refusal or a template error is recorded on that thread (and shown in the
    report) and the others still get theirs; only an unreachable server stops the rest."""
    from . import compose, sending

    ack = config.auto_ack
    if ack is None:
        return
    replies: list[compose.Reply] = []
    for tid, waiting_since in ack_targets(db, config, now):
        try:
            reply = compose.render_reply(db, config, tid, ack.template, now, auto=True)
        except (TemplateProblem, compose.ReplyError) as exc:  # this thread only
            outbox.record_failure(db, None, tid, ack.template, str(exc), now, auto=True)
            result.failed(f"auto_ack thread {tid}: not sent", str(exc))
            continue
        # One acknowledgement per address per auto_ack.per_sender, however it is threaded:
        # the newest thread gets it, and one held back is not acknowledged later either
        # (the customer was told "we got your mail" while it waited).
        since = min(now - ack.per_sender, waiting_since)
        if reply.to_addr not in {r.to_addr for r in replies} \
                and not _acked_recently(db, reply.to_addr, since):
            replies.append(reply)
    if replies:
        _count_acks(sending.send_replies(db, config, replies, now, look=False), result)


def _count_acks(results: list[sending.Result], result: RunResult) -> None:
    for done in results:
        if done.sent:
            result.acked.append(done.thread_id)
            if done.outcome and done.outcome.warning:
                result.warnings.append(done.outcome.warning)
        elif done.outcome is None:  # a teammate's draft, an earlier unknown, a down server
            continue
        elif done.outcome.connection:  # the server is unwell: the next run tries again
            result.failed("auto_ack", str(done.outcome.error))
        else:
            result.failed(f"auto_ack thread {done.thread_id}: {done.outcome.state}",
                          str(done.outcome.error))


def send_daily_report(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                      result: RunResult, items: list[dict[str, Any]] | None = None) -> None:
    """The report, once per local day at ``report.at`` (see :func:`report_slot`), through
    the outbox: never twice for one day, even when the server's answer was lost or the run
    was killed mid-send (then the next report says this one may not have arrived).
    ``items`` is what ``overdue`` lists now, when the caller has it already."""
    if not config.report.to:
        return
    last_for = get_meta(db, LAST_REPORT_KEY)
    slot = report_slot(config.report, now, last_for)
    if slot is None:
        return
    outbox.settle_interrupted(db, now)
    state = outbox.report_state(db, slot.isoformat())
    if state == outbox.SENDING:  # another process is sending it right now
        return
    if state is None:
        state = _send_report(db, config, now, result, slot, last_for, items)
        if state is None:
            return
    if state == outbox.UNKNOWN:
        result.warnings.append(f"the report for {slot} may not have arrived (no answer from "
                               "the server after it was sent); it is not sent again")
    with db.atomic():
        set_meta(db, LAST_REPORT_KEY, slot.isoformat())
    result.report_for = slot.isoformat()


def _send_report(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                 result: RunResult, slot: dt.date, last_for: str | None,
                 items: list[dict[str, Any]] | None) -> str | None:
    """Build, render and deliver the report; its outbox state, or None when it was not
    sent (recorded as a failure: the next run tries again)."""
    since = now - dt.timedelta(hours=24)
    if last_for:  # a catch-up report covers everything since the last one
        last_at = slot_time(config.report, dt.date.fromisoformat(last_for))
        since = min(since, max(last_at, now - MAX_CATCH_UP))
    data = report_mod.build_report(db, config, now, since=since, items=items)
    try:
        message = report_message(config, render_report(config, data), now)
        outcome = outbox.deliver_report(db, config, message, slot.isoformat(), now)
    except (ConfigError, TemplateProblem) as exc:
        result.failed("", exc)
        return None
    if outcome.state == outbox.FAILED:
        result.failed("report", outcome.error or "not sent")
        return None
    if outcome.warning:
        result.warnings.append(f"report: {outcome.warning}")
    return outcome.state


def run(
    db: sqlite_utils.Database,
    config: Config,
    now: dt.datetime,
    *,
    send_report: bool = True,
    auto_ack: bool = True,
    notify: bool = True,
    sync_fn: Callable[..., sync_mod.SyncResult] | None = None,
) -> RunResult:
    """Sync, acknowledge, notify, report: one cron tick.  Raises only for a broken database."""
    result = RunResult()
    sync_all(db, config, now, result, sync_fn=sync_fn)
    if auto_ack and config.auto_ack is not None:
        if result.ok:
            outbox.settle_interrupted(db, now)
            auto_acknowledge(db, config, now, result)
        else:
            log.info("auto_ack skipped: the sync failed")
    items = overdue(db, config, now, holding_templates=render.holding_templates(config))
    result.overdue = len(items)
    dailystats.record(db, config, now, items)  # today's row of the trend, one per day
    if notify:  # what newly happened, to the team's chat (notify.py); never a failure
        result.warnings += notify_mod.notify_run(db, config, now, items)
    if send_report:
        send_daily_report(db, config, now, result, items=items)
    return result

