"""Replies a person writes: `reply --edit` (a real editor process), `--body`, free-form, and
the customer's whole message quoted -- fetched from the test Dovecot at reply time."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import stat
import sys
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailtriage import quoting
from mailtriage.config import load_config
from mailtriage.store import open_db

from support.cli import ok, triage
from support.mailfactory import NOW, write_config

EDITOR = r'''
import json, os, pathlib, stat, sys
path = pathlib.Path(sys.argv[-1])
log = pathlib.Path(os.environ["EDIT_LOG"])
log.write_text(json.dumps({"path": str(path), "mode": stat.S_IMODE(path.stat().st_mode),
                           "text": path.read_text()}))
mode = os.environ["EDIT_MODE"]
head, _, body = path.read_text().partition("\n\n")
if mode == "append":
    path.write_text(head + "\n\n" + body + "\nP.S. I checked your account myself.\n")
elif mode == "empty":
    path.write_text(head + "\n\n\n")
elif mode == "hostile-to":
    path.write_text(head.replace("To: ", "To: =?utf-8?q?a=0D=0Ab?=@x.test, ", 1) + "\n\n" + body)
elif mode == "team-to":
    lines = [("To: support@example.com" if l.startswith("To:") else l)
             for l in head.splitlines()]
    path.write_text("\n".join(lines) + "\n\n" + body)
'''
LONG_PREFIX = "Here is everything that happened. " * 80  # ~2.7 KB: past the stored snippet
DEEP = "The export stops at row 4711 every time."


def _customer_mail() -> bytes:
    """multipart/alternative, its text part quoted-printable in Latin-1, the telling sentence
    past the 2 KB sync keeps, then their own quoted history and signature."""
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = "Zoë Kunde <zoe@kunde.test>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Export fails"
    msg["Date"] = format_datetime(NOW - dt.timedelta(hours=30))
    msg["Message-ID"] = "<q1@kunde.test>"
    text = (f"Grüße! {LONG_PREFIX}\n{DEEP}\n\nOn Monday, Support wrote:\n> try again\n"
            "-- \nZoë Kunde, Kunde GmbH\n")
    msg.set_content(text, charset="iso-8859-1", cte="quoted-printable")
    msg.add_alternative("<p>html version</p>", subtype="html")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@pytest.fixture
def edit_env(tmp_path, mailbox, smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", smtp_server.password)
    mailbox.append("INBOX", _customer_mail(), internaldate=NOW - dt.timedelta(hours=30))
    smtp = {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
            "username": smtp_server.username, "password_env": "TEST_SMTP_PASSWORD"}
    cfg = write_config(tmp_path, mailbox, smtp=smtp,
                       agent={"name": "Sam", "signature": "Example Support"})
    ok(cfg, "sync")
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDIT_LOG", str(tmp_path / "edit.json"))
    [thread] = json.loads(ok(cfg, "threads", "--json").stdout)
    return cfg, smtp_server, str(thread["id"]), tmp_path / "edit.json"


def _sent(server) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(m.raw, policy=email.policy.default)
            for m in server.messages]


def _outbox(cfg) -> list[dict]:
    db = open_db(load_config(cfg).db_path)
    return [dict(r) for r in db.query("SELECT template, state, to_addr FROM outbox")]


def test_a_template_finished_in_the_editor_is_sent_as_edited(edit_env, monkeypatch):
    cfg, server, tid, log = edit_env
    monkeypatch.setenv("EDIT_MODE", "append")
    ok(cfg, "reply", tid, "sorry", "--edit", "--send")
    [sent] = _sent(server)
    body = sent.get_body(("plain",)).get_content()
    assert "sorry you're having this problem" in body and "P.S. I checked your account" in body
    assert sent["In-Reply-To"] == "<q1@kunde.test>" and str(sent["To"]) == "zoe@kunde.test"
    assert _outbox(cfg) == [{"template": "sorry", "state": "sent", "to_addr": "zoe@kunde.test"}]
    edited = json.loads(log.read_text())
    assert edited["mode"] == 0o600 and not Path(edited["path"]).exists()
    assert edited["text"].startswith("To: zoe@kunde.test\nCc: \nSubject: Re: Export fails\n")


@pytest.mark.parametrize(("mode", "words"), [
    ("none", "not changed: nothing sent"),
    ("empty", "text is empty: nothing sent"),
    ("hostile-to", "To: cannot send to"),
    ("team-to", "team's own address"),
])
def test_an_edit_left_unchanged_empty_or_with_a_bad_address_sends_nothing(
        edit_env, monkeypatch, mode, words):
    cfg, server, tid, _ = edit_env
    monkeypatch.setenv("EDIT_MODE", mode)
    result = triage(cfg, "reply", tid, "sorry", "--edit", "--send")
    assert result.exit_code == 1, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert server.messages == [] and _outbox(cfg) == []


def test_a_free_form_reply_starts_with_the_customers_whole_message_quoted(edit_env,
                                                                          monkeypatch):
    cfg, server, tid, log = edit_env
    monkeypatch.setenv("EDIT_MODE", "append")
    ok(cfg, "reply", tid, "--edit", "--send")
    started = json.loads(log.read_text())["text"]
    assert "Hi Zoë Kunde," in started and "Example Support" in started
    assert "Zoë Kunde <zoe@kunde.test> wrote:\n> Grüße! Here is everything" in started
    assert f"> {DEEP}" in started  # past the snippet: fetched from the server
    assert "try again" not in started and "Kunde GmbH" not in started  # their history, sig
    [sent] = _sent(server)
    assert f"> {DEEP}" in sent.get_body(("plain",)).get_content()
    assert _outbox(cfg)[0]["template"] == "(free-form)"


def test_a_body_written_elsewhere_is_sent_with_the_same_threading(edit_env, tmp_path):
    cfg, server, tid, _ = edit_env
    ok(cfg, "reply", tid, "--body", "-", "--send", input="Fixed in 2.4.1, sorry!\n")
    [sent] = _sent(server)
    assert sent.get_body(("plain",)).get_content().strip() == "Fixed in 2.4.1, sorry!"
    assert sent["References"] == "<q1@kunde.test>" and sent["Subject"] == "Re: Export fails"
    assert triage(cfg, "reply", tid, "--body", "-", "--send", input="  \n").exit_code == 1
    assert len(server.messages) == 1


def test_a_template_may_quote_the_customer(edit_env, tmp_path):
    cfg, _, tid, _ = edit_env
    folder = tmp_path / "templates" / "replies"
    folder.mkdir(parents=True)
    (folder / "quoted.j2").write_text("---\nquote: true\n---\nHi {{ customer.name }},\n\n"
                                      "Looking into it.\n{% if quote %}\n"
                                      "{{ thread.last_customer.quoted }}\n{% endif %}\n")
    preview = ok(cfg, "reply", tid, "quoted").stdout
    assert f"> {DEEP}" in preview
    assert DEEP not in ok(cfg, "reply", tid, "sorry").stdout  # quote: false by default


def test_a_reply_needs_a_template_an_edit_or_a_body(edit_env):
    cfg, _, tid, _ = edit_env
    assert triage(cfg, "reply", tid).exit_code == 2
    assert triage(cfg, "reply", "--overdue", "sorry", "--edit").exit_code == 2


# -- pure --------------------------------------------------------------------------------


def test_quoting_trims_their_history_and_signature():
    text = ("Hello,\n\nit broke again.\n\nThanks\nAnn\n-- \nAnn, ACME\n"
            "On Mon, 1 Dec 2026, Support wrote:\n> old\n")
    assert quoting.quote(text) == "> Hello,\n>\n> it broke again.\n>\n> Thanks\n> Ann"
    assert quoting.quote("Am 1.12.2026 schrieb Support <s@x>:\n> alt") == ">"
    assert quoting.trim("first\n> quoted\nlast") == "first"


def test_the_snippet_stands_in_when_the_server_cannot_be_asked():
    def broken() -> str:
        raise OSError("no route to host")

    last = quoting.LastCustomer({"from_addr": "a@x.test", "snippet": "short\x1b[2J text"},
                                broken)
    assert last.text == "short text" and last.quoted == "> short text"  # escapes stripped


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_edit_files_are_private():  # what click.edit relies on: mkstemp's 0600
    import tempfile

    fd, name = tempfile.mkstemp()
    try:
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    finally:
        os.close(fd)
        os.unlink(name)
