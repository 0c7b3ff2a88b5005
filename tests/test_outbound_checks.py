"""What must hold before and after mail goes out, against the real Dovecot and SMTP servers:
someone else is on it (a teammate's draft, new mail), automatic acknowledgements never count
as answers, mail loops, team-only addresses, bounces of our mail, and threading of replies.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json

from mailtriage.config import load_config
from mailtriage.store import iso, open_db

from support import cli, mailfactory
from support.mailfactory import NOW, mail, write_config

AGENT = {"name": "Alex from Support", "signature": "Example Support",
         "address": "support@example.com"}


# ------------------------------------------------------------------------------- helpers


def _config(tmp_path, mailbox, server, monkeypatch, **extra):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", server.password)
    smtp = {"host": server.host, "port": server.port, "security": "none",
            "username": server.username, "password_env": "TEST_SMTP_PASSWORD", "timeout": 10}
    return write_config(tmp_path, mailbox, smtp=smtp, agent=AGENT, **extra)


def put(mb, folder="INBOX", flags=(), **kw):
    kw.setdefault("date", NOW - dt.timedelta(hours=30))  # old enough to be overdue (24h SLA)
    return mailfactory.put(mb, folder, flags, **kw)


def at(delta: dt.timedelta = dt.timedelta()) -> str:
    return iso(NOW + delta)


def triage(cfg, *args, now=None):
    """The shared `triage`, with `--now` as `at()` prints it unless given."""
    return cli.triage(cfg, *args, now=now or at())


def ok(cfg, *args, now=None):
    return cli.ok(cfg, *args, now=now or at())


def as_json(cfg, *args, now=None):
    return json.loads(ok(cfg, *args, "--json", now=now).stdout)


def db_of(cfg):
    return open_db(load_config(cfg).db_path)


def thread_of(db, msgid):
    row = db.execute("SELECT thread_id FROM messages WHERE message_id = ?", [msgid]).fetchone()
    assert row, f"{msgid} not stored"
    return row[0]


def threads_by_id(cfg, now=None):
    return {t["id"]: t for t in as_json(cfg, "threads", now=now)}


def parsed(received):
    return email.message_from_bytes(received.raw, policy=email.policy.default)


def folder_count(mb, folder):
    c = mb.client()
    try:
        c.select_folder(folder, readonly=True)
        return len(c.search(["ALL"]))
    finally:
        c.logout()


def bounce(original_id: str, recipient: str, *, msgid: str) -> bytes:
    """A Postfix-style RFC 3464 report: text, message/delivery-status, text/rfc822-headers."""
    boundary = "8C1D32E0F4.1764071100/mx.example.com"
    lines = [
        "Return-Path: <>",
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)",
        "To: support@example.com",
        "Subject: Undelivered Mail Returned to Sender",
        "Date: Mon, 23 Nov 2026 12:05:00 +0000",
        f"Message-Id: <{msgid}>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "This is the mail system at host mx.example.com.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients. It's attached below.",
        "",
        f"<{recipient}>: host mx1.custmer.test[198.51.100.7] said: 550 5.1.1",
        f"    <{recipient}>: Recipient address rejected: User unknown",
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.com",
        "X-Postfix-Sender: rfc822; support@example.com",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        f"Original-Recipient: rfc822;{recipient}",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx1.custmer.test",
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:",
        "    User unknown",
        "",
        f"--{boundary}",
        "Content-Description: Undelivered Message Headers",
        "Content-Type: text/rfc822-headers",
        "",
        "From: Alex from Support <support@example.com>",
        f"To: {recipient}",
        "Subject: Re: Refund please",
        "Date: Mon, 23 Nov 2026 12:00:00 +0000",
        f"Message-ID: <{original_id}>",
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


# ------------------------------------------------------------- 1. a teammate is writing


def test_teammate_draft_is_shown_does_not_answer_and_blocks_sending_unless_forced(
        tmp_path, mailbox, smtp_server, monkeypatch):
    put(mailbox, msgid="q1@customer.test", subject="Login broken",
        frm="Carol Customer <carol@customer.test>")
    put(mailbox, msgid="q2@other.test", subject="Export fails", frm="Bob <bob@other.test>")
    put(mailbox, msgid="q3@third.test", subject="Quick question", frm="dora@third.test",
        date=NOW - dt.timedelta(minutes=10))  # not overdue: bulk leaves it alone
    draft = mail(subject="Re: Login broken", frm="Alice <alice@example.com>",
                 to="carol@customer.test", msgid="draft-alice@example.com",
                 in_reply_to="q1@customer.test", references=["q1@customer.test"],
                 body="Hi Carol, I'm checking your account right now.")
    mailbox.append("Drafts", draft, flags=["\\Draft"], internaldate=NOW - dt.timedelta(minutes=5))
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = db_of(cfg)
    q1, q2, q3 = (thread_of(db, m) for m in
                  ("q1@customer.test", "q2@other.test", "q3@third.test"))
    assert thread_of(db, "draft-alice@example.com") == q1

    threads = threads_by_id(cfg)
    assert threads[q1]["draft_by"] == ["alice@example.com"]
    assert threads[q2]["draft_by"] == [] and threads[q3]["draft_by"] == []
    # the draft answers nothing: still open, still the customer's turn, still overdue
    assert threads[q1]["state"] == "open" and threads[q1]["last_sender"] == "customer"
    assert threads[q1]["message_ids"] == ["q1@customer.test"]
    assert threads[q1]["message_count"] == 1
    shown = as_json(cfg, "show", str(q1))
    assert [m["id"] for m in shown["messages"]] == ["q1@customer.test"]
    [d] = shown["drafts"]
    assert d["from"] == "alice@example.com" and d["ours"] is False
    assert d["folders"] == ["Drafts"]
    late = {i["thread_id"]: i for i in as_json(cfg, "overdue")}
    assert set(late) == {q1, q2}
    assert late[q1]["reason"] == "unanswered" and late[q1]["draft_by"] == ["alice@example.com"]

    # bulk: Alice's thread is skipped with a reason, the other overdue thread is answered
    res = triage(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
    assert res.exit_code == 0, res.output  # skipped on purpose is not a failure
    assert f"thread {q1}: not sent: someone else is on it" in res.stderr
    assert "a draft by Alice <alice@example.com>" in res.stderr
    [got] = smtp_server.wait_for(1)
    assert got.rcpt_tos == ["bob@other.test"]
    assert db.execute("SELECT state FROM thread_state WHERE thread_id = ?",
                      [q1]).fetchone()[0] == "open"

    # one thread, by hand: refused in one line, naming Alice's draft
    res = triage(cfg, "reply", str(q1), "sorry", "--send")
    assert res.exit_code == 1, res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert "someone else is on it" in res.stderr and "alice@example.com" in res.stderr
    assert len(smtp_server.messages) == 1
    assert db.execute("SELECT COUNT(*) FROM outbox WHERE thread_id = ?", [q1]).fetchone()[0] == 0

    # --force: a person decided to send anyway
    ok(cfg, "reply", str(q1), "sorry", "--send", "--force")
    got = smtp_server.wait_for(2)
    assert len(got) == 2 and got[1].rcpt_tos == ["carol@customer.test"]

    # our own draft (reply --draft) is not a teammate's: it never blocks a later --send
    ok(cfg, "reply", str(q3), "need-info", "--draft")
    assert folder_count(mailbox, "Drafts") == 2
    ok(cfg, "reply", str(q3), "sorry", "--send", now=at(dt.timedelta(minutes=1)))
    got = smtp_server.wait_for(3)
    assert len(got) == 3 and got[2].rcpt_tos == ["dora@third.test"]
    threads = threads_by_id(cfg, now=at(dt.timedelta(minutes=2)))
    assert threads[q3]["draft_by"] == [] and threads[q3]["state"] == "waiting"
    [ours] = as_json(cfg, "show", str(q3))["drafts"]
    assert ours["ours"] is True


# ------------------------------------------------------------- 2. something new arrived


def test_new_customer_mail_or_a_teammates_reply_since_the_last_sync_blocks_the_send(
        tmp_path, mailbox, smtp_server, monkeypatch):
    put(mailbox, msgid="a1@customer.test", subject="Login broken",
        frm="Carol Customer <carol@customer.test>")
    put(mailbox, msgid="b1@other.test", subject="Export fails", frm="Bob <bob@other.test>")
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = db_of(cfg)
    a, b = thread_of(db, "a1@customer.test"), thread_of(db, "b1@other.test")

    # while a person looks at thread A, Carol writes again
    put(mailbox, msgid="a2@customer.test", subject="Re: Login broken",
        frm="Carol Customer <carol@customer.test>", in_reply_to="a1@customer.test",
        references=["a1@customer.test"], body="Still broken, and now I cannot pay either.",
        date=NOW - dt.timedelta(minutes=3))
    res = triage(cfg, "reply", str(a), "sorry", "--send")
    assert res.exit_code == 1, res.output
    assert "a new message from Carol Customer <carol@customer.test>" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert smtp_server.messages == []
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0

    # while a person looks at thread B, a teammate answers it (her copy lands in Sent)
    put(mailbox, "Sent", flags=["\\Seen"], msgid="t1@example.com", subject="Re: Export fails",
        frm="Support <support@example.com>", to="bob@other.test",
        in_reply_to="b1@other.test", references=["b1@other.test"],
        body="Hi Bob, fixed: please try again.", date=NOW - dt.timedelta(minutes=2))
    res = triage(cfg, "reply", str(b), "sorry", "--send")
    assert res.exit_code == 1, res.output
    assert "someone else is on it" in res.stderr and "support@example.com" in res.stderr
    assert smtp_server.messages == []
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert threads_by_id(cfg)[b]["state"] == "waiting"  # the teammate's answer counts


# ------------------------------------------------- 3. auto-acks never count as answers


def test_auto_acks_never_count_as_answers_not_even_in_the_report_of_the_same_run(
        tmp_path, mailbox, smtp_server, monkeypatch):
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch,
                  auto_ack={"template": "sorry", "after": "15m"}, sla={"default": "1h"},
                  report={"to": ["lead@example.com"], "at": "00:00"})
    two_hours_ago = NOW - dt.timedelta(hours=2)
    put(mailbox, msgid="w1@customer.test", subject="Login broken",
        frm="Carol Customer <carol@customer.test>", date=two_hours_ago)
    put(mailbox, msgid="w2@other.test", subject="Export fails", frm="Bob <bob@other.test>",
        date=two_hours_ago)

    res = ok(cfg, "run")
    assert res.output == ""
    got = smtp_server.wait_for(3)
    assert len(got) == 3 and got[2].rcpt_tos == ["lead@example.com"]  # after the acks
    acks = [m for m in got if m.rcpt_tos != ["lead@example.com"]]
    [report] = [parsed(m) for m in got if m.rcpt_tos == ["lead@example.com"]]
    assert sorted(m.rcpt_tos[0] for m in acks) == ["bob@other.test", "carol@customer.test"]
    for ack in map(parsed, acks):
        assert ack["Auto-Submitted"] == "auto-replied"
        assert ack["X-Mailtriage-Template"] == "sorry"
    assert report["Subject"].endswith(": 2 waiting too long"), report["Subject"]
    text = report.get_body(("plain",)).get_content()
    assert "2 threads waiting too long" in text

    db = db_of(cfg)
    w1, w2 = thread_of(db, "w1@customer.test"), thread_of(db, "w2@other.test")
    threads = threads_by_id(cfg)
    for tid in (w1, w2):
        assert threads[tid]["state"] == "open"
        assert threads[tid]["waiting_since"] == iso(two_hours_ago)
        history = as_json(cfg, "show", str(tid))["history"]
        assert [(h["new"], h["cause"]) for h in history if h["field"] == "state"] \
            == [("open", "sync")]

    # the Sent copies come back; they are automated, not our answer
    assert folder_count(mailbox, "Sent") == 2
    later = at(dt.timedelta(minutes=5))
    ok(cfg, "sync", now=later)
    threads = threads_by_id(cfg, now=later)
    for tid in (w1, w2):
        assert threads[tid]["message_count"] == 2
        assert threads[tid]["state"] == "open" and threads[tid]["last_sender"] == "customer"
    late = as_json(cfg, "overdue", now=later)
    assert [(i["thread_id"], i["reason"]) for i in late] == [(w1, "unanswered"),
                                                             (w2, "unanswered")]
    assert all(i["waiting_since"] == iso(two_hours_ago) for i in late)

    # the follow-up clock never starts from an ack: days later, still just unanswered
    days_later = at(dt.timedelta(days=3))
    late = as_json(cfg, "overdue", now=days_later)
    assert sorted((i["thread_id"], i["reason"]) for i in late) == [(w1, "unanswered"),
                                                                   (w2, "unanswered")]


# ------------------------------------------------------------------------------ 4. loops


def test_auto_replies_and_x_loop_mail_get_no_ack_and_no_bulk_reply(
        tmp_path, mailbox, smtp_server, monkeypatch):
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch,
                  auto_ack={"template": "sorry", "after": "15m"}, sla={"default": "1h"})
    two_hours_ago = NOW - dt.timedelta(hours=2)
    # (a) a responder that sets no RFC 3834 header, answering something we never stored
    put(mailbox, msgid="ooo@vacation.test", subject="Automatic reply: Your message",
        frm="Dan Vacation <dan@vacation.test>", body="I am out of the office until Monday.",
        date=two_hours_ago)
    # (c) another system's mail that says it already went through us
    put(mailbox, msgid="loop@helpdesk.test", subject="Ticket 4711 updated",
        frm="Helpdesk <desk@helpdesk.test>", headers={"X-Loop": "support@example.com"},
        date=two_hours_ago)
    put(mailbox, msgid="c1@customer.test", subject="Login broken",
        frm="Carol Customer <carol@customer.test>", date=two_hours_ago)

    assert ok(cfg, "run").output == ""
    [ack] = smtp_server.wait_for(1)
    assert ack.rcpt_tos == ["carol@customer.test"]
    assert ok(cfg, "run", now=at(dt.timedelta(minutes=30))).output == ""
    assert len(smtp_server.messages) == 1

    db = db_of(cfg)
    ooo, loop = thread_of(db, "ooo@vacation.test"), thread_of(db, "loop@helpdesk.test")
    shown = as_json(cfg, "show", str(ooo))
    assert "subject:auto-reply" in shown["auto_signals"]
    assert shown["state"] == "closed" and "automated" in shown["tags"]
    assert as_json(cfg, "show", str(loop))["state"] == "open"

    # (d) bulk never answers them either; a new customer thread is answered
    put(mailbox, msgid="e1@erin.test", subject="Billing", frm="Erin <erin@erin.test>",
        date=NOW + dt.timedelta(minutes=30))
    later = at(dt.timedelta(hours=2))
    ok(cfg, "sync", now=later)
    erin = thread_of(db, "e1@erin.test")
    assert loop in {i["thread_id"] for i in as_json(cfg, "overdue", now=later)}
    dry = ok(cfg, "reply", "--overdue", "sorry", now=later)
    assert "would reply 'sorry' to 1 thread" in dry.stdout
    assert f"  {erin}: " in dry.stdout
    ok(cfg, "reply", "--overdue", "sorry", "--send", "--yes", now=later)
    got = smtp_server.wait_for(2)
    assert [m.rcpt_tos for m in got] == [["carol@customer.test"], ["erin@erin.test"]]
    sent_to = {r[0] for r in db.execute("SELECT thread_id FROM outbox")}
    assert ooo not in sent_to and loop not in sent_to


def test_one_ack_per_sender_per_day_however_many_threads(tmp_path, mailbox, smtp_server,
                                                         monkeypatch):
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch,
                  auto_ack={"template": "sorry", "after": "15m"})
    frm = "Dana <dana@d.test>"
    put(mailbox, msgid="d1@d.test", subject="Cannot log in", frm=frm,
        date=NOW - dt.timedelta(minutes=30))
    put(mailbox, msgid="d2@d.test", subject="Also: invoice missing", frm=frm,
        date=NOW - dt.timedelta(minutes=20))
    assert ok(cfg, "run").output == ""
    [first] = smtp_server.wait_for(1)
    assert first.rcpt_tos == ["dana@d.test"]
    assert parsed(first)["In-Reply-To"] in ("<d1@d.test>", "<d2@d.test>")

    put(mailbox, msgid="d3@d.test", subject="And the export is slow", frm=frm,
        date=NOW + dt.timedelta(minutes=10))
    for minutes in (30, 45, 60):  # the third thread waited long enough, Dana had her ack
        assert ok(cfg, "run", now=at(dt.timedelta(minutes=minutes))).output == ""
    assert len(smtp_server.messages) == 1

    # a day later Dana writes about something new: that one is acknowledged
    put(mailbox, msgid="d4@d.test", subject="New problem today", frm=frm,
        date=NOW + dt.timedelta(hours=24, minutes=30))
    assert ok(cfg, "run", now=at(dt.timedelta(hours=25))).output == ""
    got = smtp_server.wait_for(2)
    assert len(got) == 2 and got[1].rcpt_tos == ["dana@d.test"]
    assert parsed(got[1])["In-Reply-To"] == "<d4@d.test>", (
        "the second ack went to " + str(parsed(got[1])["In-Reply-To"]))
    assert ok(cfg, "run", now=at(dt.timedelta(hours=26))).output == ""
    assert len(smtp_server.messages) == 2


# ------------------------------------------------------- 5. the only address is the team's


def test_thread_whose_only_address_is_the_teams_is_skipped(tmp_path, mailbox, smtp_server,
                                                           monkeypatch):
    put(mailbox, msgid="f1@customer.test", subject="Order 12",
        frm="Carol Customer <carol@customer.test>",
        headers={"Reply-To": "support@example.com"})
    # a teammate writing from her private address, replies asked to go to the team
    put(mailbox, msgid="f2@home.test", subject="Forwarding a customer call",
        frm="Alice <alice.home@home.test>", headers={"Reply-To": "Support <support@example.com>"})
    put(mailbox, msgid="f3@other.test", subject="Export fails", frm="Bob <bob@other.test>")
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = db_of(cfg)
    f1, f2, f3 = (thread_of(db, m) for m in ("f1@customer.test", "f2@home.test",
                                              "f3@other.test"))

    res = ok(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
    lines = res.stderr.strip().splitlines()
    for tid in (f1, f2):
        [line] = [x for x in lines if x.startswith(f"thread {tid}:")]
        assert "skipped" in line and "support@example.com" in line and "team" in line
    [got] = smtp_server.wait_for(1)
    assert got.rcpt_tos == ["bob@other.test"]
    assert [r[0] for r in db.execute("SELECT thread_id FROM outbox WHERE state = 'sent'")] \
        == [f3]

    res = triage(cfg, "reply", str(f1), "sorry", "--send")
    assert res.exit_code == 1, res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert "support@example.com" in res.stderr and "team" in res.stderr
    assert len(smtp_server.messages) == 1


# --------------------------------------------------------------------- 6. our bounces


def test_bounce_of_our_reply_flags_the_thread_until_a_person_acts(tmp_path, mailbox,
                                                                  smtp_server, monkeypatch):
    put(mailbox, msgid="r1@customer.test", subject="Refund please",
        frm="Carol Customer <carol@customer.test>",
        headers={"Reply-To": "carol@custmer.test"})  # a typo in her mail client
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = db_of(cfg)
    tid = thread_of(db, "r1@customer.test")
    ok(cfg, "reply", str(tid), "sorry", "--send")
    [got] = smtp_server.wait_for(1)
    assert got.rcpt_tos == ["carol@custmer.test"]
    ours = parsed(got)["Message-ID"].strip("<>")

    mailbox.append("INBOX", bounce(ours, "carol@custmer.test", msgid="b1@mx.example.com"),
                   internaldate=NOW + dt.timedelta(minutes=5))
    later = at(dt.timedelta(minutes=10))
    ok(cfg, "sync", now=later)

    [item] = as_json(cfg, "overdue", "--threshold", "30d", now=later)
    assert (item["thread_id"], item["reason"]) == (tid, "bounced")
    assert "carol@custmer.test" in item["detail"] and "5.1.1" in item["detail"]
    [b] = as_json(cfg, "show", str(tid), now=later)["bounces"]
    assert (b["recipient"], b["status"], b["original_id"]) == ("carol@custmer.test", "5.1.1",
                                                                ours)
    # the report itself is automated mail in a thread of its own; nothing was reopened
    report_thread = thread_of(db, "b1@mx.example.com")
    assert report_thread != tid
    threads = threads_by_id(cfg, now=later)
    assert threads[tid]["state"] == "waiting"
    assert threads[report_thread]["state"] == "closed"
    assert "automated" in threads[report_thread]["tags"]
    assert as_json(cfg, "threads", "--state", "open", now=later) == []

    text = ok(cfg, "report", now=later).stdout
    assert "NEEDS A PERSON" in text
    section = text.split("NEEDS A PERSON", 1)[1].split("\n\n", 1)[0]
    [row] = [line for line in section.splitlines() if line.startswith(f"#{tid} ")]
    assert "bounced" in row and "carol@custmer.test" in row

    # reports naming mail that is not ours (the customer's own, or a stranger's) flag nothing
    mailbox.append("INBOX", bounce("r1@customer.test", "x@customer.test",
                                   msgid="b2@mx.example.com"),
                   internaldate=NOW + dt.timedelta(minutes=11))
    mailbox.append("INBOX", bounce("someone@elsewhere.test", "y@elsewhere.test",
                                   msgid="b3@mx.example.com"),
                   internaldate=NOW + dt.timedelta(minutes=12))
    later = at(dt.timedelta(minutes=15))
    ok(cfg, "sync", now=later)
    assert db.execute("SELECT COUNT(*) FROM bounces").fetchone()[0] == 1
    assert [i["thread_id"] for i in as_json(cfg, "overdue", "--threshold", "30d",
                                            now=later)] == [tid]
    assert as_json(cfg, "threads", "--state", "open", now=later) == []

    # a person acted: no longer listed
    ok(cfg, "close", str(tid), now=at(dt.timedelta(minutes=20)))
    assert as_json(cfg, "overdue", "--threshold", "30d",
                   now=at(dt.timedelta(minutes=21))) == []
    assert "NEEDS A PERSON" not in ok(cfg, "report", now=at(dt.timedelta(minutes=21))).stdout


# ------------------------------------------------------------------- 7. and 8. threading


def test_reply_to_mail_without_message_id_stays_in_its_thread(tmp_path, mailbox, smtp_server,
                                                              monkeypatch):
    # old enough that the subject rule (14 days) cannot be what joins the reply
    put(mailbox, msgid=None, subject="Help with my order",
        frm="Carol Customer <carol@customer.test>", date=NOW - dt.timedelta(days=20))
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = db_of(cfg)
    [(tid, synthetic)] = db.execute("SELECT thread_id, message_id FROM messages").fetchall()
    assert synthetic.endswith("@mailtriage.invalid")

    ok(cfg, "reply", str(tid), "sorry", "--send")
    [got] = smtp_server.wait_for(1)
    sent = parsed(got)
    assert sent["In-Reply-To"] is None  # nothing to refer to, and no invented id
    later = at(dt.timedelta(minutes=5))
    ok(cfg, "sync", now=later)
    assert thread_of(db, sent["Message-ID"].strip("<>")) == tid
    [thread] = as_json(cfg, "threads", now=later)
    assert thread["id"] == tid
    assert (thread["message_count"], thread["state"]) == (2, "waiting")
    assert thread["last_sender"] == "us"


def test_customer_resending_as_fwd_joins_the_earlier_thread_a_stranger_does_not(
        tmp_path, mailbox, smtp_server, monkeypatch):
    put(mailbox, msgid="p1@customer.test", subject="Printer on fire",
        frm="Carol Customer <carol@customer.test>", date=NOW - dt.timedelta(hours=5))
    cfg = _config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    db = db_of(cfg)
    first = thread_of(db, "p1@customer.test")

    put(mailbox, msgid="p2@customer.test", subject="Fwd: Printer on fire",
        frm="Carol Customer <carol@customer.test>", body="Sending this again: any news?",
        date=NOW - dt.timedelta(hours=1))
    put(mailbox, msgid="x1@stranger.test", subject="Fwd: Printer on fire",
        frm="Sam Stranger <sam@stranger.test>", body="Look at this funny subject line.",
        date=NOW - dt.timedelta(minutes=30))
    ok(cfg, "sync")
    assert thread_of(db, "p2@customer.test") == first
    stranger = thread_of(db, "x1@stranger.test")
    assert stranger != first
    threads = threads_by_id(cfg)
    assert set(threads) == {first, stranger}
    assert threads[first]["message_count"] == 2 and threads[stranger]["message_count"] == 1
    assert threads[first]["waiting_since"] == iso(NOW - dt.timedelta(hours=5))

