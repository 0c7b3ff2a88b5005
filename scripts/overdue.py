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

How it is computed: one query, whatever the number of threads, with work per listed item
rather than per thread (the worst case lists 27,000 threads of 100,000 messages).  It picks
the candidates, computes their due times and sorts them, keeping little per item; each
item's JSON is then made by SQLite as it comes out of the sort, and Python writes only the
hours into it.  Without business hours a due time is waiting since + threshold, plain
arithmetic in the query (the threshold rule has a SQL form beside it); with business hours
the unanswered ones are the :class:`~.sla.Clock`'s, in Python.  Times are stored by
``store.iso`` (whole seconds, UTC), which the SQL relies on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import bounces
from .config import Config, SLAConfig
from .listing import (
    assignee_sql,
    draft_by_json_sql,
    message_ids_json_sql,
    tags_json_sql,
    thread_tags,
)
from .outbox import needs_a_person_sql
from .sla import Clock
from .states import open_sql
from .store import CHUNK, iso, parse_iso
from .times import epoch_micros, micros

ATTENTION_REASONS = ("delivery_unknown", "delivery_failed", "bounced")  # waiting for a person
REASONS = ("unanswered", "followup", *ATTENTION_REASONS)

if TYPE_CHECKING:
    import sqlite_utils


def threshold_for(sla: SLAConfig, tags: Sequence[str], priority: str | None,
                  override: dt.timedelta | None = None) -> dt.timedelta:
    """The SLA threshold of a thread (the rule; :func:`threshold_sql` is its SQL form)."""
    if override is not None:
        return override
    matches = [sla.overrides[k] for k in [*tags, priority or ""] if k in sla.overrides]
    return min(matches) if matches else sla.default


def threshold_sql(sla: SLAConfig, override: dt.timedelta | None = None) -> tuple[str, list[Any]]:
    """:func:`threshold_for` as SQL on ``threads t`` and ``thread_state s``: the threshold in
    microseconds, with its parameters."""
    if override is not None:
        return "?", [micros(override)]
    if not sla.overrides:
        return "?", [micros(sla.default)]
    keys = " UNION ALL ".join(["SELECT ? AS k, ? AS us"] * len(sla.overrides))
    params: list[Any] = [v for k, td in sla.overrides.items() for v in (k, micros(td))]
    return (f"COALESCE((SELECT MIN(ov.us) FROM ({keys}) ov WHERE ov.k = COALESCE(s.priority, '') "
            "OR ov.k IN (SELECT g.tag FROM tags g WHERE g.thread_id = t.id)), ?)",
            [*params, micros(sla.default)])


_SHOWN_STATE = "CASE s.state WHEN 'snoozed' THEN 'open' ELSE s.state END"  # an old snooze too
_UNANSWERED, _FOLLOWUP = 0, 1  # indexes into REASONS
_ORDER = "since_s, tid, arm, sub"  # oldest wait first; ties in the order the arms are listed
# ``since`` in seconds since 1970 (NULL if not a time): unixepoch() wants SQLite 3.38, and
# Python 3.11 meets older ones
_EPOCH_SQL = "CAST(round((julianday(since) - 2440587.5) * 86400) AS INTEGER)"


@dataclass(frozen=True)
class Ask:
    """What is asked: the arguments of :func:`overdue`, as the queries use them."""

    config: Config
    now: dt.datetime
    threshold: dt.timedelta | None = None
    tags: Sequence[str] = ()
    state: str | None = None
    holding_templates: Collection[str] = ()
    include_not_due: bool = False
    assignee: str | None = None
    # reasons the query leaves to the Python rules to say whether they are due: unanswered
    # with business hours (the Clock), every one for the tests that hold the SQL to those
    # rules; with any, Python computes every item's times
    in_python: frozenset[str] = frozenset()


def ask_for(config: Config, now: dt.datetime, *, threshold: dt.timedelta | None = None,
            tags: Sequence[str] = (), state: str | None = None,
            holding_templates: Collection[str] = (), include_not_due: bool = False,
            assignee: str | None = None, in_python: Collection[str] | None = None) -> Ask:
    """The :class:`Ask` of :func:`overdue`'s arguments.  ``in_python``: the reasons whose due
    times the Python rules compute (default: unanswered when business hours are set)."""
    if in_python is None:
        in_python = ("unanswered",) if config.sla.business_hours is not None else ()
    return Ask(config, now, threshold, tuple(tags), state, tuple(holding_templates),
               include_not_due, assignee, frozenset(in_python))


