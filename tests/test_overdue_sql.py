"""The SQL that lists overdue threads against the Python rules it stands in for.

``overdue`` computes due times in SQL by the wall clock, and builds each item's JSON in
SQLite; with business hours the unanswered due times are the Clock's.  Here a few hundred
varied threads (thresholds from tag and priority overrides, snoozes, follow-ups, replies of
unknown fate, bounces, drafts, awkward text) are listed both ways, at several moments and
with every filter, and must come out the same, byte for byte.  The report's backlog,
counted by SQLite, is held to the waits as Python measures them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from mailtriage.config import AccountConfig, Config, SLAConfig, TeamConfig
from mailtriage.listing import (
    draft_authors,
    draft_by_json_sql,
    message_ids_json_sql,
    tags_json_sql,
    thread_message_ids,
    thread_tags,
)
from mailtriage.overdue import REASONS, counted, overdue, overdue_json, threshold_for, threshold_sql
from mailtriage.report import BUCKETS, build_report
from mailtriage.sla import BusinessHours
from mailtriage.store import iso, open_db
from mailtriage.times import micros

NOW = dt.datetime(2026, 3, 16, 12, 0, tzinfo=dt.UTC)  # a Monday
TAGS = ("vip", "billing", "acked", "bug", "a\"quote")
PRIORITIES = (None, None, "urgent", "low", "")
OVERRIDES = {"vip": dt.timedelta(hours=4), "billing": dt.timedelta(days=2),
             "urgent": dt.timedelta(hours=1), "low": dt.timedelta(days=3),
             "bug": dt.timedelta(hours=30, minutes=30, seconds=7)}
SUBJECTS = ("Login broken", "Ünïcode ✓ 請求書", 'He said "hi" \\ back', "tab\there\nnewline",
            "ctrl \x01\x1f", "", None)


def _at(rng: random.Random, days: float = 12) -> str:
    """A time around NOW, to the second (as the store keeps them), often on an hour."""
    seconds = rng.randrange(int(-days * 86400), int(2 * 86400))
    if rng.random() < 0.3:
        seconds -= seconds % 3600
    return iso(NOW + dt.timedelta(seconds=seconds))


def _mailbox(db: sqlite_utils.Database, seed: int, threads: int = 250) -> None:
    """Threads of every kind the rules tell apart, written as the store keeps them."""
    rng = random.Random(seed)
    for tid in range(1, threads + 1):
        state = rng.choice(("open", "open", "open", "waiting", "snoozed", "closed"))
        waiting_since, last_team_at = _thread(db, rng, tid, state)
        _messages(db, rng, tid)
        _replies(db, rng, tid, waiting_since, last_team_at)
        if rng.random() < 0.1:  # a delivery report on our mail to the thread
            db.execute("INSERT INTO messages (id, key, thread_id, arrived_at) "
                       "VALUES (?, ?, NULL, ?)", [100000 + tid, f"dsn{tid}", iso(NOW)])
            for n in range(rng.randrange(1, 3)):
                db.execute("INSERT INTO bounces (message, recipient, thread_id, status, "
                           "diagnostic, at) VALUES (?, ?, ?, ?, ?, ?)",
                           [100000 + tid, f"r{n}@customer.test", tid,
                            rng.choice((None, "5.1.1")), rng.choice((None, "user unknown")),
                            _at(rng)])
        if rng.random() < 0.05:  # a person set the state by hand
            db.execute("INSERT INTO history (thread_id, at, field, old, new, cause) "
                       "VALUES (?, ?, 'state', 'open', ?, 'cli')", [tid, _at(rng), state])


def _thread(db: sqlite_utils.Database, rng: random.Random, tid: int,
            state: str) -> tuple[str | None, str | None]:
    """The thread, its state and tags; its waiting_since and last_team_at."""
    us_last = state == "waiting" or rng.random() < 0.2
    last_team_at = _at(rng) if us_last or rng.random() < 0.5 else None
    waiting_since = None
    if rng.random() < 0.8 and state != "waiting":
        waiting_since = _at(rng) if rng.random() < 0.97 else ""
    db.execute(
        "INSERT INTO threads (id, subject, customer, customer_name, waiting_since, "
        "last_team_at, last_sender, last_team_template, last_team_message_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [tid, rng.choice(SUBJECTS), f"c{tid}@customer.test",
         rng.choice((None, "Zoë O'Brien", 'Bob "the" Builder')), waiting_since, last_team_at,
         "us" if us_last else "customer", rng.choice((None, "sorry", "thanks")),
         f"ours{tid}@example.com"])
    db.execute(
        "INSERT INTO thread_state (thread_id, state, snoozed_until, priority, assignee) "
        "VALUES (?, ?, ?, ?, ?)",
        [tid, state, _at(rng, 3) if state == "snoozed" else None, rng.choice(PRIORITIES),
         rng.choice((None, None, "alice", "bob"))])
    for tag in rng.sample(TAGS, rng.choice((0, 0, 0, 1, 2))):
        db.execute("INSERT INTO tags (thread_id, tag, added_at) VALUES (?, ?, ?)",
                   [tid, tag, _at(rng)])
    if us_last and rng.random() < 0.3:  # our last reply, sent from a holding template
        db.execute("INSERT INTO outbox (thread_id, kind, message_id, state, holding, auto, "
                   "created_at) VALUES (?, 'reply', ?, 'sent', 1, 0, ?)",
                   [tid, f"ours{tid}@example.com", last_team_at])
    return waiting_since, last_team_at


def _messages(db: sqlite_utils.Database, rng: random.Random, tid: int) -> None:
    """Messages, some arriving at the same moment, and drafts: a teammate's, or ours."""
    for n in range(rng.randrange(4)):
        message = tid * 10 + n
        draft = int(rng.random() < 0.2)
        arrived = _at(rng) if rng.random() < 0.7 else "2026-03-10T09:00:00Z"  # ties
        db.execute(
            "INSERT INTO messages (id, key, message_id, thread_id, arrived_at, draft, "
            "from_addr) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [message, f"k{message}", f"m{message}.{tid}@mail.test", tid, arrived, draft,
             rng.choice((None, "", "alice@example.com", "bob@example.com"))])
        if draft and rng.random() < 0.8:  # in a Drafts folder now
            db.execute("INSERT INTO locations (account, folder, uidvalidity, uid, message) "
                       "VALUES ('a', 'Drafts', 1, ?, ?)", [message, message])
        if draft and rng.random() < 0.3:  # one `reply --draft` saved: ours
            db.execute("INSERT INTO outbox (thread_id, kind, message_id, state, holding, "
                       "auto, created_at) VALUES (?, 'draft', ?, 'sent', 0, 0, ?)",
                       [tid, f"m{message}.{tid}@mail.test", _at(rng)])


