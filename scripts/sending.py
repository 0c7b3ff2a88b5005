"""Sending replies, one or many: which threads a bulk reply goes to, and the checks every
send passes before the outbox (outbox.py) sends it.

Before anything goes out: replies whose fate is unknown block another one to the same
thread; the account is synced and a thread that changed meanwhile, or holds a teammate's
draft, is skipped (collisions.py); ``force`` overrides both.  One refused recipient or bad
address skips that thread only; an SMTP server that cannot be reached stops the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import collisions, outbox, render
from .compose import Reply, render_reply
from .config import Config
from .errors import ReplyError, SyncError
from .overdue import overdue
from .senders import AUTO, classify_row
from .smtp import Mailer
from .store import loads, query_rows

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)


@dataclass
class Result:
    """What happened to one thread's reply."""

    thread_id: int
    reply: Reply
    outcome: outbox.Outcome | None = None  # None: not attempted
    skipped: str | None = None  # why it was not attempted
    changes: list[collisions.Change] = field(default_factory=list)

    @property
    def sent(self) -> bool:
        return self.outcome is not None and self.outcome.state == outbox.SENT


def loop_risks(db: sqlite_utils.Database, config: Config,
               thread_ids: Sequence[int]) -> dict[int, str]:
    """Threads an automatic or bulk reply must not answer, with why: the newest message not
    from the team is automated (an auto-reply, a bounce) or carries our address in X-Loop."""
    latest: dict[int, Any] = {}
    for row in db.query(
            "SELECT * FROM messages WHERE thread_id IN ({}) AND draft = 0 "
            "ORDER BY arrived_at, id".format(",".join("?" * len(thread_ids)) or "NULL"),
            list(thread_ids)):
        if not config.team.is_us(row["from_addr"]):
            latest[row["thread_id"]] = row
    risky: dict[int, str] = {}
    for tid, row in latest.items():
        if classify_row(row, config.team) == AUTO:
            risky[tid] = "the latest message is automated"
        elif any(config.team.is_us(a) for a in loads(row["x_loop"])):
            risky[tid] = "the latest message carries our address in X-Loop"
    return risky


def bulk_targets(db: sqlite_utils.Database, config: Config, template_name: str,
                 now: dt.datetime, *, skip_drafted: bool = False) -> list[int]:
    """Overdue threads to answer with this template: never automated mail, never a second
    time (sent, being sent, unknown, or refused for good), never in a mail loop.

    ``skip_drafted`` also leaves out threads holding a draft from this template (so re-running
    a bulk ``--draft`` does not pile up drafts).
    """
    reasons = {"unanswered"} | ({"followup"} if template_name == "followup" else set())
    items = overdue(db, config, now, holding_templates=render.holding_templates(config))
    candidates = list(dict.fromkeys(
        i["thread_id"] for i in items
        if i["reason"] in reasons and "automated" not in i["tags"]))
    # A fixed number of queries for any number of threads (a backlog can be thousands).
    automated = {tid for (tid,) in query_rows(
        db, "SELECT id FROM threads WHERE id IN ({in}) AND automated = 1", candidates)}
    drafted = "OR (kind = 'draft' AND state = 'drafted')" if skip_drafted else ""
    done = {tid for (tid,) in query_rows(
        db, "SELECT DISTINCT thread_id FROM outbox WHERE thread_id IN ({in}) AND ("
            "(kind = 'reply' AND template = ? AND (state IN ('sending', 'sent', 'unknown') "
            " OR (state = 'failed' AND permanent = 1))) "
            "OR (kind = 'reply' AND state IN ('sending', 'unknown') AND resolved_at IS NULL) "
            f"{drafted})", candidates, [template_name])}
    risky = loop_risks(db, config, candidates)
    return [tid for tid in candidates
            if tid not in automated and tid not in done and tid not in risky]


def compose_each(db: sqlite_utils.Database, config: Config, thread_ids: Sequence[int],
                 template: str, now: dt.datetime, *, cc: bool = True,
                 ) -> tuple[list[Reply], list[tuple[int, str]]]:
    """A reply from ``template`` for each thread, composed before anything is sent (a broken
    template raises before the first mail); the threads that cannot be answered, and why."""
    replies: list[Reply] = []
    cannot: list[tuple[int, str]] = []
    for tid in thread_ids:
        try:
            replies.append(render_reply(db, config, tid, template, now, cc=cc))
        except ReplyError as exc:  # this thread only: the others are still answered
            cannot.append((tid, str(exc)))
    return replies, cannot


def _changes(db: sqlite_utils.Database, config: Config, ids: list[int], now: dt.datetime,
             look: bool, force: bool, sync: Callable[..., Any] | None,
             ) -> dict[int, list[collisions.Change]]:
    """What is new in each thread since it was looked at (``look``: sync first), and the
    teammates' drafts; a failed sync stops the send unless ``force``."""
    if not look:
        return collisions.teammate_drafts(db, ids)
    if sync is None:
        from .sync import sync as sync_fn  # sync is heavy; most callers pass it
        sync = sync_fn
    try:
        return collisions.look_before_sending(db, config, ids, now, sync)
    except SyncError as exc:
        if not force:
            raise SyncError(f"cannot check the mailbox before sending (--force sends "
                            f"anyway): {exc}") from None
        log.warning("sending without checking the mailbox first: %s", exc)
        return collisions.teammate_drafts(db, ids)


def _why_not(db: sqlite_utils.Database, result: Result) -> str | None:
    if outbox.blocking(db, result.thread_id):
        return ("an earlier reply's delivery is unknown: check it, then "
                "`triage outbox resolve` or --force")
    if result.changes:
        return "someone else is on it: " + "; ".join(c.describe() for c in result.changes)
    return None


def send_replies(db: sqlite_utils.Database, config: Config, replies: Sequence[Reply],
                 now: dt.datetime, *, force: bool = False, look: bool = True,
                 sync: Callable[..., Any] | None = None,
                 session_factory: outbox.SessionFactory = outbox.default_session_factory,
                 ) -> list[Result]:
    """Check, then send each reply through the outbox; one result per reply, in order.

    ``look``: sync first and skip threads that changed (``triage run`` has just synced and
    looks at drafts only).  Raises SyncError when that sync fails, before anything is sent.
    """
    outbox.settle_interrupted(db, now)
    results = [Result(r.thread_id, r) for r in replies]
    changes = _changes(db, config, [r.thread_id for r in replies], now, look, force, sync)
    for result in results:
        result.changes = changes.get(result.thread_id, [])
        result.skipped = None if force else _why_not(db, result)
    with Mailer(config.smtp) as mailer:
        for result in results:
            if result.skipped:
                continue
            result.outcome = outbox.deliver(db, config, result.reply, now, mailer,
                                            session_factory)
            if result.outcome.connection:  # the server is unwell: the rest would fail too
                for rest in results:
                    if rest.outcome is None and not rest.skipped:
                        rest.skipped = f"not attempted: {result.outcome.error}"
                break
    return results