def _candidates(ask: Ask) -> tuple[str, list[Any]]:
    """SQL of every candidate item: (arm, tid, sub, kind, since, thr, detail), where ``thr``
    is what the clock must run from ``since`` before the item is due, in microseconds."""
    threshold, params = threshold_sql(ask.config.sla, ask.threshold)
    holding = sorted(set(ask.holding_templates))
    marks = ",".join("?" * len(holding)) or "NULL"
    unknown, failed, bounced = (REASONS.index(r) for r in ATTENTION_REASONS)
    sql = (
        f"SELECT 0 AS arm, t.id AS tid, 0 AS sub, {_UNANSWERED} AS kind, "
        f"t.waiting_since AS since, {threshold} AS thr, NULL AS detail "
        "FROM threads t JOIN thread_state s ON s.thread_id = t.id "
        f"WHERE t.waiting_since IS NOT NULL AND {open_sql()} "
        "UNION ALL "
        f"SELECT 1, t.id, 0, {_FOLLOWUP}, t.last_team_at, ?, NULL "
        "FROM threads t JOIN thread_state s ON s.thread_id = t.id "
        "WHERE s.state = 'waiting' AND t.last_sender = 'us' AND t.last_team_at <= ? AND ("
        f" t.last_team_template IN ({marks})"
        " OR EXISTS (SELECT 1 FROM outbox r WHERE r.thread_id = t.id AND r.holding = 1"
        "   AND r.kind = 'reply' AND r.state = 'sent' AND r.auto = 0"
        "   AND r.message_id = t.last_team_message_id)"
        " OR EXISTS (SELECT 1 FROM tags g WHERE g.thread_id = t.id AND g.tag = 'acked'"
        "   AND g.added_at >= t.last_team_at)) "
        "UNION ALL "
        f"SELECT 2, t.id, o.id, CASE o.state WHEN 'unknown' THEN {unknown} ELSE {failed} END, "
        "o.created_at, 0, o.error "
        "FROM outbox o JOIN threads t ON t.id = o.thread_id "
        f"JOIN thread_state s ON s.thread_id = t.id WHERE {needs_a_person_sql()} "
        "UNION ALL "
        f"SELECT 3, b.thread_id, 0, {bounced}, MIN(b.at), 0, "
        "group_concat(b.recipient || ': ' || COALESCE(b.status, '') || ' ' "
        "  || COALESCE(b.diagnostic, ''), '; ') "
        "FROM bounces b JOIN threads t ON t.id = b.thread_id "
        f"WHERE {bounces.OPEN_SQL} GROUP BY b.thread_id")
    sla = ask.config.sla
    return sql, [*params, iso(ask.now), micros(sla.followup_after),
                 iso(ask.now - sla.followup_after), *holding]


def _listed(ask: Ask) -> tuple[str, list[Any]]:
    """SQL of the items to list, unordered: the candidates that pass the filters and, but
    for the reasons in ``ask.in_python``, are due (``since + thr``, the wall clock)."""
    candidates, params = _candidates(ask)
    where = ["c.since_s IS NOT NULL"]
    for tag in ask.tags:
        where.append("c.tid IN (SELECT thread_id FROM tags WHERE tag = ?)")
        params.append(tag)
    if ask.state:
        where.append(f"{_SHOWN_STATE} = ?")
        params.append(ask.state)
    if ask.assignee:
        clause, values = assignee_sql(ask.assignee)
        where.append(clause)
        params.extend(values)
    if not ask.include_not_due:
        python = ",".join(str(REASONS.index(r)) for r in sorted(ask.in_python)) or "NULL"
        where.append(f"(c.kind IN ({python}) OR c.since_s * 1000000 + c.thr <= ?)")
        params.append(epoch_micros(ask.now))
    state = (" JOIN thread_state s ON s.thread_id = c.tid"
             if ask.state or ask.assignee else "")  # the other columns come after the sort
    return (f"SELECT c.* FROM (SELECT *, {_EPOCH_SQL} AS since_s FROM ({candidates})) c"
            f"{state} WHERE {' AND '.join(where)}"), params


