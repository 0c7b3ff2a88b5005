"""Who we write to and who counts as us, against the real Dovecot and SMTP servers.

Hostile address headers never crash a run or a reply and never reach the wire; a display
name never makes a stranger one of us; replies go to the right people and greet the one
written to.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailtriage import addresses
from mailtriage.config import SMTPConfig, load_config
from mailtriage.store import open_db

from support.cli import ok, triage
from support.mailfactory import NOW, mail, write_config

AGENT = {"name": "Alex from Support", "address": "support@example.com"}
TEAM = {"support@example.com"}
_users = itertools.count(1)


def smtp_block(server):
    return {"host": server.host, "port": server.port, "security": "none",
            "username": server.username, "password_env": "TEST_SMTP_PASSWORD", "timeout": 10}


def config(tmp_path, mb, server, monkeypatch, **extra):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mb.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", server.password)
    extra.setdefault("smtp", smtp_block(server))
    extra.setdefault("agent", AGENT)
    return write_config(tmp_path, mb, **extra)


def raw_mail(headers: dict[str, str], body: str = "Hello, I need help.\r\n") -> bytes:
    lines = [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def customer(mb, msgid, subject="Help", frm="Carol <carol@customer.test>", hours=30, **extra):
    headers = {"From": frm, "To": "support@example.com", "Subject": subject,
               "Date": email.utils.format_datetime(NOW - dt.timedelta(hours=hours)),
               "Message-ID": f"<{msgid}>", **extra}
    mb.append("INBOX", raw_mail(headers), internaldate=NOW - dt.timedelta(hours=hours))


def thread_of(cfg, msgid):
    db = open_db(load_config(cfg).db_path)
    return db.execute("SELECT thread_id FROM messages WHERE message_id = ?", [msgid]).fetchone()[0]


def wire(server):
    """(envelope recipients, parsed message) of everything the SMTP server received."""
    return [(m.rcpt_tos, email.message_from_bytes(m.raw, policy=email.policy.default))
            for m in server.messages]


HOSTILE_REPLY_TO = [
    "=?utf-8?q?a=0D=0Ab?=@cust.test",  # decodes to a line break
    "=?utf-8?q?support@example.com?=",  # decodes to our own address
    "=?utf-8?q?=00?=@cust.test",  # a NUL
    "=?utf-8?q?victim@other.test,_evil@x.test?=",  # two addresses in one
]


@pytest.mark.parametrize("reply_to", HOSTILE_REPLY_TO)
def test_a_hostile_reply_to_never_stops_the_run_nor_reaches_the_wire(
        tmp_path, mailbox, smtp_server, monkeypatch, reply_to):
    customer(mailbox, "bad@cust.test", subject="Hostile", hours=1, **{"Reply-To": reply_to})
    customer(mailbox, "good@other.test", subject="Fine", frm="Dan <dan@other.test>", hours=1)
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch,
                 auto_ack={"template": "sorry", "after": "15m"},
                 report={"to": ["lead@example.com"], "at": "00:00", "timezone": "UTC"})
    first = triage(cfg, "run")
    # the bad thread is recorded and named in one line; everyone else still gets theirs
    assert first.exit_code == 1 and "Traceback" not in first.output
    [line] = first.stderr.strip().splitlines()
    assert line.startswith("Error: auto_ack thread ") and "not sent" in line
    sent = wire(smtp_server)
    assert sorted(tuple(r) for r, _m in sent) == [("dan@other.test",), ("lead@example.com",)]
    report = next(m for r, m in sent if r == ["lead@example.com"])
    assert "NEEDS A PERSON" in report.get_body(("plain",)).get_content()
    bad = thread_of(cfg, "bad@cust.test")
    db = open_db(load_config(cfg).db_path)
    [row] = db.query("SELECT * FROM outbox WHERE thread_id = ?", [bad])
    assert (row["state"], row["permanent"], row["auto"]) == ("failed", 1, 1)
    # recorded once: the next runs are quiet and send nothing to it
    later = triage(cfg, "run", now=NOW + dt.timedelta(minutes=5))
    assert later.exit_code == 0 and later.output == ""
    assert len(smtp_server.messages) == 2
    # a person gets one line too, by hand and in bulk
    by_hand = triage(cfg, "reply", str(bad), "sorry")
    assert by_hand.exit_code == 1 and len(by_hand.stderr.strip().splitlines()) == 1
    assert "Traceback" not in by_hand.output
    bulk = triage(cfg, "reply", "--overdue", "need-info", "--send", "--yes",
                  now=NOW + dt.timedelta(days=2))
    assert f"thread {bad}: skipped" in bulk.stderr and bulk.exit_code == 0
    assert [r for r, _m in wire(smtp_server)][-1] == ["dan@other.test"]
    assert all(addresses.is_valid(r) and r not in TEAM for rcpts, _m in wire(smtp_server)
               for r in rcpts)


def test_a_display_name_that_looks_like_ours_is_a_customer(tmp_path, mailbox, smtp_server,
                                                          monkeypatch):
    customer(mailbox, "q@customer.test", subject="Refund please")
    mailbox.append("INBOX", mail(
        msgid="fake@evil.test", subject="Re: Refund please", in_reply_to="q@customer.test",
        frm="support@example.com <attacker@evil.test>", date=NOW - dt.timedelta(hours=29)),
        internaldate=NOW - dt.timedelta(hours=29))
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    tid = thread_of(cfg, "q@customer.test")
    items = json.loads(ok(cfg, "overdue", "--json").stdout)
    assert [i["thread_id"] for i in items] == [tid]  # still waiting on us
    explained = json.loads(ok(cfg, "explain", str(tid), "--json").stdout)
    assert [m["kind"] for m in explained["messages"]] == ["customer", "customer"]
    assert explained["messages"][1]["from"] == "attacker@evil.test"


def test_reply_all_to_the_right_people_greeting_the_one_written_to(tmp_path, mailbox,
                                                                  smtp_server, monkeypatch):
    customer(mailbox, "r1@rosa.test", subject="Our export", frm="Rosa Diaz <rosa@rosa.test>",
             Cc="Amir Khan <amir@rosa.test>, support-bot@example.com", hours=31)
    customer(mailbox, "r2@rosa.test", subject="Re: Our export", frm="Amir Khan <amir@rosa.test>",
             Cc="rosa@rosa.test, noreply@tracker.test", hours=30,
             **{"In-Reply-To": "<r1@rosa.test>", "References": "<r1@rosa.test>"})
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    tid = thread_of(cfg, "r1@rosa.test")
    shown = ok(cfg, "reply", str(tid), "sorry").stdout
    preview = email.message_from_string(shown, policy=email.policy.default)
    assert preview["To"] == "amir@rosa.test" and preview["Cc"] == "rosa@rosa.test"
    assert preview.get_content().startswith("Hi Amir Khan,")
    ok(cfg, "reply", str(tid), "sorry", "--send")
    [(rcpts, msg)] = wire(smtp_server)
    assert rcpts == ["amir@rosa.test", "rosa@rosa.test"]  # never the team, never a no-reply
    assert (msg["To"], msg["Cc"]) == ("amir@rosa.test", "rosa@rosa.test")
    smtp_server.clear()
    solo = ok(cfg, "reply", str(tid), "resolved", "--no-cc").stdout
    assert "Cc:" not in solo


@pytest.mark.parametrize("reply_to, greeting", [
    ("jane@gmail.test", "Hi there,"),  # a form's Reply-To: its From name is not hers
    ("Jane Doe <jane@gmail.test>", "Hi Jane Doe,"),
])
def test_a_contact_form_is_not_greeted_by_name(tmp_path, mailbox, smtp_server, monkeypatch,
                                               reply_to, greeting):
    customer(mailbox, "form@site.test", subject="Contact form: pricing",
             frm="Website Contact Form <form@site.test>", **{"Reply-To": reply_to})
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    shown = ok(cfg, "reply", str(thread_of(cfg, "form@site.test")), "sorry").stdout
    msg = email.message_from_string(shown, policy=email.policy.default)
    assert msg["To"] == "jane@gmail.test" and msg.get_content().startswith(greeting)


def test_the_preview_is_readable_and_raw_is_mime(tmp_path, mailbox, smtp_server, monkeypatch):
    customer(mailbox, "z@kunde.test", subject="Überweisung", frm="Zoë <zoe@kunde.test>")
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch,
                 agent={**AGENT, "signature": "Grüße aus Köln"})
    ok(cfg, "sync")
    tid = str(thread_of(cfg, "z@kunde.test"))
    shown = ok(cfg, "reply", tid, "sorry").stdout
    assert "Grüße aus Köln" in shown and "Subject: Re: Überweisung" in shown
    assert "=C3" not in shown and "=?utf-8?" not in shown
    raw = ok(cfg, "reply", tid, "sorry", "--raw").stdout
    assert "Content-Transfer-Encoding: quoted-printable" in raw and "Gr=C3=BC=C3=9Fe" in raw


def test_bulk_without_a_terminal_needs_yes(tmp_path, mailbox, smtp_server, monkeypatch):
    customer(mailbox, "q@customer.test")
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    res = triage(cfg, "reply", "--overdue", "sorry", "--send")  # stdin is not a terminal
    assert res.exit_code == 2 and "--yes" in res.stderr
    assert smtp_server.messages == []
    ok(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
    assert len(smtp_server.wait_for(1)) == 1


def _auth_config(tmp_path, mb, server, monkeypatch):
    return config(tmp_path, mb, server, monkeypatch,
                  team={"addresses": ["support@example.com"], "domains": ["example.com"],
                        "trust": "authenticated", "authserv_id": "mx.example.com"})


@pytest.mark.parametrize("results, ours", [
    (None, False),  # no Authentication-Results: a stranger may have written it
    ("mx.example.com; dkim=pass header.d=example.com header.s=k1", True),
    ("mx.example.com; spf=pass (sender ok) smtp.mailfrom=alice@example.com", True),
    ("mx.example.com; dkim=fail header.d=example.com; spf=softfail smtp.mailfrom=example.com",
     False),
    ("mx.evil.test; dkim=pass header.d=example.com", False),  # not our server's word
    ("mx.example.com; dkim=pass header.d=evil.test", False),  # not our domain
])
def test_trust_authenticated_counts_team_mail_in_the_inbox_only_when_vouched_for(
        tmp_path, mailbox, smtp_server, monkeypatch, results, ours):
    customer(mailbox, "q@customer.test", subject="Invoice")
    extra = {"Authentication-Results": results} if results else {}
    mailbox.append("INBOX", raw_mail({
        "From": "Alice <alice@example.com>", "To": "carol@customer.test",
        "Subject": "Re: Invoice", "Message-ID": "<a1@example.com>",
        "In-Reply-To": "<q@customer.test>",
        "Date": email.utils.format_datetime(NOW - dt.timedelta(hours=29)), **extra}),
        internaldate=NOW - dt.timedelta(hours=29))
    cfg = _auth_config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    tid = thread_of(cfg, "q@customer.test")
    waiting = [i["thread_id"] for i in json.loads(ok(cfg, "overdue", "--json").stdout)]
    assert (waiting == []) == ours
    explained = json.loads(ok(cfg, "explain", str(tid), "--json").stdout)
    assert explained["messages"][1]["kind"] == ("us" if ours else "customer")


def test_trust_authenticated_believes_the_sent_folder(tmp_path, mailbox, smtp_server,
                                                     monkeypatch):
    customer(mailbox, "q@customer.test", subject="Invoice")
    mailbox.append("Sent", mail(msgid="a1@example.com", subject="Re: Invoice",
                                frm="Alice <alice@example.com>", to="carol@customer.test",
                                in_reply_to="q@customer.test",
                                date=NOW - dt.timedelta(hours=29)),
                   internaldate=NOW - dt.timedelta(hours=29))
    cfg = _auth_config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    assert json.loads(ok(cfg, "overdue", "--json").stdout) == []


def test_provider_sent_copies_are_not_appended_again():
    assert not SMTPConfig(host="smtp.gmail.com").appends_sent_copy
    assert not SMTPConfig(host="SMTP.Office365.com.").appends_sent_copy
    assert SMTPConfig(host="mail.example.com").appends_sent_copy
    assert SMTPConfig(host="smtp.gmail.com", sent_copy="append").appends_sent_copy
    assert not SMTPConfig(host="mail.example.com", sent_copy="none").appends_sent_copy


def test_microsofts_rewritten_sent_copy_is_our_reply(tmp_path, mailbox, smtp_server,
                                                     monkeypatch):
    customer(mailbox, "q@customer.test", subject="Login")
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch,
                 smtp={**smtp_block(smtp_server), "sent_copy": "none"})
    ok(cfg, "sync")
    tid = thread_of(cfg, "q@customer.test")
    ok(cfg, "reply", str(tid), "sorry", "--send")
    [sent] = smtp_server.messages
    ours = email.message_from_bytes(sent.raw, policy=email.policy.default)["Message-ID"]
    # what Exchange files: a new Message-ID, ours kept aside, no threading headers
    copy = sent.raw.replace(b"Message-ID: " + ours.encode(),
                            b"Message-ID: <AM0PR01MB1@eurprd01.prod.outlook.com>\r\n"
                            b"X-Microsoft-Original-Message-ID: " + ours.encode())
    copy = b"".join(line for line in copy.splitlines(keepends=True)
                    if not line.startswith((b"In-Reply-To:", b"References:")))
    mailbox.append("Sent", copy, internaldate=NOW)
    ok(cfg, "sync", now=NOW + dt.timedelta(minutes=5))
    shown = json.loads(ok(cfg, "show", str(tid), "--json").stdout)
    assert len(shown["messages"]) == 2 and shown["state"] == "waiting"
    db = open_db(load_config(cfg).db_path)
    assert db["threads"].count == 1
    assert db.execute("SELECT message_count FROM threads").fetchone()[0] == 2


# -- the property: whatever the headers say, nothing invalid reaches the wire -------------

names = st.sampled_from(["", "Carol", "support@example.com", '"a, b"', "=?utf-8?q?x=0D=0Ay?=",
                         "=?utf-8?q?Bob_<evil@x.test>?=", "Mallory\r\n Bcc: evil@x.test"])
specs = st.sampled_from([
    "carol@customer.test", "Carol.Two@Customer.test", '"x, y"@cust.test', "support@example.com",
    "alice@eu.example.com", "=?utf-8?q?a=0D=0Ab?=@cust.test", "=?utf-8?q?support@example.com?=",
    "=?utf-8?q?=00?=@cust.test", "=?utf-8?q?victim@other.test,_evil@x.test?=", "<>", "no-at",
    "a@b@c", "josé@exämple.test", "evil@x.test\u202e", "undisclosed-recipients:;"])
mailbox_text = st.one_of(
    specs, st.builds(lambda n, s: f"{n} <{s}>", names, specs),
    st.builds(lambda a, b: f"{a}, {b}", specs, specs),
    st.builds(lambda n, s: f"{n} {s}", names, specs))


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frm=mailbox_text, reply_to=st.none() | mailbox_text, cc=st.none() | mailbox_text)
def test_hostile_address_headers_never_raise_and_never_reach_the_wire(
        tmp_path_factory, dovecot, smtp_server, monkeypatch, frm, reply_to, cc):
    smtp_server.clear()
    mb = dovecot.add_user(f"hostile-address-{next(_users)}@example.com", "pw-hostile")
    headers = {"Reply-To": reply_to} if reply_to else {}
    if cc:
        headers["Cc"] = cc
    customer(mb, "h@cust.test", subject="Hostile", frm=frm, hours=1, **headers)
    cfg = config(tmp_path_factory.mktemp("hostile"), mb, smtp_server, monkeypatch,
                 auto_ack={"template": "sorry", "after": "15m"})
    team = load_config(cfg).team
    for args in (("run",), ("reply", "1", "sorry"),
                 ("reply", "1", "resolved", "--send", "--force")):
        res = triage(cfg, *args)
        assert res.exit_code in (0, 1) and "Traceback" not in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    for rcpts, msg in wire(smtp_server):
        assert rcpts and all(addresses.canonical(r) == r and not team.is_us(r) for r in rcpts)
        head = [addresses.read_list(str(msg[h])) for h in ("To", "Cc") if msg[h] is not None]
        on_headers = [m.addr for found in head for m in found]
        assert all(m.valid for found in head for m in found) and on_headers == rcpts
        raw = next(m.raw for m in smtp_server.messages if m.rcpt_tos == rcpts)
        top = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\x00" not in top and b"\nBcc:" not in top.replace(b"\r\n", b"\n")


def test_a_quoted_local_part_is_answered_end_to_end(tmp_path, mailbox, smtp_server, monkeypatch):
    """``"x, y"@cust.test`` is one valid address: synced, answered, and on the wire whole."""
    customer(mailbox, "q1@cust.test", frm='Quoted <"x, y"@cust.test>')
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    ok(cfg, "reply", str(thread_of(cfg, "q1@cust.test")), "sorry", "--send")
    [(rcpts, msg)] = wire(smtp_server)
    assert rcpts == ['"x, y"@cust.test']
    assert [m.addr for m in addresses.read_list(msg["To"])] == ['"x, y"@cust.test']


def test_an_encoded_name_with_a_colon_leaves_the_address_alone(tmp_path, mailbox, smtp_server,
                                                                monkeypatch):
    customer(mailbox, "c1@cust.test", frm="=?utf-8?q?Support:_urgent?= <_x@evil.test>")
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    ok(cfg, "reply", str(thread_of(cfg, "c1@cust.test")), "sorry", "--send")
    [(rcpts, msg)] = wire(smtp_server)
    assert rcpts == ["_x@evil.test"] and msg["To"] == "_x@evil.test"


def test_the_address_after_a_megabyte_of_name_is_found(tmp_path, mailbox, smtp_server,
                                                        monkeypatch):
    """The 64 KB guard on decoding must not cut the address off the end of a From."""
    customer(mailbox, "m1@cust.test", frm="A" * 1_000_000 + " <real@cust.test>")
    cfg = config(tmp_path, mailbox, smtp_server, monkeypatch)
    ok(cfg, "sync")
    tid = thread_of(cfg, "m1@cust.test")
    db = open_db(load_config(cfg).db_path)
    assert db.execute("SELECT from_addr FROM messages WHERE thread_id = ?",
                      [tid]).fetchone()[0] == "real@cust.test"
    ok(cfg, "reply", str(tid), "sorry", "--send")
    [(rcpts, _msg)] = wire(smtp_server)
    assert rcpts == ["real@cust.test"]