def _replies(db: sqlite_utils.Database, rng: random.Random, tid: int,
             waiting_since: str | None, last_team_at: str | None) -> None:
    """Replies of unknown or failed fate, some sent the moment the customer wrote."""
    for _ in range(rng.choice((0, 0, 0, 0, 1, 2))):
        db.execute(
            "INSERT INTO outbox (thread_id, kind, message_id, state, permanent, holding, "
            "auto, created_at, error, resolved_at) VALUES (?, 'reply', ?, ?, ?, 0, 0, ?, ?, ?)",
            [tid, f"r{tid}.{rng.random()}@example.com", rng.choice(("failed", "unknown")),
             int(rng.random() < 0.8),
             rng.choice((_at(rng), "2026-03-10T09:00:00Z", waiting_since or last_team_at)),
             rng.choice((None, "550 no such user", 'said "no"')),
             _at(rng) if rng.random() < 0.1 else None])


def _config(business_hours: BusinessHours | None) -> Config:
    return Config(path=Path("config.yaml"), accounts=[AccountConfig()], team=TeamConfig(),
                  db_path=Path(),
                  sla=SLAConfig(overrides=dict(OVERRIDES), business_hours=business_hours))


BERLIN = BusinessHours.from_config({"timezone": "Europe/Berlin", "days": "mon-fri",
                                    "start": "09:00", "end": "17:30",
                                    "holidays": ["2026-03-13"]})
MOMENTS = (NOW, NOW + dt.timedelta(hours=7, minutes=3, seconds=1, microseconds=250),
           NOW - dt.timedelta(days=4, seconds=18))
ASKS: tuple[dict[str, Any], ...] = (
    {}, {"include_not_due": True}, {"threshold": dt.timedelta(hours=6)},
    {"tags": ("vip",)}, {"tags": ("billing", "acked")}, {"state": "open"},
    {"state": "waiting"}, {"state": "closed"}, {"assignee": "alice"}, {"assignee": "none"},
    {"holding_templates": ("sorry",), "include_not_due": True},
)


@pytest.fixture(scope="module")
def db() -> sqlite_utils.Database:
    database = open_db(":memory:")
    with database.atomic():
        _mailbox(database, seed=15)
    return database


def _lines(db: sqlite_utils.Database, config: Config, now: dt.datetime,
           **options: Any) -> list[str]:
    return [line for batch in overdue_json(db, config, now, **options) for line in batch]


@pytest.mark.parametrize("hours", [None, BERLIN], ids=["wall-clock", "business-hours"])
def test_sql_and_python_rules_list_the_same_items(db, hours) -> None:
    config = _config(hours)
    reasons: set[str] = set()
    for now in MOMENTS:
        for options in ASKS:
            options = {"holding_templates": ("sorry",), **options}
            by_sql = _lines(db, config, now, **options)
            by_python = _lines(db, config, now, in_python=REASONS, **options)
            assert by_sql == by_python, (now, options)
            reasons |= {json.loads(line)["reason"] for line in by_sql}
    assert reasons == set(REASONS)  # the data has every kind