# An item as SQL on ``o`` (a row of _listed) and its thread ``t``, ``s``: the text of
# json.dumps(item), up to ``waiting_since`` and from ``reason`` on, each made by one printf.
# What lies between is the times: by the wall clock from the SQL but for the hours (SQLite
# rounds them otherwise than Python does), with business hours all of them from Python.
_REASON_SQL = "CASE o.kind " + " ".join(
    f"WHEN {n} THEN '{reason}'" for n, reason in enumerate(REASONS)) + " END"
_HEAD = ('{"thread_id": %d, "subject": %s, "customer": %s, "customer_name": %s, '
         '"waiting_since": %s')
_HEAD_VALUES = ("o.tid, json_quote(COALESCE(t.subject, '')), json_quote(t.customer), "
                "json_quote(t.customer_name), json_quote(o.since)")
_TAIL = (', "reason": "%s", "state": %s, "priority": %s, "assignee": %s, "tags": %s, '
         '"message_ids": %s, "detail": %s, "draft_by": %s}')
_TAIL_VALUES = (f"{_REASON_SQL}, json_quote({_SHOWN_STATE}), json_quote(s.priority), "
                f"json_quote(s.assignee), {tags_json_sql('o.tid')}, "
                f"{message_ids_json_sql('o.tid')}, json_quote(o.detail), "
                f"{draft_by_json_sql('o.tid')}")
# By the wall clock: (JSON up to age_hours, its value in microseconds, reason, JSON from
# "overdue" on).
_WALL_CLOCK_SQL = (
    f"printf('{_HEAD}, \"due_at\": \"%s\", \"age_hours\": ', {_HEAD_VALUES}, "
    "strftime('%Y-%m-%dT%H:%M:%SZ', o.since_s + o.thr / 1000000, 'unixepoch')), "
    "? - o.since_s * 1000000, o.kind, "
    f"printf(', \"overdue\": %s{_TAIL}', CASE WHEN o.since_s * 1000000 + o.thr <= ? "
    f"THEN 'true' ELSE 'false' END, {_TAIL_VALUES})")
# For the Python rules: (head, tail, reason, thread, waiting since, priority).
_BY_THE_RULES_SQL = (f"printf('{_HEAD}', {_HEAD_VALUES}), printf('{_TAIL}', {_TAIL_VALUES}), "
                     "o.kind, o.tid, o.since, s.priority")


def _items_sql(ask: Ask, cap: int | None = None) -> tuple[str, list[Any]]:
    """SQL of the items in order, and with ``cap`` only the first ``cap`` of each reason,
    each with how many there are (a bounded sort per reason of the list made once: a
    window function over 27,000 rows cost twice as much).  The ORDER BY sits in a subquery
    that LIMIT keeps whole and CROSS JOIN keeps outermost, so items are built as they come
    out of the sort: what is sorted stays small, and so does the memory for 27,000 items."""
    listed, params = _listed(ask)
    now_us = epoch_micros(ask.now)
    columns, times = (_BY_THE_RULES_SQL, []) if ask.in_python else (_WALL_CLOCK_SQL,
                                                                    [now_us, now_us])
    if cap is None:
        head, source, extra = "", f"SELECT * FROM ({listed}) ORDER BY {_ORDER} LIMIT -1", "NULL"
        params = [*times, *params]
    else:
        head = f"WITH l AS ({listed}) "
        source = " UNION ALL ".join(
            f"SELECT * FROM (SELECT *, (SELECT COUNT(*) FROM l WHERE kind = {kind}) AS n "
            f"FROM l WHERE kind = {kind} ORDER BY {_ORDER} LIMIT {int(cap)})"
            for kind in range(len(REASONS)))
        source = f"SELECT * FROM ({source}) ORDER BY {_ORDER} LIMIT -1"
        extra = "o.n"
        params = [*params, *times]
    return (f"{head}SELECT {columns}, {extra} FROM ({source}) o CROSS JOIN threads t "
            "CROSS JOIN thread_state s WHERE t.id = o.tid AND s.thread_id = o.tid", params)


