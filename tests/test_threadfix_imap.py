"""Merge and split by hand against the real Dovecot: the decisions outlive `sync --full`
and a UIDVALIDITY change, a new reply to a split-off message stays with it, and `show`,
`explain` and the history say what was done by hand."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mailtriage.config import load_config
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import ok
from support.mailfactory import NOW, put, write_config

US = "Support <support@example.com>"


@pytest.fixture
def env(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    return mailbox, write_config(tmp_path, mailbox)


def hours(n: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=n)


def run_sync(cfg, **kw):
    config = load_config(cfg)
    db = open_db(config.db_path)
    return db, sync(db, config, NOW, **kw)


def partition(db) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for mid, tid in db.execute("SELECT message_id, thread_id FROM messages"):
        groups.setdefault(tid, set()).add(mid)
    return {frozenset(g) for g in groups.values()}


def thread_of(db, msgid: str) -> int:
    return db.execute("SELECT thread_id FROM messages WHERE message_id = ?",
                      [msgid]).fetchone()[0]


def login_thread(mb) -> None:
    put(mb, "INBOX", msgid="q1@c.test", subject="Login broken", date=hours(30))
    put(mb, "Sent", msgid="a1@example.com", subject="Re: Login broken", frm=US,
        to="carol@customer.test", in_reply_to="q1@c.test", references=["q1@c.test"],
        date=hours(20), flags=["\\Seen"])
    put(mb, "INBOX", msgid="q2@c.test", subject="Re: Login broken", body="Also: my invoice?",
        in_reply_to="a1@example.com", references=["q1@c.test", "a1@example.com"],
        date=hours(2))


def test_a_split_survives_full_sync_uidvalidity_change_and_a_reply_to_either_side(env):
    mb, cfg = env
    login_thread(mb)
    db, _ = run_sync(cfg)
    tid = thread_of(db, "q1@c.test")
    new = int(ok(cfg, "split", str(tid), "<q2@c.test>").stdout.split()[-1])
    after_split = {frozenset({"q1@c.test", "a1@example.com"}), frozenset({"q2@c.test"})}
    assert partition(db) == after_split

    db, _ = run_sync(cfg, full=True)
    assert partition(db) == after_split
    mb.change_uidvalidity("INBOX")
    mb.change_uidvalidity("Sent")
    db, result = run_sync(cfg)
    assert any(f.uidvalidity_changed for f in result.folders) and result.new == 0
    assert partition(db) == after_split and thread_of(db, "q2@c.test") == new

    # new mail after the re-map: our answer to the split-off question (its References name
    # the whole old thread) and Carol writing again in the old one
    put(mb, "Sent", msgid="a2@example.com", subject="Re: Login broken", frm=US,
        to="carol@customer.test", in_reply_to="q2@c.test",
        references=["q1@c.test", "a1@example.com", "q2@c.test"], date=hours(1),
        flags=["\\Seen"])
    put(mb, "INBOX", msgid="q3@c.test", subject="Re: Login broken", body="Still broken",
        in_reply_to="a1@example.com", references=["q1@c.test", "a1@example.com"],
        date=hours(0.5))
    db, result = run_sync(cfg)
    assert result.new == 2
    assert thread_of(db, "a2@example.com") == new and thread_of(db, "q3@c.test") == tid
    states = dict(db.execute("SELECT thread_id, state FROM thread_state").fetchall())
    assert states == {tid: "open", new: "waiting"}

    explained = ok(cfg, "explain", str(new)).stdout
    assert "split by hand on 2026-11-23 12:00: messages of thread " \
           f"{tid} moved to thread {new}" in explained
    assert f"split: {tid} -> {new} (cli)" in explained
    shown = json.loads(ok(cfg, "show", str(tid), "--json").stdout)
    assert {"field": "split", "old": str(tid), "new": str(new), "cause": "cli",
            "at": "2026-11-23T12:00:00Z"} in shown["history"]
    assert "id: <q1@c.test>" in ok(cfg, "show", str(tid)).stdout


def test_a_merge_survives_full_sync_and_uidvalidity_change_keeping_tags_and_state(env):
    mb, cfg = env
    put(mb, "INBOX", msgid="x1@c.test", subject="Printer on fire", date=hours(5))
    put(mb, "INBOX", msgid="y1@c.test", subject="The fire from before", frm="dan@c.test",
        date=hours(3))
    db, _ = run_sync(cfg)
    tx, ty = thread_of(db, "x1@c.test"), thread_of(db, "y1@c.test")
    ok(cfg, "tag", str(ty), "+fire")
    ok(cfg, "snooze", str(tx), "--until", "2d")
    assert ok(cfg, "merge", str(ty), str(tx)).stdout.strip() == f"thread {tx}"
    merged = {frozenset({"x1@c.test", "y1@c.test"})}
    db, _ = run_sync(cfg, full=True)
    assert partition(db) == merged
    mb.change_uidvalidity("INBOX")
    db, result = run_sync(cfg)
    assert any(f.uidvalidity_changed for f in result.folders)
    assert partition(db) == merged
    shown = json.loads(ok(cfg, "show", str(ty), "--json").stdout)  # the old id resolves
    assert shown["id"] == tx and shown["tags"] == ["fire"] and shown["state"] == "snoozed"
    put(mb, "INBOX", msgid="y2@c.test", subject="Re: The fire from before", frm="dan@c.test",
        in_reply_to="y1@c.test", references=["y1@c.test"], date=hours(1))
    db, _ = run_sync(cfg)
    assert thread_of(db, "y2@c.test") == tx
    explained = ok(cfg, "explain", str(tx)).stdout
    assert f"merged by hand on 2026-11-23 12:00: thread {ty} into {tx}" in explained
    causes = [r[0] for r in db.execute("SELECT cause FROM history WHERE field = 'merge'")]
    assert causes == ["cli"]