def test_items_are_json_dumps_of_what_the_python_lists_say(db) -> None:
    config = _config(None)
    lines = _lines(db, config, NOW, holding_templates=("sorry",), include_not_due=True)
    items = [json.loads(line) for line in lines]
    assert lines == [json.dumps(i, ensure_ascii=False) for i in items]
    assert items == overdue(db, config, NOW, holding_templates=("sorry",), include_not_due=True)
    ids = [i["thread_id"] for i in items]
    tags, mids, drafts = thread_tags(db, ids), thread_message_ids(db, ids), draft_authors(db, ids)
    rows = {r["id"]: r for r in db.query("SELECT * FROM threads t JOIN thread_state s "
                                         "ON s.thread_id = t.id")}
    for i in items:
        r = rows[i["thread_id"]]
        assert (i["subject"], i["customer"], i["customer_name"], i["priority"],
                i["assignee"]) == (r["subject"] or "", r["customer"], r["customer_name"],
                                   r["priority"], r["assignee"])
        assert i["state"] == ("open" if r["state"] == "snoozed" else r["state"])
        assert i["tags"] == tags.get(i["thread_id"], [])
        assert i["message_ids"] == mids.get(i["thread_id"], [])
        assert i["draft_by"] == drafts.get(i["thread_id"], [])
    assert any(i["draft_by"] for i in items) and any(len(i["tags"]) > 1 for i in items)
    # oldest wait first; a thread listed twice at the same moment: in the order of REASONS
    # (replies of unknown and failed fate together, in the order they were sent)
    arm = {r: min(n, 2) + (r == "bounced") for n, r in enumerate(REASONS)}
    keys = [(i["waiting_since"], i["thread_id"], arm[i["reason"]]) for i in items]
    assert keys == sorted(keys)
    assert any(a[:2] == b[:2] and a[2] < b[2] for a, b in zip(keys, keys[1:], strict=False))


def test_json_lists_in_sql_match_their_python_twins(db) -> None:
    ids = [r[0] for r in db.execute("SELECT id FROM threads")]
    tags, mids, drafts = thread_tags(db, ids), thread_message_ids(db, ids), draft_authors(db, ids)
    for tid, t, m, d in db.execute(
            f"SELECT t.id, {tags_json_sql('t.id')}, {message_ids_json_sql('t.id')}, "
            f"{draft_by_json_sql('t.id')} FROM threads t"):
        assert (json.loads(t), json.loads(m), json.loads(d)) == (
            tags.get(tid, []), mids.get(tid, []), drafts.get(tid, []))


@pytest.mark.parametrize("override", [None, dt.timedelta(minutes=90)])
def test_threshold_sql_is_threshold_for(db, override) -> None:
    sla = _config(None).sla
    sql, params = threshold_sql(sla, override)
    tags = thread_tags(db, [r[0] for r in db.execute("SELECT id FROM threads")])
    for tid, priority, us in db.execute(
            f"SELECT t.id, s.priority, {sql} FROM threads t JOIN thread_state s "
            "ON s.thread_id = t.id", params):
        assert us == micros(threshold_for(sla, tags.get(tid, []), priority, override))
    assert threshold_sql(SLAConfig(), None) == ("?", [micros(SLAConfig().default)])


@pytest.mark.parametrize("hours", [None, BERLIN], ids=["wall-clock", "business-hours"])
def test_counted_is_the_head_of_each_list(db, hours) -> None:
    config = _config(hours)
    for now in MOMENTS:
        items = overdue(db, config, now, holding_templates=("sorry",))
        counts, shown = counted(db, config, now, 3, holding_templates=("sorry",))
        assert counts == {r: sum(i["reason"] == r for i in items) for r in REASONS}
        seen = dict.fromkeys(REASONS, 0)
        head = []
        for i in items:
            seen[i["reason"]] += 1
            if seen[i["reason"]] <= 3:
                head.append(i)
        assert shown == head


def test_backlog_counts_each_wait_in_its_bucket(db) -> None:
    config = _config(None)
    rows = list(db.query("SELECT t.waiting_since, s.state, s.snoozed_until FROM threads t "
                         "JOIN thread_state s ON s.thread_id = t.id"))
    for now in (*MOMENTS, NOW - dt.timedelta(hours=4), NOW + dt.timedelta(days=1)):
        at = iso(now)
        open_rows = [r for r in rows if r["state"] == "open" or (
            r["state"] == "snoozed" and r["snoozed_until"] <= at)]
        expected = [0] * len(BUCKETS)
        for r in open_rows:
            if not r["waiting_since"]:
                continue
            wait = now - dt.datetime.fromisoformat(r["waiting_since"])
            n = next((n for n, (_, low, high) in enumerate(BUCKETS)
                      if wait >= low and (high is None or wait < high)), 0)
            expected[n] += 1
        data = build_report(db, config, now, items=[])
        assert data["headline"]["open"] == len(open_rows)
        assert [b["count"] for b in data["backlog"]["buckets"]] == expected
        assert data["backlog"]["waiting"] == sum(expected)
