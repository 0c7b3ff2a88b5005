"""Mail to customers is sent exactly once, or flagged for a person (scripts/outbox.py).

Every test runs the real CLI against the session's Dovecot and a real SMTP server that
misbehaves on purpose (tests/support/smtp_faults.py): the final 250 lost, an answer slower than
``smtp.timeout``, a definite refusal, the process stopped (SIGTERM) or killed (SIGKILL)
between DATA and recording the answer, or while filing the Sent copy.  Whatever happens,
the server never gets a second copy unless a person says ``--force``, and a reply whose
fate nobody knows is listed (``overdue``, ``show``, ``outbox``, the report) until settled.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailtriage.config import load_config

from support import mailfactory
from support.cli import ok, triage
from support.faultproxy import Pass, Stall, via
from support.mailfactory import NOW, write_config
from support.smtp_faults import FaultySMTP

PASSWORD_VAR = "TEST_IMAP_PASSWORD"
CLI = [sys.executable, "-c", "from mailtriage.cli import cli; cli()"]
AGENT = {"name": "Alex from Support", "address": "support@example.com"}
ACK = {"template": "sorry", "after": "15m"}
CAROL = "carol@customer.test"
DAVE = "dave@d.test"
MINUTES = dt.timedelta(minutes=1)


# -- set-up ----------------------------------------------------------------------------------


def configure(tmp_path: Path, account: Any, monkeypatch: pytest.MonkeyPatch,
              server: FaultySMTP, *, timeout: float = 5, smtp: dict[str, Any] | None = None,
              **extra: Any) -> Path:
    """A config for ``account`` (a Dovecot account, or one seen through the proxy) sending
    through ``server`` (plain SMTP on loopback, no AUTH)."""
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    block = {"host": server.host, "port": server.port, "security": "none",
             "timeout": timeout, **(smtp or {})}
    return write_config(tmp_path, account, smtp=block, agent=AGENT, **extra)


def ask(mailbox: Any, frm: str = f"Carol Customer <{CAROL}>", msgid: str = "q1@customer.test",
        subject: str = "Login broken", waited: dt.timedelta = dt.timedelta(hours=30)) -> None:
    """A customer question in INBOX that arrived ``waited`` before NOW (30 h: overdue)."""
    mailfactory.put(mailbox, msgid=msgid, subject=subject, frm=frm, date=NOW - waited)


def spawn(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    """``triage`` in a process of its own (to be stopped or killed), same environment."""
    return subprocess.Popen([*CLI, "--config", str(cfg), "--now", NOW.isoformat(), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes] | None = None,
               timeout: float = 15.0, what: str = "the condition") -> None:
    """Poll ``condition`` (bounded); fail early, with its stderr, if ``proc`` has ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"triage ended ({proc.returncode}) before {what}: {err.decode()}")
        if time.monotonic() > deadline:
            if proc is not None:
                proc.kill()
                proc.communicate()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def query(cfg: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read the database with a fresh connection (it sees what other processes committed)."""
    conn = sqlite3.connect(str(load_config(cfg).db_path), timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def thread_of(cfg: Path, msgid: str = "q1@customer.test") -> int:
    [row] = query(cfg, "SELECT thread_id FROM messages WHERE message_id = ?", (msgid,))
    return int(row[0])


def state_of(cfg: Path, tid: int) -> str:
    [row] = query(cfg, "SELECT state FROM thread_state WHERE thread_id = ?", (tid,))
    return str(row[0])


def outbox_rows(cfg: Path, tid: int) -> list[sqlite3.Row]:
    return query(cfg, "SELECT * FROM outbox WHERE thread_id = ? AND kind = 'reply' ORDER BY id",
                 (tid,))


def to_customers(server: FaultySMTP) -> list[Any]:
    return [m for m in server.received if "lead@example.com" not in m.rcpt_tos]


def needs_a_person(cfg: Path, tid: int, now: dt.datetime = NOW) -> list[str]:
    """The reasons ``overdue --json --threshold 30d`` lists ``tid`` for (any threshold)."""
    items = json.loads(ok(cfg, "overdue", "--json", "--threshold", "30d", now=now).stdout)
    return [i["reason"] for i in items if i["thread_id"] == tid]


# -- 1. the final 250 never comes ----------------------------------------------------------


def test_lost_final_250_is_unknown_never_resent_and_listed_until_resolved(
        tmp_path, mailbox, monkeypatch):
    ask(mailbox, waited=dt.timedelta(hours=1))
    with FaultySMTP(mode="close_after_data") as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, auto_ack=ACK)
        runs = [triage(cfg, "run", "--no-report", now=NOW + n * 5 * MINUTES) for n in range(3)]
        tid = thread_of(cfg)

        # the server has it once; the first run says so, the later ones send nothing
        assert len(server.received) == 1
        assert server.received[0].rcpt_tos == [CAROL]
        assert runs[0].exit_code == 1, runs[0].output
        assert any(line.startswith("Error:") and f"thread {tid}" in line and "unknown" in line
                   for line in runs[0].stderr.splitlines()), runs[0].stderr
        assert [r.exit_code for r in runs[1:]] == [0, 0], [r.output for r in runs[1:]]
        [row] = outbox_rows(cfg, tid)
        assert (row["state"], row["auto"], row["resolved_at"]) == ("unknown", 1, None)
        assert "waiting for the server's answer" in row["error"]
        oid = row["id"]

        later = NOW + 10 * MINUTES
        assert "delivery_unknown" in needs_a_person(cfg, tid, later)
        everything = json.loads(ok(cfg, "overdue", "--json", now=later).stdout)
        assert {"thread_id": tid, "reason": "delivery_unknown"}.items() <= next(
            i for i in everything if i["thread_id"] == tid).items()
        shown = json.loads(ok(cfg, "show", str(tid), "--json", now=later).stdout)
        assert [(o["id"], o["state"]) for o in shown["outbox"]] == [(oid, "unknown")]
        listed = json.loads(ok(cfg, "outbox", "--json", now=later).stdout)
        assert [(r["id"], r["thread_id"], r["state"]) for r in listed] == [(oid, tid, "unknown")]

        ok(cfg, "outbox", "resolve", str(oid), "--delivered", now=later)
        [row] = outbox_rows(cfg, tid)
        assert row["state"] == "sent" and row["resolved_at"]
        # An automatic acknowledgement never counts as our answer (outbox.py, triage.py):
        # delivered or not, the customer still waits for a person, so the thread stays open.
        assert state_of(cfg, tid) == "open"
        assert json.loads(ok(cfg, "outbox", "--json", now=later).stdout) == []
        assert needs_a_person(cfg, tid, later) == []
        ok(cfg, "run", "--no-report", now=later + 5 * MINUTES)
        assert len(server.received) == 1


# -- 2. the answer comes after smtp.timeout ------------------------------------------------


def test_answer_slower_than_timeout_blocks_every_resend_but_force(tmp_path, mailbox,
                                                                  monkeypatch):
    ask(mailbox)
    with FaultySMTP(mode="slow_reply", reply_delay=4) as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, timeout=1)
        ok(cfg, "sync")
        tid = thread_of(cfg)

        first = triage(cfg, "reply", str(tid), "sorry", "--send")
        assert first.exit_code == 1, first.output
        assert len(first.stderr.splitlines()) == 1, first.stderr
        assert "delivery unknown" in first.stderr
        assert len(server.received) == 1
        [row] = outbox_rows(cfg, tid)
        assert row["state"] == "unknown" and "timed out" in row["error"]
        assert state_of(cfg, tid) == "open"

        again = triage(cfg, "reply", str(tid), "sorry", "--send")
        assert again.exit_code == 1, again.output
        assert "earlier reply's delivery is unknown" in again.stderr
        bulk = triage(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
        assert bulk.exit_code == 0, bulk.output
        assert len(server.received) == 1 and len(outbox_rows(cfg, tid)) == 1

        server.reply_delay = 0  # a person checked: the server answers promptly again
        forced = triage(cfg, "reply", str(tid), "sorry", "--send", "--force")
        assert forced.exit_code == 0, forced.output
        assert len(server.received) == 2
        assert [r["state"] for r in outbox_rows(cfg, tid)] == ["unknown", "sent"]
        assert state_of(cfg, tid) == "waiting"


# -- 3. a definite refusal -------------------------------------------------------------------


def test_refusal_is_failed_for_good_and_the_rest_of_the_run_goes_on(tmp_path, mailbox,
                                                                     monkeypatch):
    ask(mailbox, waited=dt.timedelta(hours=1))
    ask(mailbox, frm=f"Dave <{DAVE}>", msgid="q2@d.test", subject="Export fails",
        waited=dt.timedelta(hours=1))
    with FaultySMTP(refuse=[CAROL]) as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, auto_ack=ACK,
                        report={"to": ["lead@example.com"], "at": "00:00", "timezone": "UTC"})
        first = triage(cfg, "run")
        carol, dave = thread_of(cfg), thread_of(cfg, "q2@d.test")

        assert first.exit_code == 1, first.output
        errors = [line for line in first.stderr.splitlines() if line.startswith("Error:")]
        assert any(f"thread {carol}" in line for line in errors), first.stderr
        [row] = outbox_rows(cfg, carol)
        assert (row["state"], row["permanent"]) == ("failed", 1)
        assert "550" in row["error"] and CAROL in row["error"]
        assert [r["state"] for r in outbox_rows(cfg, dave)] == ["sent"]
        assert [m.rcpt_tos for m in to_customers(server)] == [[DAVE]]

        [report] = [m for m in server.received if m.rcpt_tos == ["lead@example.com"]]
        msg = email.message_from_bytes(report.raw, policy=email.policy.default)
        text = msg.get_body(("plain",)).get_content()
        assert "NEEDS A PERSON" in text, text
        section = text.split("NEEDS A PERSON", 1)[1].split("\n\n", 1)[0]
        assert any(line.startswith(f"#{carol} ") and "delivery_failed" in line
                   for line in section.splitlines()), section

        second = triage(cfg, "run", now=NOW + 5 * MINUTES)
        assert second.exit_code == 0, second.output
        assert [m.rcpt_tos for m in to_customers(server)] == [[DAVE]]
        assert len(outbox_rows(cfg, carol)) == 1
        assert len(server.received) == 2  # the acknowledgement and one report


# -- 4. SIGTERM while the server has the message and its answer is on the way ---------------


def test_sigterm_while_waiting_for_the_answer_records_sent_first(tmp_path, mailbox,
                                                                  monkeypatch):
    ask(mailbox)
    with FaultySMTP(mode="slow_reply", reply_delay=3) as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, timeout=20, auto_ack=ACK)
        ok(cfg, "sync")
        tid = thread_of(cfg)

        proc = spawn(cfg, "reply", str(tid), "sorry", "--send")
        wait_until(lambda: len(server.received) >= 1, proc, what="the message at the server")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == -signal.SIGTERM, err.decode()

        [row] = outbox_rows(cfg, tid)
        assert row["state"] == "sent", dict(row)  # the server said 250: it is not "sending"
        assert row["pid"] is None and row["sent_copy"] == "pending"
        assert state_of(cfg, tid) == "waiting"

        bulk = triage(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
        assert bulk.exit_code == 0, bulk.output
        run = triage(cfg, "run", "--no-report", now=NOW + 5 * MINUTES)
        assert run.exit_code == 0, run.output
        assert len(server.received) == 1 and len(outbox_rows(cfg, tid)) == 1


# -- 5. SIGTERM while the copy goes into Sent ------------------------------------------------


def test_sigterm_during_the_sent_copy_leaves_the_reply_sent(tmp_path, mailbox, monkeypatch,
                                                             proxy):
    ask(mailbox)
    with FaultySMTP(mode="ok") as server:
        cfg = configure(tmp_path, via(proxy, mailbox), monkeypatch, server,
                        imap={"timeout": 10})
        ok(cfg, "sync")
        tid = thread_of(cfg)

        # `reply --send` opens two IMAP connections: the look-before-sending sync, then
        # the APPEND of the Sent copy, which gets no greeting and hangs there.
        proxy.reset()
        proxy.schedule(Pass(), Stall(after=0))
        proc = spawn(cfg, "reply", str(tid), "sorry", "--send")
        wait_until(lambda: len(server.received) >= 1 and proxy.accepted >= 2, proc,
                   what="the message at the server and the Sent copy's connection")
        assert [type(c.fault) for c in proxy.connections] == [Pass, Stall]
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == -signal.SIGTERM, err.decode()

        [row] = outbox_rows(cfg, tid)
        assert (row["state"], row["sent_copy"]) == ("sent", "pending"), dict(row)
        assert state_of(cfg, tid) == "waiting"

        proxy.reset(default=Pass())
        bulk = triage(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
        assert bulk.exit_code == 0, bulk.output
        assert len(server.received) == 1 and len(outbox_rows(cfg, tid)) == 1


# -- 6. SIGKILL between DATA and recording the answer -------------------------------------


def test_sigkill_between_data_and_the_update_becomes_unknown(tmp_path, mailbox, monkeypatch):
    ask(mailbox)
    with FaultySMTP(mode="slow_reply", reply_delay=3) as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, timeout=20, auto_ack=ACK)
        ok(cfg, "sync")
        tid = thread_of(cfg)

        proc = spawn(cfg, "reply", str(tid), "sorry", "--send")
        wait_until(lambda: len(server.received) >= 1, proc, what="the message at the server")
        proc.kill()
        proc.communicate(timeout=15)
        [row] = outbox_rows(cfg, tid)
        assert (row["state"], row["pid"]) == ("sending", proc.pid)

        run = triage(cfg, "run", "--no-report", now=NOW + 5 * MINUTES)
        assert run.exit_code == 0, run.output
        [row] = outbox_rows(cfg, tid)
        assert row["state"] == "unknown" and row["pid"] is None, dict(row)
        assert "stopped" in row["error"]
        listed = json.loads(ok(cfg, "outbox", "--json").stdout)
        assert [(r["id"], r["state"]) for r in listed] == [(row["id"], "unknown")]
        assert "delivery_unknown" in needs_a_person(cfg, tid)

        bulk = triage(cfg, "reply", "--overdue", "sorry", "--send", "--yes")
        assert bulk.exit_code == 0, bulk.output
        again = triage(cfg, "reply", str(tid), "sorry", "--send")
        assert again.exit_code == 1 and "delivery is unknown" in again.stderr, again.output
        assert len(server.received) == 1 and len(outbox_rows(cfg, tid)) == 1

        # a person finds it arrived: a reply a person triggered answers the thread
        ok(cfg, "outbox", "resolve", str(row["id"]), "--delivered")
        assert outbox_rows(cfg, tid)[0]["state"] == "sent"
        assert state_of(cfg, tid) == "waiting"
        assert needs_a_person(cfg, tid) == []


# -- 7. the provider's own Sent copy settles an unknown -------------------------------------


def test_providers_sent_copy_settles_an_unknown(tmp_path, mailbox, monkeypatch):
    ask(mailbox)
    with FaultySMTP(mode="close_after_data") as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, smtp={"sent_copy": "none"})
        ok(cfg, "sync")
        tid = thread_of(cfg)

        result = triage(cfg, "reply", str(tid), "sorry", "--send")
        assert result.exit_code == 1 and "delivery unknown" in result.stderr, result.output
        [row] = outbox_rows(cfg, tid)
        assert row["state"] == "unknown"
        assert state_of(cfg, tid) == "open"

        # the provider filed what it accepted in Sent, as Gmail and Office 365 do
        [got] = server.received
        copy = email.message_from_bytes(got.raw, policy=email.policy.default)
        assert copy["Message-ID"].strip("<>") == row["message_id"]
        mailbox.append("Sent", got.raw, flags=[b"\\Seen"], internaldate=NOW)

        ok(cfg, "sync", now=NOW + 5 * MINUTES)
        [row] = outbox_rows(cfg, tid)
        assert row["state"] == "sent", dict(row)
        assert state_of(cfg, tid) == "waiting"
        [thread] = query(cfg, "SELECT message_count FROM threads WHERE id = ?", (tid,))
        assert thread["message_count"] == 2  # the question and our reply, counted once
        assert needs_a_person(cfg, tid, NOW + 5 * MINUTES) == []
        assert json.loads(ok(cfg, "outbox", "--json", now=NOW + 5 * MINUTES).stdout) == []
        assert len(server.received) == 1


# -- the daily report: once a day, also when its answer is lost or the run is killed --------


REPORT = {"to": ["lead@example.com"], "at": "08:00"}


def _reports(server: FaultySMTP) -> list[Any]:
    return [m for m in server.received if m.rcpt_tos == ["lead@example.com"]]


def test_a_report_whose_answer_is_lost_is_not_sent_again_and_the_next_one_says_so(
        tmp_path, mailbox, monkeypatch):
    ask(mailbox)
    with FaultySMTP(mode="close_after_data") as lossy:
        cfg = configure(tmp_path, mailbox, monkeypatch, lossy, report=REPORT)
        first = triage(cfg, "-v", "run")
        assert first.exit_code == 0, first.output
        assert "may not have arrived" in first.stderr
        again = triage(cfg, "run", now=NOW + 30 * MINUTES)
        assert again.exit_code == 0, again.output
        assert len(_reports(lossy)) == 1  # the same day: never a second copy
    [row] = query(cfg, "SELECT state, report_for FROM outbox WHERE kind = 'report'")
    assert (row["state"], row["report_for"]) == ("unknown", NOW.date().isoformat())
    with FaultySMTP(mode="ok") as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, report=REPORT)
        ok(cfg, "run", now=NOW + dt.timedelta(days=1))
        [report] = _reports(server)
    text = email.message_from_bytes(report.raw, policy=email.policy.default)
    body = text.get_body(preferencelist=("plain",)).get_content()
    assert f"The report for {NOW.date().isoformat()} may not have arrived" in body


def test_a_run_killed_while_sending_the_report_never_sends_it_twice(tmp_path, mailbox,
                                                                    monkeypatch):
    ask(mailbox)
    with FaultySMTP(mode="slow_reply", reply_delay=10) as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, timeout=20, report=REPORT)
        proc = spawn(cfg, "run")
        wait_until(lambda: len(_reports(server)) >= 1, proc, what="the report at the server")
        proc.kill()
        proc.communicate(timeout=15)
        res = triage(cfg, "-v", "run", now=NOW + 5 * MINUTES)
        assert res.exit_code == 0, res.output
        assert "may not have arrived" in res.stderr
        assert len(_reports(server)) == 1
    [row] = query(cfg, "SELECT state FROM outbox WHERE kind = 'report'")
    assert row["state"] == "unknown"


# -- found by the chaos soak -----------------------------------------------------------------


@pytest.mark.parametrize("cut_at", [1, 2])
def test_a_final_answer_broken_off_after_its_first_bytes_is_unknown_not_refused(
        tmp_path, mailbox, monkeypatch, cut_at):
    """ "2" or "25" of "250 OK": the server has the mail. Taken for a refusal, the next run
    acknowledged the thread again (chaos seed 20261124, run 77)."""
    ask(mailbox)
    with FaultySMTP(mode="cut_reply", cut_at=cut_at) as server:
        cfg = configure(tmp_path, mailbox, monkeypatch, server, auto_ack=ACK)
        first = triage(cfg, "run", "--no-report")
        assert first.exit_code == 1 and "answer broke off" in first.stderr, first.output
        ok(cfg, "run", "--no-report", now=NOW + 5 * MINUTES)  # flagged, not tried again
        assert len(server.received) == 1
    [row] = outbox_rows(cfg, thread_of(cfg))
    assert row["state"] == "unknown" and "broke off" in row["error"], dict(row)


def test_a_fresh_connection_failing_after_a_stale_one_is_not_sent(tmp_path):
    """A kept connection the server dropped, then a new one cut after its greeting (so EHLO,
    sent lazily by MAIL FROM, gets no answer): NotSent, nothing reached the server, and not
    the private _Stale escaping as a traceback (chaos seed 20261124)."""
    from mailtriage.config import SMTPConfig
    from mailtriage.errors import NotSent
    from mailtriage.smtp import Mailer

    from support.faultproxy import Cut, FaultProxy

    with FaultySMTP(mode="ok") as server, \
            FaultProxy(server.host, server.port, record_transcript=True) as proxy:
        cfg = SMTPConfig(host=proxy.host, port=proxy.port, security="none", timeout=5)
        with Mailer(cfg) as mailer:
            mailer.send(b"Subject: one\r\n\r\nhi\r\n", "support@example.com", [CAROL])
            greeting = bytes(proxy.connections[0].transcript).index(b"\n") + 1
            proxy.reset(Cut(after=greeting))  # drops the kept connection; cuts the next one
            with pytest.raises(NotSent) as info:
                mailer.send(b"Subject: two\r\n\r\nhi\r\n", "support@example.com", [CAROL])
        assert info.value.connection
        assert len(server.received) == 1
