"""Canned replies against the real Dovecot and SMTP servers: preview, draft, send, bulk."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json

import pytest

from mailtriage import compose
from mailtriage.config import load_config
from mailtriage.overdue import overdue
from mailtriage.render import TemplateProblem
from mailtriage.store import open_db
from mailtriage.triage import refresh

from support import mailfactory
from support.cli import ok, triage
from support.mailfactory import NOW, write_config

AGENT = {"name": "Alex from Support", "signature": "Example Support\nhttps://example.com/help",
         "address": "support@example.com"}


def _config(tmp_path, mailbox, server, monkeypatch, security="none", **extra):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", server.password)
    smtp = {"host": server.host, "port": server.port, "security": security,
            "username": server.username, "password_env": "TEST_SMTP_PASSWORD", "timeout": 10}
    if security != "none":
        smtp["ca_file"] = server.ca_file
    return write_config(tmp_path, mailbox, smtp=smtp, agent=AGENT, **extra)


def put(mb, folder="INBOX", flags=(), **kw):
    kw.setdefault("date", NOW - dt.timedelta(hours=30))  # old enough to be overdue
    return mailfactory.put(mb, folder, flags, **kw)


def thread_of(db, msgid):
    return db.execute("SELECT thread_id FROM messages WHERE message_id = ?",
                      [msgid]).fetchone()[0]


def state_of(db, tid):
    return db.execute("SELECT state FROM thread_state WHERE thread_id = ?", [tid]).fetchone()[0]


def folder_messages(mb, folder):
    c = mb.client()
    try:
        c.select_folder(folder, readonly=True)
        uids = c.search(["ALL"])
        data = c.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
        return [(set(d[b"FLAGS"]), email.message_from_bytes(d[b"BODY[]"],
                                                           policy=email.policy.default))
                for d in data.values()]
    finally:
        c.logout()


@pytest.fixture
def env(tmp_path, mailbox, smtp_server, monkeypatch):
    """One customer question (with Reply-To and a piled-up subject), synced."""
    put(mailbox, msgid="q1@customer.test", subject="RE: Re: Login broken",
        frm="Carol Customer <carol@customer.test>",
        references=["root@customer.test"],
        headers={"Reply-To": "carol.private@customer.test"})
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = open_db(load_config(cfg).db_path)
    return mailbox, smtp_server, cfg, db, thread_of(db, "q1@customer.test")


def test_preview_prints_the_full_reply_and_changes_nothing(env):
    _mb, server, cfg, db, tid = env
    res = ok(cfg, "reply", str(tid), "sorry")
    msg = email.message_from_string(res.stdout, policy=email.policy.default)
    assert msg["To"] == "carol.private@customer.test"
    assert msg["Subject"] == "Re: Login broken"
    assert msg["X-Mailtriage-Template"] == "sorry"
    body = msg.get_content()
    assert body.startswith("Hi Carol Customer,")
    assert "Alex from Support" in body and "Example Support" in body
    assert db["outbox"].count == 0 and not server.messages
    assert state_of(db, tid) == "open"


def test_draft_lands_in_drafts_and_keeps_the_state(env):
    mb, server, cfg, db, tid = env
    ok(cfg, "reply", str(tid), "need-info", "--draft")
    drafts = folder_messages(mb, "Drafts")
    assert len(drafts) == 1
    flags, msg = drafts[0]
    assert b"\\Draft" in flags and b"\\Seen" in flags
    assert msg["In-Reply-To"] == "<q1@customer.test>"
    assert not server.messages
    assert state_of(db, tid) == "open"
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["kind"], row["template"], row["thread_id"]) == ("draft", "need-info", tid)
    assert db.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 0  # tags come when sent
    assert row["message_id"] == msg["Message-ID"].strip("<>")


def test_send_is_a_real_reply_recorded_at_once_and_threaded_by_the_next_sync(env):
    mb, server, cfg, db, tid = env
    config = load_config(cfg)
    assert [i["thread_id"] for i in overdue(db, config, NOW)] == [tid]

    ok(cfg, "reply", str(tid), "sorry", "--send")

    [got] = server.wait_for(1)
    assert got.authenticated_as == "support@example.com"
    assert got.rcpt_tos == ["carol.private@customer.test"]
    msg = email.message_from_bytes(got.raw, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == "support@example.com"
    assert msg["From"].addresses[0].display_name == "Alex from Support"
    assert msg["To"] == "carol.private@customer.test"
    assert msg["Subject"] == "Re: Login broken"
    assert msg["In-Reply-To"] == "<q1@customer.test>"
    assert msg["References"].split() == ["<root@customer.test>", "<q1@customer.test>"]
    assert msg["Message-ID"].strip("<>").endswith("@example.com")
    assert msg["Date"].datetime == NOW
    assert msg["Auto-Submitted"] is None
    assert "sorry you're having this problem" in msg.get_content()

    # recorded at once: state, tags, outbox row
    assert state_of(db, tid) == "waiting"
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["kind"], row["state"], row["holding"], row["auto"]) == ("reply", "sent", 1, 0)
    assert row["sent_copy"] == "appended"
    assert row["message_id"] == msg["Message-ID"].strip("<>")
    assert db.execute("SELECT tag FROM tags WHERE thread_id = ?", [tid]).fetchall() == [("acked",)]

    # the copy in Sent, read
    [(flags, copy)] = folder_messages(mb, "Sent")
    assert b"\\Seen" in flags and copy["Message-ID"] == msg["Message-ID"]

    # not overdue any more, before any sync: refresh counts the unsynced reply as ours
    refresh(db, config, NOW)
    assert overdue(db, config, NOW) == []
    assert "nothing overdue" in ok(cfg, "overdue").stderr

    # the next sync threads our Sent copy into the same conversation
    ok(cfg, "sync", now="2026-11-23T12:05:00Z")
    assert thread_of(db, row["message_id"]) == tid
    assert state_of(db, tid) == "waiting"
    t = next(db.query("SELECT * FROM threads WHERE id = ?", [tid]))
    assert t["last_sender"] == "us" and t["waiting_since"] is None
    assert t["message_count"] == 2


@pytest.mark.parametrize("security, fixture", [("starttls", "smtp_starttls_server"),
                                               ("ssl", "smtps_server")])
def test_send_over_tls_verified_with_the_test_ca(tmp_path, mailbox, monkeypatch, request,
                                                 security, fixture):
    server = request.getfixturevalue(fixture)
    put(mailbox, msgid="q1@customer.test", subject="Export fails")
    cfg = _config(tmp_path, mailbox, server, monkeypatch, security=security)
    ok(cfg, "sync")
    db = open_db(load_config(cfg).db_path)
    tid = thread_of(db, "q1@customer.test")
    ok(cfg, "reply", str(tid), "resolved", "--send")
    [got] = server.wait_for(1)
    assert got.tls and got.authenticated_as == "support@example.com"
    msg = email.message_from_bytes(got.raw, policy=email.policy.default)
    assert msg["To"] == "carol@customer.test" and msg["Subject"] == "Re: Export fails"


def test_starttls_without_the_ca_is_refused_in_one_line(tmp_path, mailbox, smtp_starttls_server,
                                                        monkeypatch):
    put(mailbox, msgid="q1@customer.test", subject="Export fails")
    cfg = _config(tmp_path, mailbox, smtp_starttls_server, monkeypatch, security="starttls")
    ok(cfg, "sync")
    text = cfg.read_text().replace("ca_file:", "x_ca_file:")
    cfg.write_text("\n".join(line for line in text.splitlines() if "x_ca_file" not in line))
    db = open_db(load_config(cfg).db_path)
    res = triage(cfg, "reply", str(thread_of(db, "q1@customer.test")), "sorry", "--send")
    assert res.exit_code == 1
    assert "not trusted" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not smtp_starttls_server.messages and db["outbox"].count == 0


def test_failed_send_is_recorded_changes_nothing_else_and_says_why_in_one_line(env):
    mb, server, cfg, db, tid = env
    before = {t: db.execute(f"SELECT * FROM {t}").fetchall()
              for t in ("thread_state", "tags", "history", "threads")}
    server.fail_next(at="data")
    res = triage(cfg, "reply", str(tid), "sorry", "--send")
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "451" in lines[0] and "not sent" in lines[0]
    assert server.password not in res.output
    after = {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in before}
    assert after == before
    [row] = db.query("SELECT * FROM outbox")
    assert (row["state"], row["permanent"]) == ("failed", 0) and "451" in row["error"]
    assert folder_messages(mb, "Sent") == []


def test_sent_copy_failure_still_records_the_reply_with_a_warning(tmp_path, mailbox,
                                                                   smtp_server, monkeypatch):
    put(mailbox, msgid="q1@customer.test", subject="Export fails")
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch,
                  imap={"sent_folder": "No Such Folder"})
    db = open_db(load_config(cfg).db_path)
    tid = thread_of(db, "q1@customer.test")
    # the look at the mailbox before sending fails on that folder too: only --force sends
    refused = triage(cfg, "reply", str(tid), "sorry", "--send")
    assert refused.exit_code == 1 and "cannot check the mailbox" in refused.stderr
    res = ok(cfg, "reply", str(tid), "sorry", "--send", "--force")
    assert "warning: " in res.stderr and "No Such Folder" in res.stderr
    assert len(smtp_server.wait_for(1)) == 1
    assert state_of(db, tid) == "waiting" and db["outbox"].count == 1


def test_bulk_drafts_are_not_piled_up(env):
    mb, server, cfg, db, tid = env
    ok(cfg, "reply", "--overdue", "sorry", "--draft", "--yes")
    ok(cfg, "reply", "--overdue", "sorry", "--draft", "--yes")
    assert len(folder_messages(mb, "Drafts")) == 1
    assert not server.messages and state_of(db, tid) == "open"


def test_bad_smtp_password_is_one_line_without_the_password(env, monkeypatch):
    _mb, _server, cfg, db, tid = env
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-Pa55word")
    res = triage(cfg, "reply", str(tid), "sorry", "--send")
    assert res.exit_code == 1
    assert "login failed" in res.stderr and "wrong-Pa55word" not in res.output
    assert db["outbox"].count == 0 and state_of(db, tid) == "open"


def test_unknown_thread_or_template_exit_1_in_one_line(env):
    _mb, _server, cfg, _db, tid = env
    for args in (["999", "sorry"], [str(tid), "nope"]):
        res = triage(cfg, "reply", *args)
        assert res.exit_code == 1, res.output
        assert len(res.stderr.strip().splitlines()) == 1


def test_bulk_answers_each_overdue_thread_once_and_never_automated_mail(tmp_path, mailbox,
                                                                         smtp_server,
                                                                         monkeypatch):
    put(mailbox, msgid="a@c.test", subject="Invoice wrong", frm="Ann <ann@c.test>")
    put(mailbox, msgid="b@d.test", subject="Cannot log in", frm="bob@d.test")
    # the customer's out-of-office answered first: replying would start a mail loop
    put(mailbox, msgid="c@e.test", subject="Refund", frm="Cy <cy@e.test>")
    put(mailbox, msgid="c-ooo@e.test", subject="Auto: Re: Refund", frm="Cy <cy@e.test>",
        in_reply_to="c@e.test", date=NOW - dt.timedelta(hours=29),
        headers={"Auto-Submitted": "auto-replied"})
    # tagged automated by hand (e.g. a monitoring system writing like a person)
    put(mailbox, msgid="d@f.test", subject="Disk alert", frm="monitor@f.test")
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = open_db(load_config(cfg).db_path)
    a, b, c, d = (thread_of(db, m) for m in ("a@c.test", "b@d.test", "c@e.test", "d@f.test"))
    ok(cfg, "tag", str(d), "+automated")
    assert {i["thread_id"] for i in overdue(db, load_config(cfg), NOW)} == {a, b, c, d}

    dry = ok(cfg, "reply", "--overdue", "sorry")
    assert "would reply 'sorry' to 2 threads" in dry.stdout
    assert not server_messages(smtp_server) and db["outbox"].count == 0

    ok(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
    got = smtp_server.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in got) == ["ann@c.test", "bob@d.test"]
    for m in got:
        parsed = email.message_from_bytes(m.raw, policy=email.policy.default)
        assert parsed["Auto-Submitted"] is None
    assert "Hi there," in "".join(
        email.message_from_bytes(m.raw, policy=email.policy.default).get_content()
        for m in got if m.rcpt_tos == ["bob@d.test"])
    ok(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
    assert len(smtp_server.messages) == 2

    # Ann writes again and waits past the SLA: still never a second "sorry"
    put(mailbox, msgid="a2@c.test", subject="Re: Invoice wrong", frm="Ann <ann@c.test>",
        in_reply_to="a@c.test", date=NOW + dt.timedelta(hours=1))
    later = "2026-11-24T18:00:00Z"
    ok(cfg, "sync", now=later)
    assert state_of(db, a) == "open"
    res = ok(cfg, "reply", "--overdue", "sorry", "--send", "--yes", now=later)
    assert "no overdue thread needs 'sorry'" in res.stderr
    assert len(smtp_server.messages) == 2
    assert db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'sent'").fetchone()[0] == 2


def server_messages(server):
    return list(server.messages)


def test_bulk_asks_on_a_terminal(env, monkeypatch):
    _mb, server, cfg, db, tid = env
    monkeypatch.setattr("mailtriage.cli.reply._interactive", lambda: True)
    res = triage(cfg, "reply", "--overdue", "sorry", "--send", input="n\n")
    assert res.exit_code == 1
    assert "Send 'sorry' to 1 thread?" in res.stderr and "Login broken" in res.stderr
    assert not server.messages and db["outbox"].count == 0
    res = triage(cfg, "reply", "--overdue", "sorry", "--send", input="y\n")
    assert res.exit_code == 0, res.output
    assert len(server.wait_for(1)) == 1


def test_header_injection_from_the_customer_is_neutralised(env):
    mb, server, cfg, db, tid = env
    # what a hostile sender could smuggle past a weaker parser, straight into the store
    db.execute("UPDATE threads SET subject = ? WHERE id = ?",
               ["Help\r\nBcc: evil@x.test", tid])
    db.execute("UPDATE messages SET from_name = ?, subject = ? WHERE thread_id = ?",
               ["Eve\r\nBcc: evil@x.test", "Help\r\nBcc: evil@x.test", tid])
    db.conn.commit()
    config = load_config(cfg)
    r = compose.render_reply(db, config, tid, "sorry", NOW)
    raw = r.message.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None and b"\nBcc:" not in raw
    assert parsed["Subject"] == "Re: Help Bcc: evil@x.test"
    ok(cfg, "reply", str(tid), "sorry", "--send")
    [got] = server.wait_for(1)
    assert got.rcpt_tos == ["carol.private@customer.test"]
    assert email.message_from_bytes(got.raw, policy=email.policy.default)["Bcc"] is None

    # a Reply-To that is not one clean address: refuse rather than guess
    db.execute("UPDATE messages SET reply_to = ? WHERE thread_id = ?",
               ["x@y.test\r\nBcc: evil@x.test", tid])
    db.conn.commit()
    with pytest.raises(compose.ReplyError):
        compose.render_reply(db, config, tid, "sorry", NOW)


def test_encoded_crlf_subject_through_a_real_sync(tmp_path, mailbox, smtp_server, monkeypatch):
    raw = (b"From: Mallory <mallory@customer.test>\r\nTo: support@example.com\r\n"
           b"Subject: =?utf-8?q?Hi=0D=0ABcc=3A_evil=40x=2Etest?= =?utf-8?b?w5xiZXI=?=\r\n"
           b"Message-ID: <inj@customer.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n"
           b"\r\nbody\r\n")
    mailbox.append("INBOX", raw, internaldate=NOW - dt.timedelta(hours=30))
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = open_db(load_config(cfg).db_path)
    tid = thread_of(db, "inj@customer.test")
    ok(cfg, "reply", str(tid), "sorry", "--send")
    [got] = smtp_server.wait_for(1)
    parsed = email.message_from_bytes(got.raw, policy=email.policy.default)
    assert parsed["Bcc"] is None and got.rcpt_tos == ["mallory@customer.test"]
    assert "\n" not in parsed["Subject"] and "Über" in parsed["Subject"]


def test_auto_replies_carry_auto_submitted(env):
    _mb, _server, cfg, db, tid = env
    r = compose.render_reply(db, load_config(cfg), tid, "sorry", NOW, auto=True)
    assert r.message["Auto-Submitted"] == "auto-replied"


def test_customer_name_falls_back_sensibly():
    assert compose.customer_block("Carol Customer", "c@x.test")["first_name"] == "Carol"
    assert compose.customer_block("Doe, Jane", "j@x.test")["first_name"] == "Jane"
    for name in ("", None, "c@x.test", "  ", "\r\n"):
        block = compose.customer_block(name, "c@x.test")
        assert block["name"] == block["first_name"] == "there"


def test_build_context(env):
    _mb, _server, cfg, db, tid = env
    ctx = compose.build_context(db, load_config(cfg), tid, NOW)
    assert ctx["thread"]["subject"] == "RE: Re: Login broken"
    assert ctx["thread"]["age"] == "1d 6h"
    assert ctx["thread"]["messages"][0]["from"] == "carol@customer.test"
    assert ctx["customer"] == {"name": "Carol Customer", "first_name": "Carol",
                               "address": "carol@customer.test"}
    assert ctx["agent"]["name"] == "Alex from Support"


def test_templates_check_passes_on_the_shipped_templates(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    cfg = write_config(tmp_path, mailbox)
    res = ok(cfg, "templates", "check")
    assert "4 templates OK" in res.stderr
    listing = json.loads(ok(cfg, "templates", "list", "--json").stdout)
    assert {t["name"]: t["holding"] for t in listing} == {
        "sorry": True, "followup": True, "need-info": False, "resolved": False}


def test_templates_check_fails_on_a_user_template_with_an_undefined_variable(tmp_path, mailbox,
                                                                             monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    cfg = write_config(tmp_path, mailbox)
    replies = tmp_path / "templates" / "replies"
    replies.mkdir(parents=True)
    (replies / "bad.j2").write_text("Hi {{ customer.nickname }},\n\nThanks.\n")
    (replies / "empty-greeting.j2").write_text("Hi {{ agent.signature }},\n\nThanks.\n")
    res = triage(cfg, "templates", "check")
    assert res.exit_code == 1
    assert "bad.j2" in res.stderr and "nickname" in res.stderr
    assert "empty-greeting.j2: greeting without a name" in res.stderr


@pytest.mark.parametrize("source, expected", [
    ("{{ ''.__class__.__mro__ }}", "not allowed"),
    ("{{ config.smtp.password_env }}", "'config' is undefined"),
    ("{% for x in thread.messages %}{{ x.__init__.__globals__ }}{% endfor %}", "not allowed"),
])
def test_sandbox_blocks_escapes(env, source, expected):
    _mb, server, cfg, db, tid = env
    replies = cfg.parent / "templates" / "replies"
    replies.mkdir(parents=True, exist_ok=True)
    (replies / "evil.j2").write_text(source)
    res = triage(cfg, "reply", str(tid), "evil", "--send")
    assert res.exit_code == 1
    assert "evil.j2" in res.stderr and expected in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not server.messages and db["outbox"].count == 0
    with pytest.raises(TemplateProblem):
        compose.render_reply(db, load_config(cfg), tid, "evil", NOW)
