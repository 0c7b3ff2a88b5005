"""Keeping every thread up to date after its mail changed: its summary (summary.py)
written to ``threads``, its state moved (states.py), new mail tagged (tagging.py) and
delivery reports linked (bounces.py).

:func:`refresh` runs after every sync on the threads marked dirty, the messages not yet
triaged and the reports not yet linked, a few hundred at a time, one transaction per
chunk; threads with automated mail only are closed and tagged ``automated``; then owners
follow members' replies and the rota (assignment.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import assignment, bounces, states
from .config import Config, TeamConfig
from .decisions import kept_closed
from .senders import US, classify
from .states import change_tags, first_state, follow_mail, follow_presence, wake_snoozed
from .store import CHUNK, chunks, iso, parse_iso, query_in, query_rows
from .subjects import normalize_subject
from .summary import Event, summarize
from .tagging import apply_rules

if TYPE_CHECKING:
    import sqlite_utils


@dataclass
class RefreshResult:
    threads: int = 0
    reopened: list[int] = field(default_factory=list)
    rule_hits: int = 0
    refreshed: list[int] = field(default_factory=list)
    new_threads: list[int] = field(default_factory=list)  # given their first state


@dataclass
class _ThreadFacts:
    events: list[Event] = field(default_factory=list)
    participants: set[str] = field(default_factory=set)
    subject: str = ""
    present: bool = False  # some message of it is in a synced folder


def _load_facts(db: sqlite_utils.Database, thread_ids: Sequence[int],
                team: TeamConfig) -> dict[int, _ThreadFacts]:
    """Each thread's events: its messages (drafts left out: they answer nothing) and what we
    sent that has not come back from the Sent folder yet (automatic acknowledgements left
    out: they never count as our answer)."""
    facts: dict[int, _ThreadFacts] = defaultdict(_ThreadFacts)
    seen_ids: dict[int, set[str]] = defaultdict(set)
    loads = json.loads
    quiet = kept_closed(db, thread_ids)
    for (tid, message_id, original_id, from_addr, from_name, to_json, cc_json, subject, arrived,
         signals_json, template, from_sent, auth_json, key) in query_rows(
        db,
        "SELECT thread_id, message_id, original_id, from_addr, from_name, to_addrs, cc_addrs, "
        "subject, arrived_at, auto_signals, template, from_sent, auth_results, key FROM messages "
        "WHERE thread_id IN ({in}) AND draft = 0 ORDER BY arrived_at, id",
        thread_ids,
    ):
        f = facts[tid]
        to = loads(to_json) if to_json else []
        if not f.events:
            f.subject = subject or ""
        if from_addr:
            f.participants.add(from_addr)
        f.participants.update(to)
        if cc_json:
            f.participants.update(loads(cc_json))
        at = parse_iso(arrived)
        seen_ids[tid].update(i for i in (message_id, original_id) if i)
        if at is None:
            continue
        signals = loads(signals_json) if signals_json else []
        kind = classify(from_addr, signals, team, from_sent=bool(from_sent),
                        auth_passes=loads(auth_json) if auth_json else ())
        f.events.append(Event(
            at=at, kind=kind, message_id=message_id, from_addr=from_addr, from_name=from_name,
            to=to, subject=subject or "", signals=signals, template=template,
            quiet=key in quiet,
        ))
    for r in query_in(db, "SELECT thread_id, message_id, to_addr, subject, settled_at, template "
                          "FROM outbox WHERE thread_id IN ({in}) AND kind = 'reply' "
                          "AND state = 'sent' AND auto = 0", thread_ids):
        if r["message_id"] in seen_ids[r["thread_id"]]:
            continue  # already synced back from the Sent folder
        at = parse_iso(r["settled_at"])
        if at:
            facts[r["thread_id"]].events.append(Event(
                at=at, kind=US, message_id=r["message_id"], to=[r["to_addr"]],
                subject=r["subject"] or "", template=r["template"], synced=False))
    for (tid,) in query_rows(db, "SELECT DISTINCT m.thread_id FROM messages m JOIN locations l "
                                 "ON l.message = m.id WHERE m.thread_id IN ({in})", thread_ids):
        facts[tid].present = True  # drafts count: what is in Drafts is still in the mailbox
    return facts


_THREAD_COLUMNS = (
    "subject", "subject_norm", "first_at", "last_at", "message_count", "participants",
    "customer", "customer_name", "last_customer_at", "last_team_at", "waiting_since",
    "first_response_at", "last_team_message_id", "last_team_template", "last_sender",
    "automated", "auto_signals",
)


def refresh_threads(db: sqlite_utils.Database, config: Config, thread_ids: Sequence[int],
                    now: dt.datetime, result: RefreshResult) -> None:
    """Recompute summaries and move states for these threads (caller's transaction).

    A fixed number of queries per chunk: new threads' states and history go in with
    one executemany each; only threads whose state changes get individual writes.
    """

    at = iso(now)
    current_states = {r["thread_id"]: r for r in query_in(
        db, "SELECT * FROM thread_state WHERE thread_id IN ({in})", thread_ids)}
    states.keep_closed(db, config, thread_ids, current_states, at)
    facts = _load_facts(db, thread_ids, config.team)
    updates = []
    first_states: list[tuple[int, str, str]] = []
    automated: list[int] = []
    for tid in thread_ids:
        f = facts.get(tid) or _ThreadFacts()
        s = summarize(f.events, config.team)
        updates.append((
            f.subject, normalize_subject(f.subject), iso(s.first_at), iso(s.last_at),
            sum(1 for e in f.events if e.synced), json.dumps(sorted(f.participants)),
            s.customer, s.customer_name, iso(s.last_customer_at), iso(s.last_team_at),
            iso(s.waiting_since), iso(s.first_response_at), s.last_team_message_id,
            s.last_team_template, s.last_sender, int(s.automated),
            json.dumps(s.signals) if s.signals else None, tid,
        ))
        current = current_states.get(tid)
        if current is None:
            first_states.append((tid, first_state(s).value, at))
            result.new_threads.append(tid)
        elif not follow_presence(db, tid, s, current, at, f.present) \
                and follow_mail(db, tid, s, current, at):
            result.reopened.append(tid)
        if s.automated:
            automated.append(tid)
    db.conn.executemany(
        "UPDATE threads SET " + ", ".join(f"{c} = ?" for c in _THREAD_COLUMNS)
        + ", dirty = 0 WHERE id = ?", updates)
    db.conn.executemany(
        "INSERT INTO thread_state (thread_id, state, changed_at) VALUES (?, ?, ?)",
        first_states)
    db.conn.executemany(
        "INSERT INTO history (thread_id, at, field, old, new, cause) "
        "VALUES (?, ?, 'state', NULL, ?, 'sync')", [(t, a, st) for t, st, a in first_states])
    for tid in automated:
        change_tags(db, tid, ["automated"], [], at, "sync")


def refresh(db: sqlite_utils.Database, config: Config, now: dt.datetime,
            chunk: int = CHUNK) -> RefreshResult:
    """Bring dirty threads, new messages' rules and expired snoozes up to date."""
    result = RefreshResult()
    with db.atomic():
        bounces.link_reports(db, config.team, now)
    while True:
        ids = [r[0] for r in db.execute(
            "SELECT id FROM threads WHERE dirty = 1 LIMIT ?", [chunk])]
        if not ids:
            break
        with db.atomic():
            refresh_threads(db, config, ids, now, result)
        result.threads += len(ids)
        result.refreshed.extend(ids)
    if not config.rules:  # nothing to apply: one statement instead of a chunked walk
        with db.atomic():
            db.execute("UPDATE messages SET triaged = 1 WHERE triaged = 0")
    while config.rules:
        ids = [r[0] for r in db.execute(
            "SELECT id FROM messages WHERE triaged = 0 ORDER BY id LIMIT ?", [chunk])]
        if not ids:
            break
        with db.atomic():
            result.rule_hits += len(apply_rules(db, config, ids, now))
    if config.team.members:  # after the rules: a rule's owner comes before the rota's
        for part in chunks(sorted(set(result.refreshed))):
            with db.atomic():
                assignment.follow_replies(db, config, part, now)
        for part in chunks(result.new_threads):
            with db.atomic():
                assignment.follow_rota(db, config, part, now)
    with db.atomic():
        wake_snoozed(db, now)
    return result
