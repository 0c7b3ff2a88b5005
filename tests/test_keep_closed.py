"""The keep_closed rule action: a "Thanks!" after we closed a thread leaves it closed and
starts no wait, through a real sync against Dovecot; a real question still reopens it."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mailtriage.config import TeamConfig, config_from_dict, load_config
from mailtriage.errors import ConfigError
from mailtriage.store import open_db
from mailtriage.summary import Event, summarize
from mailtriage.sync import sync

from support.cli import ok
from support.mailfactory import NOW, put, write_config

US = "Support <support@example.com>"
THANKS = {"name": "thanks", "match": {"body": r"/^\s*(thanks|thank you|danke|merci)[\s!.]*$/"},
          "keep_closed": True}


def hours(n: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=n)


def test_a_quiet_customer_message_starts_no_wait_and_a_later_one_does():
    team = TeamConfig(addresses=["support@example.com"])
    question = Event(hours(5), "customer", from_addr="carol@c.test")
    answer = Event(hours(4), "us")
    thanks = Event(hours(3), "customer", from_addr="carol@c.test", quiet=True)
    s = summarize([question, answer, thanks], team)
    assert s.waiting_since is None and s.last_customer_at == hours(5)
    assert s.last_at == hours(3)  # still the latest activity
    again = Event(hours(1), "customer", from_addr="carol@c.test")
    assert summarize([question, answer, thanks, again], team).waiting_since == hours(1)


def rules_config(tmp_path, rules):
    return config_from_dict(
        {"imap": {"host": "127.0.0.1", "username": "u", "password_env": "X"},
         "team": {"addresses": ["support@example.com"]}, "rules": rules},
        tmp_path / "config.yaml")


def test_keep_closed_is_an_action_of_its_own_and_must_be_a_boolean(tmp_path):
    [rule] = rules_config(tmp_path, [THANKS]).rules
    assert rule.keep_closed and not rule.close
    with pytest.raises(ConfigError, match=r"rules\[0\] \(thanks\).*keep_closed"):
        rules_config(tmp_path, [{**THANKS, "keep_closed": "yes"}])
    with pytest.raises(ConfigError, match="keep_closed"):  # the error names every action
        rules_config(tmp_path, [{"name": "x", "match": {"subject": "*"}}])


@pytest.fixture
def closed_thread(tmp_path, mailbox, monkeypatch):
    """A question, our answer, and the thread closed by hand an hour ago."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)

    def make(rules):
        cfg = write_config(tmp_path, mailbox, rules=rules)
        put(mailbox, "INBOX", msgid="q1@c.test", subject="Login broken", date=hours(30))
        put(mailbox, "Sent", msgid="a1@example.com", subject="Re: Login broken", frm=US,
            to="carol@customer.test", in_reply_to="q1@c.test", references=["q1@c.test"],
            date=hours(20), flags=["\\Seen"])
        db = run_sync(cfg)
        tid = db.execute("SELECT id FROM threads").fetchone()[0]
        ok(cfg, "close", str(tid), now=hours(1))
        return cfg, tid
    return make


def run_sync(cfg):
    config = load_config(cfg)
    db = open_db(config.db_path)
    sync(db, config, NOW)
    return db


def thanks(mb):
    """Carol's thank-you, quoting our answer, half an hour ago."""
    put(mb, "INBOX", msgid="t1@c.test", subject="Re: Login broken",
        body="Thanks!\n\nOn Monday Support wrote:\n> We fixed your login.\n",
        in_reply_to="a1@example.com", references=["q1@c.test", "a1@example.com"],
        date=hours(0.5))


def overdue_ids(cfg) -> list[int]:
    items = json.loads(ok(cfg, "overdue", "--json", "--threshold", "1m").stdout)
    return [t["thread_id"] for t in items]


def thread_row(db, tid):
    return db.execute("SELECT s.state, t.waiting_since, t.message_count FROM threads t "
                      "JOIN thread_state s ON s.thread_id = t.id WHERE t.id = ?",
                      [tid]).fetchone()


def test_thanks_after_close_keeps_the_thread_closed_and_not_overdue(closed_thread, mailbox):
    cfg, tid = closed_thread([THANKS])
    thanks(mailbox)
    db = run_sync(cfg)
    assert thread_row(db, tid) == ("closed", None, 3)  # stored and counted, nothing waits
    assert overdue_ids(cfg) == []
    shown = json.loads(ok(cfg, "show", str(tid), "--json").stdout)
    assert [m["id"] for m in shown["messages"]][-1] == "t1@c.test"
    assert shown["messages"][-1]["snippet"] == "Thanks!"
    assert {"field": "kept_closed", "old": None, "new": "t1@c.test", "cause": "rule:thanks",
            "at": "2026-11-23T12:00:00Z"} in shown["history"]
    explained = ok(cfg, "explain", str(tid)).stdout
    assert "stayed closed: rule thanks (keep_closed) matched it in a closed thread" in explained
    assert "state closed; closed, and it stayed closed" in explained

    # a real question afterwards reopens it, and the wait starts at the question
    put(mailbox, "INBOX", msgid="q2@c.test", subject="Re: Login broken",
        body="Sorry, it is broken again since this morning.", in_reply_to="t1@c.test",
        references=["q1@c.test", "a1@example.com", "t1@c.test"], date=hours(0.25))
    db = run_sync(cfg)
    assert thread_row(db, tid) == ("open", "2026-11-23T11:45:00Z", 4)
    assert overdue_ids(cfg) == [tid]


def test_without_the_rule_thanks_reopens_as_before(closed_thread, mailbox):
    cfg, tid = closed_thread([])
    thanks(mailbox)
    db = run_sync(cfg)
    assert thread_row(db, tid) == ("open", "2026-11-23T11:30:00Z", 3)


def test_the_rule_leaves_an_open_thread_alone(closed_thread, mailbox):
    cfg, tid = closed_thread([THANKS])
    ok(cfg, "reopen", str(tid), now=hours(0.9))
    thanks(mailbox)
    db = run_sync(cfg)
    state, waiting, _n = thread_row(db, tid)
    assert state == "open" and waiting == "2026-11-23T11:30:00Z"
    assert db.execute("SELECT COUNT(*) FROM thread_decisions").fetchone()[0] == 0
