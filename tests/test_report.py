"""The daily report against a real Dovecot and SMTP server: content, escaping, completeness."""

from __future__ import annotations

import datetime as dt
import email
import json
from email.policy import default as default_policy

import pytest

from mailtriage.config import load_config
from mailtriage.report import build_report, percentile
from mailtriage.reportmail import render_report, report_message
from mailtriage.states import change_tags
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import triage
from support.mailfactory import NOW, put, write_config

EVIL = "Broken <script>alert(1)</script> & more"


@pytest.fixture
def env(tmp_path, mailbox, smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", smtp_server.password)
    cfg = write_config(
        tmp_path, mailbox,
        report={"to": ["lead@example.com"], "at": "08:00", "timezone": "UTC",
                "subject": "Support inbox report"},
        smtp={"host": smtp_server.host, "port": smtp_server.port, "security": "none",
              "username": smtp_server.username, "password_env": "TEST_SMTP_PASSWORD"},
    )
    return mailbox, cfg


def asked_and_answered(mb, answered_hours_ago: float) -> None:
    """A customer asked 30 h ago; we answered from support@ (copy in Sent)."""
    put(mb, "INBOX", msgid="q1@c.test", subject="Login broken",
        date=NOW - dt.timedelta(hours=30))
    put(mb, "Sent", flags=["\\Seen"], msgid="a1@example.com", subject="Re: Login broken",
        frm="Support <support@example.com>", to="carol@customer.test",
        in_reply_to="q1@c.test", references=["q1@c.test"],
        date=NOW - dt.timedelta(hours=answered_hours_ago))


def synced(cfg, now=NOW):
    config = load_config(cfg)
    db = open_db(config.db_path)
    sync(db, config, now)
    return config, db


def test_overdue_thread_is_listed_and_customer_strings_are_escaped(env, tmp_path):
    mb, cfg = env
    put(mb, "INBOX", msgid="evil@c.test", subject=EVIL, frm="Mallory <m@evil.test>",
        date=NOW - dt.timedelta(hours=30))
    config, db = synced(cfg)
    data = build_report(db, config, NOW)
    assert data["headline"] == {"waiting_too_long": 1, "overdue": 1, "followup": 0, "open": 1,
                                "attention": 0, "all_clear": False}
    subject, text, html = render_report(config, data)
    assert subject == "Support inbox report: 1 waiting too long"
    # HTML: escaped, never live markup; no scripts, images or <style> of our own either
    assert "Broken &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "<style" not in html.lower()
    assert "1 thread waiting too long" in html and "#c0392b" in html
    # text: the subject as the customer wrote it, in an aligned table with the thread id
    tid = data["overdue"][0]["thread_id"]
    line = next(ln for ln in text.splitlines() if EVIL in ln)
    assert line.startswith(f"#{tid}") and "1d 6h" in line and "m@evil.test" in line
    assert "1 thread waiting too long (1 of 1 open threads)" in text

    out = tmp_path / "report.html"
    result = triage(cfg, "report", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert EVIL in result.stdout
    saved = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;" in saved and "<script" not in saved.lower()


def test_all_answered_says_nothing_fell_through_the_cracks(env):
    mb, cfg = env
    asked_and_answered(mb, answered_hours_ago=3)
    config, db = synced(cfg)
    data = build_report(db, config, NOW)
    subject, text, html = render_report(config, data)
    assert subject == "Support inbox report: all clear"
    assert "Nothing fell through the cracks" in html and "&#10004;" in html
    assert "#1e8449" in html
    assert "Nothing fell through the cracks: 0 of 0 open threads waiting too long." in text
    assert data["answered"]["count"] == 1 and data["new"]["count"] == 0
    assert data["response"]["median_hours"] == 27.0
    assert "median: 1d 3h" in text


def test_stale_sync_is_flagged_loudly(env):
    mb, cfg = env
    put(mb, "INBOX", msgid="q1@c.test", date=NOW - dt.timedelta(hours=6))
    config, db = synced(cfg, now=NOW - dt.timedelta(hours=5))  # sla.stale_sync_after: 2h
    data = build_report(db, config, NOW)
    assert data["sync"]["stale"] is True
    assert data["sync"]["last_sync_at"] == "2026-11-23T07:00:00Z"
    subject, text, html = render_report(config, data)
    assert subject == "Support inbox report: SYNC STALE"
    assert "!!! WARNING: MAIL IS NOT SYNCING !!!" in text
    assert "Last good sync: 2026-11-23 07:00" in text
    assert "Mail is not syncing." in html
    assert "Nothing fell through the cracks" not in html + text

    fresh = build_report(db, config, NOW - dt.timedelta(hours=4))
    assert fresh["sync"]["stale"] is False


def test_never_synced_is_stale(tmp_path, monkeypatch, mailbox):
    cfg = write_config(tmp_path, mailbox)
    config = load_config(cfg)
    data = build_report(open_db(config.db_path), config, NOW)
    assert data["sync"]["stale"] and data["sync"]["last_sync_at"] is None
    _s, text, _h = render_report(config, data)
    assert "No successful sync on record." in text and "never synced" in text


def test_completeness_numbers_match_the_server(env):
    mb, cfg = env
    for n in range(3):
        put(mb, "INBOX", msgid=f"q{n}@c.test", subject=f"Question {n}")
    put(mb, "Sent", flags=["\\Seen"], msgid="a1@example.com", subject="Re: Question 0",
        frm="support@example.com", to="carol@customer.test", in_reply_to="q0@c.test")
    config, db = synced(cfg)
    data = build_report(db, config, NOW)
    folders = {f["folder"]: f for f in data["completeness"]["folders"]}
    client = mb.client()
    for name in ("INBOX", "Sent"):
        on_server = client.folder_status(name, ["MESSAGES"])[b"MESSAGES"]
        stored = db.execute("SELECT COUNT(*) FROM locations WHERE folder = ?",
                            [name]).fetchone()[0]
        assert folders[name]["server_count"] == on_server == stored == folders[name]["stored"]
        assert folders[name]["ok"] and folders[name]["synced_at"] == "2026-11-23T12:00:00Z"
    client.logout()
    assert data["completeness"]["complete"]
    # a location lost on our side shows as a mismatch, not as "complete"
    with db.atomic():
        db.execute("DELETE FROM locations WHERE folder = 'INBOX' AND uid = 2")
    data = build_report(db, config, NOW)
    inbox = next(f for f in data["completeness"]["folders"] if f["folder"] == "INBOX")
    assert (inbox["server_count"], inbox["stored"], inbox["ok"]) == (3, 2, False)
    assert not data["completeness"]["complete"]
    _s, text, html = render_report(config, data)
    assert any("INBOX" in ln and "MISMATCH" in ln for ln in text.splitlines())
    assert "Mismatch" in html


def test_activity_backlog_response_tags_and_quarantine(env):
    mb, cfg = env
    asked_and_answered(mb, answered_hours_ago=20)
    put(mb, "INBOX", msgid="q2@c.test", subject="Re: Login broken", in_reply_to="a1@example.com",
        references=["q1@c.test", "a1@example.com"], date=NOW - dt.timedelta(hours=2))
    put(mb, "INBOX", msgid="other@d.test", subject="Invoice question", frm="dave@d.test",
        date=NOW - dt.timedelta(hours=5))
    put(mb, "INBOX", msgid="old@e.test", subject="Ancient", frm="erin@e.test",
        date=NOW - dt.timedelta(days=5))
    broken = (b"From: Weird <w@y.test>\r\nTo: support@example.com\r\nSubject: Odd one\r\n"
              b"Date: not a date at all\r\nMessage-ID: <w1@y.test>\r\n\r\nbody\r\n")
    mb.append("INBOX", broken, internaldate=NOW - dt.timedelta(hours=1))
    config, db = synced(cfg)
    tid = db.execute("SELECT thread_id FROM messages WHERE message_id = 'other@d.test'"
                     ).fetchone()[0]
    with db.atomic():
        change_tags(db, tid, ["billing"], [], "2026-11-23T12:00:00Z", "test")
    data = build_report(db, config, NOW)

    assert data["headline"]["open"] == 4
    assert [i["subject"] for i in data["overdue"]] == ["Ancient"]
    assert {t["subject"] for t in data["new"]["threads"]} == {"Invoice question", "Odd one"}
    assert [t["subject"] for t in data["answered"]["threads"]] == ["Login broken"]
    buckets = {b["label"]: b for b in data["backlog"]["buckets"]}
    assert {k: b["count"] for k, b in buckets.items()} == {"<4h": 2, "4–24h": 1, "1–3d": 0,
                                                             ">3d": 1}
    assert buckets["<4h"]["pct"] == 50.0 and data["backlog"]["waiting"] == 4
    # Ancient is outside the 7-day window? no: 5 days ago, inside, but unanswered
    assert data["response"] == {"days": 7, "answered": 1, "unanswered": 3,
                                "median_hours": 10.0, "p90_hours": 10.0}
    assert data["tags"] == [{"tag": "billing", "count": 1}]
    q = data["quarantined"]
    assert q["period"] == q["total"] == 1
    assert q["messages"][0]["from"] == "w@y.test" and q["messages"][0]["subject"] == "Odd one"

    _s, text, html = render_report(config, data)
    assert "QUARANTINED: 1 message" in text and "Odd one" in html
    assert any(ln.strip().startswith("<4h") and ln.rstrip().endswith("#" * 15)
               for ln in text.splitlines())
    assert 'width="50%"' in html  # the <4h bar: table cell widths, no images
    assert "billing" in text and "Invoice question" in text


def test_percentile_and_no_data_says_na(env):
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([float(n) for n in range(1, 11)], 90) == 9.0
    assert percentile([float(n) for n in range(1, 11)], 50) == 5.0
    _mb, cfg = env
    config, db = synced(cfg)
    data = build_report(db, config, NOW)
    assert data["response"]["median_hours"] is None
    _s, text, html = render_report(config, data)
    assert "median: n/a" in text and "n/a" in html


def test_report_message_is_multipart_alternative(env):
    mb, cfg = env
    put(mb, "INBOX", msgid="evil@c.test", subject=EVIL, date=NOW - dt.timedelta(hours=30))
    config, db = synced(cfg)
    msg = report_message(config, render_report(config, build_report(db, config, NOW)), NOW)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg["To"] == "lead@example.com" and "support@example.com" in msg["From"]
    assert msg["Message-ID"] and msg["Date"] and msg["Auto-Submitted"] == "auto-generated"


def test_report_send_mails_it_and_json_parses(env, smtp_server):
    mb, cfg = env
    put(mb, "INBOX", msgid="evil@c.test", subject=EVIL, date=NOW - dt.timedelta(hours=30))
    synced(cfg)
    result = triage(cfg, "report", "--send", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["headline"]["waiting_too_long"] == 1
    received = smtp_server.wait_for(1)
    assert len(received) == 1 and received[0].rcpt_tos == ["lead@example.com"]
    msg = email.message_from_bytes(received[0].raw, policy=default_policy)
    assert msg["Subject"] == "Support inbox report: 1 waiting too long"
    html = msg.get_body(("html",)).get_content()
    assert "&lt;script&gt;" in html and "<script" not in html


def test_report_since_option_widens_the_period(env):
    mb, cfg = env
    put(mb, "INBOX", msgid="q1@c.test", subject="Older question",
        date=NOW - dt.timedelta(hours=30))
    synced(cfg)
    assert "New threads:      0" in triage(cfg, "report").stdout
    assert "New threads:      1" in triage(cfg, "report", "--since", "2d").stdout
    assert "New threads:      1" in triage(cfg, "report", "--since", "2026-11-22").stdout
    bad = triage(cfg, "report", "--since", "yesterdayish")
    assert bad.exit_code == 2


def test_report_send_without_recipients_is_a_config_error(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    cfg = write_config(tmp_path, mailbox)
    result = triage(cfg, "report", "--send")
    assert result.exit_code == 2
    assert "report.to" in result.stderr


def test_the_headline_counts_overdue_of_open_and_follow_ups_apart(env):
    """A follow-up due is a thread in "waiting": it is not one more of the open threads."""
    mb, cfg = env
    put(mb, "INBOX", msgid="q1@c.test", subject="Login broken", date=NOW - dt.timedelta(hours=80))
    put(mb, "Sent", flags=["\\Seen"], msgid="a1@example.com", subject="Re: Login broken",
        frm="Support <support@example.com>", to="carol@customer.test",
        in_reply_to="q1@c.test", date=NOW - dt.timedelta(hours=60),
        headers={"X-Mailtriage-Template": "sorry"})  # a holding reply, days ago
    put(mb, "INBOX", msgid="q2@d.test", subject="Export broken", frm="dave@d.test",
        date=NOW - dt.timedelta(days=13, hours=9))
    config, db = synced(cfg)
    data = build_report(db, config, NOW)
    h = data["headline"]
    assert (h["waiting_too_long"], h["overdue"], h["followup"], h["open"]) == (2, 1, 1, 1)
    _subject, text, _html = render_report(config, data)
    assert "2 threads waiting too long (1 of 1 open threads, 1 due for a follow-up)." in text
    # the WAITING column holds a long wait whole
    row = next(line for line in text.splitlines() if line.startswith("#") and "Export" in line)
    assert "13d 9h" in row and "…" not in row.split("Export")[0]


def test_a_broken_report_template_is_one_line_in_report_and_run(env, smtp_server):
    mb, cfg = env
    put(mb, "INBOX", msgid="q1@c.test", subject="Hello", date=NOW - dt.timedelta(hours=1))
    synced(cfg)
    override = cfg.parent / "templates" / "report"
    override.mkdir(parents=True)
    (override / "report.txt.j2").write_text("{{ report.headline.nope.deeper }}\n")
    for args in (["report"], ["run"]):
        res = triage(cfg, *args)
        assert res.exit_code == 1, (args, res.output)
        [line] = res.stderr.strip().splitlines()
        assert "report.txt.j2" in line and "nope" in line and "Traceback" not in res.output
    assert smtp_server.messages == []
