"""Merging and splitting threads by hand: the pure rules, threading that respects a split,
what a merge keeps, and the commands' one-line errors (no server)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mailtriage import threadfix, triage
from mailtriage.config import load_config
from mailtriage.decisions import by_hand, conflicts, partition
from mailtriage.errors import UsageError
from mailtriage.mailstore import store_batch
from mailtriage.pipeline import parse_batch
from mailtriage.source import SENT
from mailtriage.store import open_db, resolve_thread_id

from support.cli import triage as run_cli
from support.mailfactory import NOW, fetched, mail

US = "Support <support@example.com>"


def test_partition_keeps_split_sides_apart_and_the_rest_together():
    assert partition([3, 1, 2], set()) == [[1, 2, 3]]
    assert partition([1, 2, 3], {(2, 1)}) == [[1, 3], [2]]  # 3 joins the oldest it may
    assert partition([1, 2, 3], {(1, 2), (1, 3), (2, 3)}) == [[1], [2], [3]]


def test_conflicts_pair_a_thread_holding_a_split_off_message_with_one_that_kept_mail():
    thread_of = {"s": 9, "k1": 5, "k2": 5, "x": 7}
    assert conflicts([(["s"], ["k1", "k2"])], thread_of) == {(9, 5)}
    assert conflicts([(["s"], ["k1"])], {"s": 5, "k1": 5}) == set()  # merged back by hand
    assert conflicts([(["gone"], ["k1"])], thread_of) == set()


def test_by_hand_lines_come_from_cli_history_only():
    history = [{"at": "2026-11-23T12:00:00Z", "field": "merge", "old": "7", "new": "5",
                "cause": "cli"},
               {"at": "2026-11-23T12:05:00Z", "field": "merge", "old": "8", "new": "5",
                "cause": "sync"},
               {"at": "2026-11-23T13:00:00Z", "field": "split", "old": "5", "new": "9",
                "cause": "cli"}]
    assert by_hand(history) == [
        "merged by hand on 2026-11-23 12:00: thread 7 into 5",
        "split by hand on 2026-11-23 13:00: messages of thread 5 moved to thread 9"]


def test_the_decisions_table_comes_from_migration_m008(tmp_path):
    db = open_db(tmp_path / "state.db")
    names = [r[0] for r in db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert "m008_thread_decisions" in names
    table = db["thread_decisions"]
    assert table.pks == ["id"] and table.foreign_keys == []  # merges delete threads
    assert set(table.columns_dict) == {"id", "kind", "at", "cause", "thread_id",
                                       "new_thread_id", "moved", "stayed", "message_key"}


class Local:
    """A store fed batch by batch as sync would (store_batch, then the refresh)."""

    def __init__(self, tmp_path: Path):
        self.cfg = tmp_path / "config.yaml"
        self.cfg.write_text("imap: {host: 127.0.0.1, username: u, password_env: X}\n"
                            "team: {addresses: [support@example.com]}\ndb: state.db\n")
        self.config = load_config(self.cfg)
        self.db = open_db(self.config.db_path)
        self.uid = 0

    def add(self, *raws: tuple[bytes, dt.datetime], role: str | None = None) -> None:
        batch = []
        for raw, at in raws:
            self.uid += 1
            batch.append(fetched(raw, self.uid, at))
        with self.db.atomic():
            store_batch(self.db, self.config, "a", "Sent" if role else "INBOX", 1,
                        parse_batch(batch), NOW, role=role)
        triage.refresh(self.db, self.config, NOW)

    def thread_of(self, msgid: str) -> int:
        return self.db.execute("SELECT thread_id FROM messages WHERE message_id = ?",
                               [msgid]).fetchone()[0]

    def state(self, tid: int) -> str:
        return self.db.execute("SELECT state FROM thread_state WHERE thread_id = ?",
                               [tid]).fetchone()[0]


def hours(n: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=n)


def login_thread(s: Local) -> int:
    """Carol asks, we answer, Carol asks a second, unrelated question in the same thread."""
    s.add((mail(msgid="q1@c.test", subject="Login broken"), hours(30)))
    s.add((mail(msgid="a1@example.com", subject="Re: Login broken", frm=US,
                to="carol@customer.test", in_reply_to="q1@c.test",
                references=["q1@c.test"]), hours(20)), role=SENT)
    s.add((mail(msgid="q2@c.test", subject="Re: Login broken", body="Also: my invoice?",
                in_reply_to="a1@example.com", references=["q1@c.test", "a1@example.com"]),
           hours(2)))
    return s.thread_of("q1@c.test")


def test_a_split_survives_new_replies_to_either_side(tmp_path):
    s = Local(tmp_path)
    tid = login_thread(s)
    assert s.state(tid) == "open"
    with s.db.atomic():
        new = threadfix.split(s.db, str(tid), ["<q2@c.test>"], NOW)
    triage.refresh(s.db, s.config, NOW)
    assert new > tid and s.thread_of("q2@c.test") == new
    # the split-off question waits like a new thread; what stayed was answered
    assert (s.state(new), s.state(tid)) == ("open", "waiting")
    # our answer to the invoice question references the whole old thread: it still joins q2
    s.add((mail(msgid="a2@example.com", subject="Re: Login broken", frm=US,
                to="carol@customer.test", in_reply_to="q2@c.test",
                references=["q1@c.test", "a1@example.com", "q2@c.test"]), hours(1)),
          role=SENT)
    # Carol's reply to our first answer links q1 and a1, which q2 references too
    s.add((mail(msgid="q3@c.test", subject="Re: Login broken", body="Still broken",
                in_reply_to="a1@example.com", references=["q1@c.test", "a1@example.com"]),
           hours(0.5)))
    assert s.thread_of("a2@example.com") == new
    assert s.thread_of("q3@c.test") == tid
    assert (s.state(new), s.state(tid)) == ("waiting", "open")
    assert s.db.execute("SELECT COUNT(*) FROM threads").fetchone()[0] == 2


def test_new_messages_in_one_batch_follow_the_one_they_answer(tmp_path):
    s = Local(tmp_path)
    tid = login_thread(s)
    with s.db.atomic():
        new = threadfix.split(s.db, str(tid), ["q2@c.test"], NOW)
    s.add((mail(msgid="q4@c.test", subject="Re: Login broken", in_reply_to="q2@c.test",
                references=["q1@c.test", "q2@c.test"]), hours(1)),
          (mail(msgid="q5@c.test", subject="Re: Login broken", in_reply_to="q4@c.test",
                references=["q1@c.test", "q4@c.test"]), hours(0.5)))
    assert s.thread_of("q4@c.test") == s.thread_of("q5@c.test") == new


def test_merge_by_hand_keeps_tags_state_assignee_and_notes_and_old_ids_resolve(tmp_path):
    s = Local(tmp_path)
    s.add((mail(msgid="x1@c.test", subject="Printer on fire"), hours(5)))
    s.add((mail(msgid="y1@c.test", subject="Fire, again"), hours(3)))
    tx, ty = s.thread_of("x1@c.test"), s.thread_of("y1@c.test")
    s.db.execute("UPDATE thread_state SET assignee = 'ana' WHERE thread_id = ?", [ty])
    s.db.execute("INSERT INTO notes (thread_id, author, at, text) VALUES (?, 'ana', ?, 'hot')",
                 [ty, "2026-11-23T09:00:00Z"])
    s.db.execute("INSERT INTO tags (thread_id, tag, added_at, cause) VALUES (?, 'vip', '', 'cli')",
                 [ty])
    with s.db.atomic():
        survivor = threadfix.merge(s.db, [str(ty), f"thread:{tx}"], NOW)
    triage.refresh(s.db, s.config, NOW)
    assert survivor == tx == s.thread_of("y1@c.test")
    assert resolve_thread_id(s.db, ty) == tx
    row = s.db.execute("SELECT state, assignee FROM thread_state WHERE thread_id = ?",
                       [tx]).fetchone()
    assert row == ("open", "ana")
    assert [r[0] for r in s.db.execute("SELECT tag FROM tags WHERE thread_id = ?", [tx])] == \
        ["vip"]
    assert s.db.execute("SELECT thread_id FROM notes").fetchone()[0] == tx
    merge = s.db.execute("SELECT old, new, cause FROM history WHERE field = 'merge'").fetchall()
    assert merge == [(str(ty), str(tx), "cli")]
    assert s.db.execute("SELECT message_count FROM threads WHERE id = ?", [tx]).fetchone()[0] == 2


def test_merging_split_sides_back_undoes_the_split_for_later_mail(tmp_path):
    s = Local(tmp_path)
    tid = login_thread(s)
    with s.db.atomic():
        new = threadfix.split(s.db, str(tid), ["q2@c.test"], NOW)
    with s.db.atomic():
        assert threadfix.merge(s.db, [str(new), str(tid)], NOW) == tid
    s.add((mail(msgid="q6@c.test", subject="Re: Login broken", in_reply_to="q2@c.test",
                references=["q1@c.test", "q2@c.test"]), hours(0.5)))
    assert s.thread_of("q6@c.test") == s.thread_of("q2@c.test") == tid


def test_split_and_merge_refuse_bad_input_in_the_library(tmp_path):
    s = Local(tmp_path)
    tid = login_thread(s)
    s.add((mail(msgid="z1@c.test", subject="Unrelated"), hours(1)))
    other = s.thread_of("z1@c.test")
    cases = [
        (lambda: threadfix.split(s.db, "999", ["q2@c.test"], NOW), "no thread '999'"),
        (lambda: threadfix.split(s.db, str(tid), ["z1@c.test"], NOW),
         f"message <z1@c.test> is not in thread {tid} (it is in thread {other})"),
        (lambda: threadfix.split(s.db, str(tid), ["nope@c.test"], NOW),
         f"no message <nope@c.test> in thread {tid}"),
        (lambda: threadfix.split(s.db, str(tid), ["q1@c.test", "a1@example.com", "q2@c.test"],
                                 NOW), f"that is every message of thread {tid}"),
        (lambda: threadfix.merge(s.db, [str(tid), f"#{tid}"], NOW), "that is one thread"),
        (lambda: threadfix.merge(s.db, [str(tid), "x"], NOW), "no thread 'x'"),
    ]
    for call, message in cases:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_the_commands_say_bad_input_in_one_line_with_exit_2(tmp_path):
    s = Local(tmp_path)
    tid = login_thread(s)
    for args, words in ((["split", "42", "q2@c.test"], "no thread '42'"),
                        (["split", str(tid), "q9@c.test"], "no message <q9@c.test>"),
                        (["split", str(tid), "q1@c.test", "a1@example.com", "q2@c.test"],
                         "every message"),
                        (["merge", str(tid)], "at least two threads"),
                        (["merge", str(tid), "42"], "no thread '42'")):
        res = run_cli(s.cfg, *args)
        assert res.exit_code == 2, (args, res.output)
        assert words in res.output and len(res.output.strip().splitlines()) == 1, res.output
    res = run_cli(s.cfg, "split", str(tid), "q2@c.test")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"thread {s.thread_of('q2@c.test')}"