def _hours(us: int) -> str:
    """Hours to two places as JSON, as ``round(timedelta.total_seconds() / 3600, 2)``."""
    return repr(round(us / 1_000_000 / 3600, 2))


Built = tuple[str, str, Any]  # (reason, JSON, how many of that reason with a cap, else None)


def _by_the_wall_clock(rows: Sequence[tuple[Any, ...]]) -> list[Built]:
    """Each row built, by the SQL's due times (the wall clock)."""
    out = []
    for head, age_us, kind, tail, n in rows:
        age = _hours(age_us)
        # the clock runs from waiting_since on, never backwards
        sla = "null" if kind != _UNANSWERED else age if age_us > 0 else "0.0"
        out.append((REASONS[kind], f'{head}{age}, "sla_age_hours": {sla}{tail}', n))
    return out


def _by_the_rules(ask: Ask, db: sqlite_utils.Database,
                  rows: Sequence[tuple[Any, ...]]) -> list[Built]:
    """Each row that is due by the Python rules, built: the Clock's due time for
    unanswered, the wall clock's for the rest."""
    clock = Clock(ask.config.sla.business_hours)
    now, sla = ask.now, ask.config.sla
    tag_map = thread_tags(db, [r[3] for r in rows if r[2] == _UNANSWERED])
    out: list[Built] = []
    for head, tail, kind, tid, since_text, priority, _ in rows:
        since = parse_iso(since_text)
        assert since is not None  # the query leaves out items without one
        if kind == _UNANSWERED:
            due = clock.add(since, threshold_for(sla, tag_map.get(tid, []), priority,
                                                 ask.threshold))
        elif kind == _FOLLOWUP:
            due = since + sla.followup_after
        else:
            due = since
        if due > now and not ask.include_not_due:
            continue
        elapsed = _hours(micros(clock.elapsed(since, now))) if kind == _UNANSWERED else "null"
        out.append((REASONS[kind], f'{head}, "due_at": "{iso(due)}", '
                    f'"age_hours": {_hours(micros(now - since))}, "sla_age_hours": {elapsed}, '
                    f'"overdue": {"true" if due <= now else "false"}{tail}', None))
    return out


def _batches(db: sqlite_utils.Database, ask: Ask, cap: int | None = None) -> Iterator[list[Built]]:
    """The items in order, built a batch at a time (memory stays flat); ``cap`` (the first of
    each reason, with their count) only by the wall clock: the Python rules decide after
    the query what is due."""
    assert cap is None or not ask.in_python
    sql, params = _items_sql(ask, cap)
    cursor = db.execute(sql, params)
    while rows := cursor.fetchmany(CHUNK):
        yield _by_the_rules(ask, db, rows) if ask.in_python else _by_the_wall_clock(rows)


def overdue_json(db: sqlite_utils.Database, config: Config, now: dt.datetime,
                 **options: Any) -> Iterator[list[str]]:
    """:func:`overdue`'s items as JSON text (``json.dumps`` of each, byte for byte), a batch
    at a time (``overdue --json``)."""
    for batch in _batches(db, ask_for(config, now, **options)):
        yield [line for _, line, _ in batch]


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
    return [json.loads(line) for batch in overdue_json(
        db, config, now, threshold=threshold, tags=tags, state=state,
        holding_templates=holding_templates, include_not_due=include_not_due,
        assignee=assignee) for line in batch]


def counted(db: sqlite_utils.Database, config: Config, now: dt.datetime, cap: int, *,
            holding_templates: Collection[str] = ()) -> tuple[dict[str, int],
                                                              list[dict[str, Any]]]:
    """How many items of each reason :func:`overdue` lists, and the first ``cap`` of each in
    its order: what the report shows of 27,000 overdue threads, without building them all."""
    ask = ask_for(config, now, holding_templates=holding_templates)
    counts = dict.fromkeys(REASONS, 0)
    shown = []
    if ask.in_python:  # the Clock decides what is due: every item is built to be counted
        for batch in _batches(db, ask):
            for reason, line, _ in batch:
                counts[reason] += 1
                if counts[reason] <= cap:
                    shown.append(line)
    else:
        for batch in _batches(db, ask, cap):
            for reason, line, n in batch:
                counts[reason] = n
                shown.append(line)
    return counts, [json.loads(line) for line in shown]
