"""`triage work` in a real pseudo-terminal (pexpect), against the test Dovecot and SMTP
servers: what a session does is exactly what reaches the server and the database."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

import pexpect
import pytest

from mailtriage.config import load_config
from mailtriage.store import open_db

from support.cli import ok, triage
from support.mailfactory import NOW, put, write_config

EDITOR = r'''
import pathlib, sys
path = pathlib.Path(sys.argv[-1])
path.write_text(path.read_text().replace("\n\n", "\n\nThanks, this is fixed now.\n", 1))
'''
SUBJECTS = ["Export fails", "Invoice wrong", "Cannot log in", "Sync slow"]


@pytest.fixture
def queue(tmp_path, mailbox, smtp_server, monkeypatch):
    """Four overdue threads, the oldest first in SUBJECTS' order."""
    for n, subject in enumerate(SUBJECTS):
        put(mailbox, msgid=f"q{n}@cust.test", subject=subject, frm=f"C{n} <c{n}@cust.test>",
            date=NOW - dt.timedelta(hours=60 - n))
    smtp = {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
            "username": smtp_server.username, "password_env": "TEST_SMTP_PASSWORD"}
    cfg = write_config(tmp_path, mailbox, smtp=smtp)
    env = {**os.environ, "TEST_IMAP_PASSWORD": mailbox.password,
           "TEST_SMTP_PASSWORD": smtp_server.password, "TERM": "xterm", "NO_COLOR": "1"}
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    ok(cfg, "sync")
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    env["EDITOR"] = f"{sys.executable} {editor}"
    env.pop("VISUAL", None)
    return cfg, env, smtp_server, mailbox


def _spawn(cfg, env) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "mailtriage", "--config", str(cfg), "--now",
                                          NOW.isoformat(), "work"],
                         env=env, encoding="utf-8", timeout=60, dimensions=(50, 160))


def _states(cfg) -> dict[str, str]:
    db = open_db(load_config(cfg).db_path)
    return {r["subject"]: r["state"] for r in db.query(
        "SELECT t.subject, s.state FROM threads t JOIN thread_state s ON s.thread_id = t.id")}


def test_a_session_replies_closes_snoozes_and_quits(queue):
    cfg, env, server, _ = queue
    child = _spawn(cfg, env)
    child.expect(r"\[1/4\] Thread \d+: Export fails")
    child.send("r")
    child.expect("template \\(number or name")
    child.sendline("sorry")
    child.expect(r"\[2/4\] Thread \d+: Invoice wrong")
    child.send("e")  # the editor script writes a line of text and saves
    child.expect(r"\[3/4\] Thread \d+: Cannot log in")
    child.send("c")
    child.expect(r"\[4/4\] Thread \d+: Sync slow")
    child.send("s")
    child.expect("snooze until")
    child.sendline("3d")
    child.expect(r"\[4/4\]")
    child.send("q")
    child.expect("2 answered, 0 drafted, 1 closed, 1 snoozed, 0 skipped")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    sent = {m.rcpt_tos[0]: m.raw for m in server.messages}
    assert set(sent) == {"c0@cust.test", "c1@cust.test"}
    assert b"Thanks, this is fixed now." in sent["c1@cust.test"]
    assert _states(cfg) == {"Export fails": "waiting", "Invoice wrong": "waiting",
                            "Cannot log in": "closed", "Sync slow": "snoozed"}
    causes = [h["cause"] for h in json.loads(ok(cfg, "show", "3", "--json").stdout)["history"]
              if h["field"] == "state"]
    assert causes[-1] == "cli"


def test_a_teammates_reply_after_the_thread_was_shown_is_detected(queue):
    cfg, env, server, mailbox = queue
    child = _spawn(cfg, env)
    child.expect(r"\[1/4\] Thread \d+: Export fails")
    put(mailbox, msgid="team1@example.com", subject="Re: Export fails",
        frm="Dana <dana@example.com>", to="c0@cust.test", in_reply_to="q0@cust.test",
        date=NOW - dt.timedelta(minutes=5))
    child.send("r")
    child.expect("template \\(number or name")
    child.sendline("sorry")
    child.expect("not sent: someone else is on it")
    child.send("q")
    child.expect("0 answered, 0 drafted, 0 closed, 0 snoozed, 1 skipped")
    child.expect(pexpect.EOF)
    child.close()
    assert server.messages == []


def test_work_needs_a_terminal(queue):
    cfg, *_ = queue
    result = triage(cfg, "work")
    assert result.exit_code == 2 and "needs a terminal" in result.output


def test_o_opens_the_thread_in_the_browser_view_when_serve_runs(queue, tmp_path):
    """`o` asks the running `triage serve` first; $BROWSER (a script here) gets the URL."""
    from support.browser import triage_serve

    cfg, env, _, _ = queue
    opened = tmp_path / "opened.txt"
    opener = tmp_path / "browser.sh"
    opener.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    opener.chmod(0o755)
    env = {**env, "BROWSER": str(opener), "TRIAGE_SERVE_URL": "http://127.0.0.1:9"}
    child = _spawn(cfg, env)
    child.expect(r"\[1/4\] Thread (\d+): Export fails")
    tid = child.match.group(1)
    child.send("o")
    child.expect("no browser view at http://127.0.0.1:9")
    child.send("q")
    child.expect(pexpect.EOF)
    with triage_serve(["--config", str(cfg), "--now", NOW.isoformat()], env=env) as base:
        child = _spawn(cfg, {**env, "TRIAGE_SERVE_URL": base})
        child.expect(r"\[1/4\] Thread")
        child.send("o")
        child.send("q")
        child.expect(pexpect.EOF)
    assert opened.read_text().split() == [f"{base}/-/thread/{tid}"]
