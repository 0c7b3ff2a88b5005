"""Sync against a real Dovecot: first run, incremental runs, flags, expunges, UIDVALIDITY."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mailtriage.config import load_config
from mailtriage.imap import IMAPSession
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import ok, triage
from support.mailfactory import NOW, mail, put, write_config


@pytest.fixture
def env(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    cfg = write_config(tmp_path, mailbox)
    return mailbox, cfg


def run_sync(cfg, **kw):
    config = load_config(cfg)
    db = open_db(config.db_path)
    return db, sync(db, config, NOW, **kw)


def conversation(mb):
    put(mb, "INBOX", msgid="q1@c.test", subject="Login broken", date=NOW - dt.timedelta(hours=30))
    put(mb, "Sent", msgid="a1@example.com", subject="Re: Login broken",
        frm="Support <support@example.com>", to="carol@customer.test",
        in_reply_to="q1@c.test", references=["q1@c.test"],
        date=NOW - dt.timedelta(hours=20), flags=["\\Seen"])
    put(mb, "INBOX", msgid="q2@c.test", subject="Re: Login broken",
        in_reply_to="a1@example.com", references=["q1@c.test", "a1@example.com"],
        date=NOW - dt.timedelta(hours=2))
    put(mb, "INBOX", msgid="other@d.test", subject="Invoice question",
        frm="dave@d.test", date=NOW - dt.timedelta(hours=5))


def test_first_sync_stores_messages_threads_and_folder_state(env):
    mb, cfg = env
    conversation(mb)
    db, result = run_sync(cfg)
    assert result.new == 4
    assert db["messages"].count == 4
    threads = {r["subject"]: r for r in db.query("SELECT * FROM threads")}
    assert set(threads) == {"Login broken", "Invoice question"}
    assert threads["Login broken"]["message_count"] == 3
    folders = {r["folder"]: r for r in db.query("SELECT * FROM folders")}
    assert set(folders) == {"INBOX", "Sent", "Drafts"}  # Sent and Drafts found by SPECIAL-USE
    assert (folders["Sent"]["role"], folders["Drafts"]["role"]) == ("sent", "drafts")
    assert folders["INBOX"]["last_uid"] == 3 and folders["INBOX"]["server_count"] == 3
    assert folders["INBOX"]["highestmodseq"]  # CONDSTORE recorded
    # read-only: the customer's unread mail stays unread
    c = mb.client()
    c.select_folder("INBOX", readonly=True)
    flags = c.get_flags(c.search(["ALL"]))
    assert all(b"\\Seen" not in f for f in flags.values())


def test_second_sync_with_nothing_new_fetches_nothing(env, monkeypatch):
    mb, cfg = env
    conversation(mb)
    run_sync(cfg)
    calls = []
    orig_fetch, orig_examine = IMAPSession.fetch, IMAPSession.examine
    monkeypatch.setattr(IMAPSession, "fetch", lambda s, u: calls.append(u) or orig_fetch(s, u))
    monkeypatch.setattr(IMAPSession, "examine",
                        lambda s, f: calls.append(f) or orig_examine(s, f))
    db, result = run_sync(cfg)
    assert calls == []  # STATUS alone told us nothing changed
    assert result.new == 0 and all(f.unchanged for f in result.folders)
    assert db["messages"].count == 4


def test_incremental_sync_fetches_only_new_and_threads_it(env, monkeypatch):
    mb, cfg = env
    conversation(mb)
    run_sync(cfg)
    mb.append("INBOX", mail(msgid="q3@c.test", subject="Re: Login broken",
                            in_reply_to="q2@c.test", date=NOW - dt.timedelta(minutes=5)))
    fetched = []
    orig = IMAPSession.fetch
    monkeypatch.setattr(IMAPSession, "fetch", lambda s, u: fetched.extend(u) or orig(s, u))
    db, result = run_sync(cfg)
    assert fetched == [4]
    assert result.new == 1
    tid = db.execute("SELECT thread_id FROM messages WHERE message_id = 'q3@c.test'").fetchone()[0]
    first = db.execute("SELECT thread_id FROM messages WHERE message_id = 'q1@c.test'").fetchone()
    assert tid == first[0]


def test_flag_change_is_picked_up_with_condstore(env):
    mb, cfg = env
    conversation(mb)
    db, _ = run_sync(cfg)
    c = mb.client()
    c.select_folder("INBOX")
    c.add_flags([1], [b"\\Flagged"])
    c.logout()
    db, result = run_sync(cfg)
    assert sum(f.flags_changed for f in result.folders) == 1
    flags = db.execute("SELECT flags FROM locations WHERE folder = 'INBOX' AND uid = 1").fetchone()
    assert "\\Flagged" in flags[0].split()


def test_expunge_removes_the_location_but_keeps_the_conversation(env):
    mb, cfg = env
    conversation(mb)
    run_sync(cfg)
    c = mb.client()
    c.select_folder("INBOX")
    c.delete_messages([3])
    c.expunge()
    c.logout()
    db, result = run_sync(cfg)
    assert sum(f.expunged for f in result.folders) == 1
    assert db.execute("SELECT COUNT(*) FROM locations WHERE folder = 'INBOX'").fetchone()[0] == 2
    # the message row (a fact that it arrived) stays; only where it lives changed
    assert db["messages"].count == 4


def test_uidvalidity_change_remaps_without_losing_tags_or_state(env):
    mb, cfg = env
    conversation(mb)
    db, _ = run_sync(cfg)
    tid = db.execute("SELECT thread_id FROM messages WHERE message_id = 'q1@c.test'").fetchone()[0]
    res = triage(cfg, "tag", str(tid), "+vip", now=None)
    assert res.exit_code == 0, res.output
    res = triage(cfg, "close", str(tid), now=None)
    assert res.exit_code == 0, res.output
    old = db.execute("SELECT uidvalidity FROM folders WHERE folder = 'INBOX'").fetchone()[0]
    mb.change_uidvalidity("INBOX")
    db, result = run_sync(cfg)
    assert any(f.uidvalidity_changed for f in result.folders)
    assert result.new == 0  # same messages, new mapping
    new = db.execute("SELECT uidvalidity FROM folders WHERE folder = 'INBOX'").fetchone()[0]
    assert new != old
    assert db.execute("SELECT COUNT(*) FROM locations WHERE folder='INBOX'").fetchone()[0] == 3
    assert db.execute("SELECT COUNT(DISTINCT uidvalidity) FROM locations WHERE folder='INBOX'"
                      ).fetchone()[0] == 1
    assert db["messages"].count == 4
    assert db.execute("SELECT tag FROM tags WHERE thread_id = ?", [tid]).fetchone()[0] == "vip"
    state = db.execute("SELECT state FROM thread_state WHERE thread_id = ?", [tid]).fetchone()[0]
    assert state == "closed"


def test_interrupted_sync_resumes_without_loss_or_duplicates(env, monkeypatch):
    mb, cfg = env
    for i in range(25):
        mb.append("INBOX", mail(msgid=f"bulk{i}@c.test", subject=f"Question {i}"))
    config = load_config(cfg)
    config.accounts[0].batch_size = 10
    db = open_db(config.db_path)
    orig = IMAPSession.fetch
    calls = {"n": 0}

    def failing(self, uids):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # like a kill between two batches
        return orig(self, uids)

    monkeypatch.setattr(IMAPSession, "fetch", failing)
    with pytest.raises(KeyboardInterrupt):
        sync(db, config, NOW)
    assert db["messages"].count == 10  # the first batch was committed
    monkeypatch.setattr(IMAPSession, "fetch", orig)
    result = sync(db, config, NOW)
    assert db["messages"].count == 25
    assert result.new == 15
    assert db.execute("SELECT COUNT(*) FROM locations").fetchone()[0] == 25
    assert db.execute("SELECT last_uid FROM folders WHERE folder='INBOX'").fetchone()[0] == 25


def test_same_message_in_two_folders_is_one_message_and_a_move_keeps_it(env, tmp_path):
    mb, cfg = env
    cfg = write_config(tmp_path, mb, imap={"folders": ["INBOX", "Archive"]})
    raw = mail(msgid="dup@c.test", subject="Where is my order")
    mb.append("INBOX", raw)
    mb.append("Archive", raw)
    db, _ = run_sync(cfg)
    assert db["messages"].count == 1
    assert db.execute("SELECT COUNT(*) FROM locations").fetchone()[0] == 2
    mid = db.execute("SELECT id, thread_id FROM messages").fetchone()
    # move: gone from INBOX, still in Archive
    c = mb.client()
    c.select_folder("INBOX")
    c.delete_messages(c.search(["ALL"]))
    c.expunge()
    c.logout()
    db, _ = run_sync(cfg)
    assert db.execute("SELECT id, thread_id FROM messages").fetchone() == mid
    assert [r[0] for r in db.execute("SELECT folder FROM locations")] == ["Archive"]


def test_tls_with_the_test_ca_and_refusal_without_it(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    mailbox.append("INBOX", mail())
    good = write_config(tmp_path, mailbox, imap={"security": "ssl", "port": mailbox.ssl_port,
                                                 "ca_file": mailbox.ca_file})
    db, result = run_sync(good)
    assert result.new == 1
    (tmp_path / "other").mkdir()
    bad = write_config(tmp_path / "other", mailbox, imap={"security": "starttls"})
    res = triage(bad, "sync", now=None)
    assert res.exit_code == 1
    assert "certificate" in res.output.lower() and "Traceback" not in res.output


def test_cli_threads_and_show_json(env):
    mb, cfg = env
    conversation(mb)
    assert triage(cfg, "sync", now=None).exit_code == 0
    res = triage(cfg, "threads", "--json")
    assert res.exit_code == 0, res.output
    threads = json.loads(res.stdout)
    login = next(t for t in threads if t["subject"] == "Login broken")
    assert login["message_ids"] == ["q1@c.test", "a1@example.com", "q2@c.test"]
    assert set(login["participants"]) >= {"carol@customer.test", "support@example.com"}
    assert login["first_at"].endswith("Z") and login["state"] == "open"
    res = triage(cfg, "show", str(login["id"]), "--json", now=None)
    detail = json.loads(res.stdout)
    assert [m["folders"] for m in detail["messages"]] == [["INBOX"], ["Sent"], ["INBOX"]]
    assert detail["messages"][1]["flags"] == ["\\Seen"]


def test_password_never_leaks(env, tmp_path):
    mb, cfg = env
    mb.append("INBOX", mail())
    res = triage(cfg, "-vv", "sync", now=None,
                 env={"TEST_IMAP_PASSWORD": "wrong-" + mb.password})
    assert res.exit_code == 1
    assert mb.password not in res.output and "login failed" in res.output
    res = triage(cfg, "-vv", "sync", now=None)
    assert mb.password not in res.output
    data = (tmp_path / "state.db").read_bytes()
    assert mb.password.encode() not in data


def test_qresync_reports_expunges_without_a_full_uid_search(env, monkeypatch):
    mb, cfg = env
    conversation(mb)
    run_sync(cfg)
    c = mb.client()
    c.select_folder("INBOX")
    c.delete_messages([1, 3])
    c.expunge()
    c.logout()
    searched = []
    monkeypatch.setattr(IMAPSession, "all_uids", lambda self: searched.append(1) or [])
    db, result = run_sync(cfg)
    assert searched == []  # VANISHED (EARLIER) said which UIDs went; no UID SEARCH ALL
    assert sum(f.expunged for f in result.folders) == 2
    assert [r[0] for r in db.execute("SELECT uid FROM locations WHERE folder = 'INBOX'")] == [2]


def test_vanished_uid_sets_parse():
    from mailtriage.imap import _uid_set

    assert _uid_set([b"(EARLIER) 3:5,9", b"12"]) == {3, 4, 5, 9, 12}
    assert _uid_set([b"(EARLIER) junk,7:6"]) == {6, 7}


def test_two_accounts_sync_into_one_database(tmp_path, dovecot, monkeypatch):
    support = dovecot.add_user("multi-support@example.com", "pw-one")
    billing = dovecot.add_user("multi-billing@example.com", "pw-two")
    monkeypatch.setenv("PW_ONE", "pw-one")
    monkeypatch.setenv("PW_TWO", "pw-two")
    put(support, "INBOX", msgid="s1@c.test", subject="Login broken")
    # the same customer writes to billing@ about the same conversation
    put(billing, "INBOX", msgid="b1@c.test", subject="Re: Login broken", in_reply_to="s1@c.test")
    put(billing, "INBOX", msgid="b2@c.test", subject="Refund")
    accounts = [
        {"name": name, "host": acc.host, "port": acc.port, "security": "none",
         "username": acc.username, "password_env": env}
        for name, acc, env in (("support", support, "PW_ONE"), ("billing", billing, "PW_TWO"))
    ]
    cfg = write_config(tmp_path, accounts=accounts)
    db, result = run_sync(cfg)
    assert {(f.account, f.folder) for f in result.folders} >= {("support", "INBOX"),
                                                               ("billing", "INBOX")}
    assert db["messages"].count == 3
    same = db.execute("SELECT COUNT(DISTINCT thread_id) FROM messages "
                      "WHERE message_id IN ('s1@c.test', 'b1@c.test')").fetchone()[0]
    assert same == 1  # one conversation across the two mailboxes
    res = triage(cfg, "sync", "--account", "billing", now=None)
    assert res.exit_code == 0, res.output


def test_a_full_sync_keeps_the_resume_point(tmp_path, mailbox, monkeypatch):
    """`sync --full` starts from UID 0; it used to save that as the folder's last UID, so
    the next ordinary sync fetched the whole folder again."""
    import sqlite3

    from support.faultproxy import conversation_corpus, deliver

    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    deliver(mailbox, conversation_corpus(3, 3))
    cfg = write_config(tmp_path, mailbox, imap={"sent_folder": "Sent"})
    ok(cfg, "sync")

    def resume_points() -> list[tuple[str, int]]:
        conn = sqlite3.connect(tmp_path / "state.db")
        try:
            return conn.execute("SELECT folder, last_uid FROM folders ORDER BY folder").fetchall()
        finally:
            conn.close()

    before = resume_points()
    assert dict(before)["INBOX"] > 0
    ok(cfg, "sync", "--full")
    assert resume_points() == before
