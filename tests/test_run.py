"""``triage run`` against real servers: the daily report's schedule, the lock, auto-acks."""

from __future__ import annotations

import datetime as dt
import email
import stat
import threading
from email.policy import default as default_policy

import pytest

from mailtriage.config import ReportConfig, load_config
from mailtriage.lock import Busy, acquire, lock_path
from mailtriage.run import report_slot
from mailtriage.store import get_meta, open_db

from support.cli import triage
from support.mailfactory import NOW, mail, write_config

BERLIN = "Europe/Berlin"  # report at 08:00 Berlin = 07:00 UTC in November


def smtp_block(server):
    return {"host": server.host, "port": server.port, "security": "none",
            "username": server.username, "password_env": "TEST_SMTP_PASSWORD"}


@pytest.fixture
def env(tmp_path, mailbox, smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", smtp_server.password)
    cfg = write_config(tmp_path, mailbox, smtp=smtp_block(smtp_server),
                       report={"to": ["lead@example.com"], "at": "08:00", "timezone": BERLIN})
    mailbox.append("INBOX", mail(msgid="q1@c.test", subject="Login broken"),
                   internaldate=NOW - dt.timedelta(hours=1))
    return mailbox, cfg


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.UTC)


def triage_run(cfg, now, *args):
    return triage(cfg, "run", *args, now=now)


def reports(server):
    out = []
    for m in server.messages:
        msg = email.message_from_bytes(m.raw, policy=default_policy)
        if msg["Subject"].startswith("Support inbox report"):
            out.append(msg)
    return out


def last_report_for(cfg):
    return get_meta(open_db(load_config(cfg).db_path), "last_report_for")


def test_report_goes_out_once_a_day_however_often_run_is_called(env, smtp_server):
    _mb, cfg = env
    for now in (at(23, 6, 30), at(23, 7, 5), at(23, 12), at(23, 22, 59)):  # 07:30 .. 23:59 CET
        result = triage_run(cfg, now)
        assert result.exit_code == 0, result.output
        assert result.output == ""
    assert len(reports(smtp_server)) == 1  # 06:30 UTC was before 08:00 Berlin: not yet due
    assert last_report_for(cfg) == "2026-11-23"
    assert triage_run(cfg, at(23, 23, 30)).exit_code == 0  # 00:30 on the 24th in Berlin
    assert triage_run(cfg, at(24, 7, 1)).exit_code == 0  # 08:01 on the 24th: due
    assert triage_run(cfg, at(24, 9)).exit_code == 0
    sent = reports(smtp_server)
    assert len(sent) == 2 and last_report_for(cfg) == "2026-11-24"
    assert sent[0].get_content_type() == "multipart/alternative"
    assert [r["To"] for r in sent] == ["lead@example.com"] * 2


def test_a_missed_week_is_caught_up_once(env, smtp_server):
    _mb, cfg = env
    assert triage_run(cfg, at(23, 8)).exit_code == 0
    # the machine was off for days; it comes back before today's report time
    for now in (at(27, 5), at(27, 5, 30), at(27, 6, 59)):
        assert triage_run(cfg, now).exit_code == 0
    assert len(reports(smtp_server)) == 2
    assert last_report_for(cfg) == "2026-11-26"
    assert triage_run(cfg, at(27, 7)).exit_code == 0  # today's, as usual
    assert len(reports(smtp_server)) == 3 and last_report_for(cfg) == "2026-11-27"


def test_report_slot_rules():
    rep = ReportConfig(to=["x@y"], at=dt.time(8), timezone=BERLIN)
    assert report_slot(rep, at(23, 6), None) is None  # 07:00 local, first ever: wait
    assert report_slot(rep, at(23, 7), None) == dt.date(2026, 11, 23)
    assert report_slot(rep, at(23, 7), "2026-11-23") is None
    assert report_slot(rep, at(25, 6), "2026-11-23") == dt.date(2026, 11, 24)  # catch-up
    assert report_slot(rep, at(25, 6), "2026-11-24") is None
    assert report_slot(rep, at(25, 23), "2026-11-25") is None  # 00:00 local: a new day, early
    assert report_slot(rep, at(26, 7), "2026-11-25") == dt.date(2026, 11, 26)
    # summer time: 08:00 Berlin is 06:00 UTC
    assert report_slot(rep, dt.datetime(2026, 7, 1, 6, tzinfo=dt.UTC), "2026-06-30") \
        == dt.date(2026, 7, 1)


def test_no_recipients_means_no_report_silently(tmp_path, mailbox, smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", smtp_server.password)
    cfg = write_config(tmp_path, mailbox, smtp=smtp_block(smtp_server))
    result = triage_run(cfg, at(23, 12))
    assert result.exit_code == 0 and result.output == ""
    assert smtp_server.messages == [] and last_report_for(cfg) is None


def test_no_report_option(env, smtp_server):
    _mb, cfg = env
    result = triage_run(cfg, at(23, 12), "--no-report")
    assert result.exit_code == 0 and result.output == ""
    assert smtp_server.messages == []


def test_sync_failure_still_sends_a_loud_report_and_fails(env, smtp_server, monkeypatch):
    _mb, cfg = env
    assert triage_run(cfg, at(23, 6)).exit_code == 0  # one good sync, before report time
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "wrong")
    result = triage_run(cfg, at(23, 10))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: sync default:")
    (msg,) = reports(smtp_server)
    assert "SYNC STALE" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert "MAIL IS NOT SYNCING" in text and "ERROR:" in text
    db = open_db(load_config(cfg).db_path)
    assert all(r["last_error"] for r in db.query("SELECT last_error FROM folders"))


def test_missing_smtp_password_is_a_config_error(env, monkeypatch):
    _mb, cfg = env
    monkeypatch.delenv("TEST_SMTP_PASSWORD")
    result = triage_run(cfg, at(23, 12))
    assert result.exit_code == 2
    assert "TEST_SMTP_PASSWORD" in result.stderr
    assert last_report_for(cfg) is None  # not marked as sent: the next run tries again


def test_fail_if_any(env):
    _mb, cfg = env
    assert triage_run(cfg, at(23, 12), "--fail-if-any", "--no-report").exit_code == 0
    result = triage_run(cfg, at(25, 12), "--fail-if-any", "--no-report")
    assert result.exit_code == 3 and result.output == ""


def test_second_run_skips_while_the_lock_is_held(env, smtp_server):
    _mb, cfg = env
    db_path = load_config(cfg).db_path
    with acquire(lock_path(db_path)):
        result = triage_run(cfg, at(23, 12))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "another triage run is in progress; skipping\n"
    assert smtp_server.messages == []
    assert triage_run(cfg, at(23, 12)).exit_code == 0  # released: runs normally
    assert len(reports(smtp_server)) == 1


def test_wait_blocks_until_the_lock_is_released(env, monkeypatch):
    _mb, cfg = env
    path = lock_path(load_config(cfg).db_path)
    held, released = threading.Event(), threading.Event()

    def holder():
        with acquire(path):
            held.set()
            released.wait(0.2)  # hold it briefly, then let go
        released.set()

    seen = []
    from mailtriage import run as run_mod

    real_run = run_mod.run

    def spy(*args, **kwargs):
        seen.append(released.is_set())
        return real_run(*args, **kwargs)

    monkeypatch.setattr("mailtriage.cli.run.run", spy)
    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)
    result = triage_run(cfg, at(23, 12), "--wait")
    thread.join(5)
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert seen == [True]  # the run started only after the holder let go


def test_lock_file_is_private_and_never_stale(tmp_path):
    path = lock_path(tmp_path / "state.db")
    assert path.name == "state.db.lock"
    path.write_text("12345\n")  # left behind by a crashed run: not a lock by itself
    path.chmod(0o644)
    with acquire(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(Busy), acquire(path):
            pass
    fresh = tmp_path / "other.db.lock"
    with acquire(fresh):
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    with acquire(fresh):  # released on exit
        pass


def test_auto_ack_once_with_auto_submitted(tmp_path, mailbox, smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", smtp_server.password)
    cfg = write_config(tmp_path, mailbox, smtp=smtp_block(smtp_server),
                       auto_ack={"template": "sorry", "after": "15m"})
    mailbox.append("INBOX", mail(msgid="q1@c.test", subject="Login broken",
                                 date=NOW - dt.timedelta(hours=1)),
                   internaldate=NOW - dt.timedelta(hours=1))
    mailbox.append("INBOX", mail(msgid="q2@d.test", subject="Just now", frm="dave@d.test",
                                 date=NOW - dt.timedelta(minutes=5)),
                   internaldate=NOW - dt.timedelta(minutes=5))
    mailbox.append("INBOX", mail(msgid="ooo@e.test", subject="Out of office", frm="erin@e.test",
                                 headers={"Auto-Submitted": "auto-replied"}),
                   internaldate=NOW - dt.timedelta(hours=1))
    result = triage_run(cfg, NOW)
    assert result.exit_code == 0 and result.output == ""
    assert len(smtp_server.messages) == 1
    ack = email.message_from_bytes(smtp_server.messages[0].raw, policy=default_policy)
    assert ack["To"] == "carol@customer.test"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Mailtriage-Template"] == "sorry"
    # later runs: never the same thread twice; the newer one once it has waited long enough
    assert triage_run(cfg, NOW + dt.timedelta(minutes=5)).exit_code == 0
    assert len(smtp_server.messages) == 1
    assert triage_run(cfg, NOW + dt.timedelta(minutes=15)).exit_code == 0
    acks = [email.message_from_bytes(m.raw, policy=default_policy) for m in smtp_server.messages]
    assert [a["To"] for a in acks] == ["carol@customer.test", "dave@d.test"]
    assert triage_run(cfg, NOW + dt.timedelta(hours=2)).exit_code == 0
    assert len(smtp_server.messages) == 2
