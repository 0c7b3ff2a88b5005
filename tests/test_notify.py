"""Chat notifications (``notify:``): the event rules as pure functions, the config, and
``triage run`` posting to a real HTTP endpoint through Apprise with real Dovecot and SMTP."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_outbound_checks import bounce

from mailtriage import notify
from mailtriage.config import config_from_dict, load_config
from mailtriage.errors import ConfigError
from mailtriage.store import open_db

from support.cli import triage
from support.mailfactory import NOW, put, write_config
from support.net import bind_ephemeral
from support.smtp_faults import FaultySMTP
from support.webhook import Webhook

HOUR = dt.timedelta(hours=1)
SECRET = "s3cr3t-T0KEN-xyzzy"


# -- the rules, pure -------------------------------------------------------------------------


def item(tid: int, reason: str, **kw: Any) -> dict[str, Any]:
    return {"thread_id": tid, "reason": reason, "subject": f"Subject {tid}",
            "customer": "carol@customer.test", "waiting_since": "2026-11-22T06:00:00Z", **kw}


def test_diff_tells_what_started_and_what_cleared():
    a, b, c = ("overdue", 1, None), ("urgent", 2, None), ("sync_failed", None, "default")
    assert notify.diff(set(), {a, b}) == ({a, b}, set())
    assert notify.diff({a, b}, {a, b}) == (set(), set())  # still true: nothing new
    assert notify.diff({a, b}, {b, c}) == ({c}, {a})
    assert notify.diff({b, c}, {a, b, c}) == ({a}, set())  # cleared, then back: new again


def test_conditions_map_overdue_reasons_to_events_once_per_thread():
    items = [item(1, "unanswered"), item(2, "followup"), item(3, "bounced", detail="x: 550"),
             item(3, "delivery_unknown", detail="no answer"), item(4, "delivery_unknown"),
             item(4, "delivery_unknown"), item(5, "delivery_failed")]
    urgent = [{"id": 6, "subject": "Down!", "customer": "dave@d.test"}]
    got = notify.conditions(items, urgent, {"default": "login refused"}, notify.EVENTS)
    assert set(got) == {("overdue", 1, None), ("overdue", 2, None), ("bounced", 3, None),
                        ("delivery_unknown", 3, None), ("delivery_unknown", 4, None),
                        ("urgent", 6, None), ("sync_failed", None, "default")}
    assert "follow-up" in got[("overdue", 2, None)]
    assert "x: 550" in got[("bounced", 3, None)]
    assert got[("sync_failed", None, "default")] == "account default: login refused"
    only = notify.conditions(items, urgent, {"default": "e"}, ("bounced",))
    assert set(only) == {("bounced", 3, None)}


def test_message_groups_by_event_defangs_stranger_text_and_caps_long_lists():
    lines = notify.conditions(
        [item(i, "unanswered", subject=f"Help\x1b[2J\r\nnow {i}") for i in range(1, 26)],
        [], {"default": "refused"}, notify.EVENTS)
    title, body = notify.message(lines)
    assert title == "mailtriage: 25 overdue, 1 sync_failed"
    assert body.startswith("Waiting too long (25):\n- #1 \"Help now 1\" from carol@customer")
    assert "\x1b" not in body and "\r" not in body
    [ping] = notify.conditions([item(9, "bounced", subject="@everyone <!channel> hi",
                                     detail="@here")], [], {}, notify.EVENTS).values()
    assert ping == '#9 "(at)everyone < !channel> hi" from carol@customer.test ((at)here)'
    assert "- … and 5 more (triage overdue)" in body
    assert body.endswith("Sync failed (1):\n- account default: refused")


def test_redact_takes_every_piece_of_the_url_out():
    url = f"json://user:{SECRET}@hooks.example.net/T1/{SECRET}?k=v"
    said = f"A Connection error occurred sending JSON notification to hooks.example.net {SECRET}"
    out = notify._redact(said, url)
    assert SECRET not in out and "hooks" not in out and "A Connection error" in out


# -- the config ------------------------------------------------------------------------------


def cfg_with(notify_block: Any) -> Any:
    return config_from_dict({"accounts": [{"name": "a", "maildir": "m"}],
                             "team": {"addresses": ["support@example.com"]},
                             "notify": notify_block}, Path("/x/config.yaml"))


def test_config_entries_and_default_events():
    n = cfg_with({"urls": ["json://127.0.0.1:1/h", {"url_env": "HOOK"},
                          {"url_cmd": "pass show hook", "command_env": ["GNUPGHOME"]}]}).notify
    assert n.events == notify.EVENTS
    assert [(u.key_prefix, u.service) for u in n.urls] == [
        ("notify.urls[0]", "json"), ("notify.urls[1]", "url_env"), ("notify.urls[2]", "url_cmd")]
    assert n.urls[2].url_cmd == ["pass", "show", "hook"]
    assert cfg_with({"urls": ["json://h/x"], "events": ["urgent", "overdue"]}).notify.events \
        == ("overdue", "urgent")


@pytest.mark.parametrize(("block", "key", "words"), [
    ({"urls": []}, "notify.urls", "empty"),
    ({}, "notify.urls", "missing"),
    ({"urls": [f"json://u:{SECRET}@h/x"]}, "notify.urls[0]", "password"),
    ({"urls": [SECRET]}, "notify.urls[0]", "expected a URL"),
    ({"urls": [{"url_env": "A", "url_cmd": ["x"]}]}, "notify.urls[0]", "exactly one"),
    ({"urls": [{"url": "json://h"}]}, "notify.urls[0].url", "unknown key"),
    ({"urls": ["json://h"], "events": ["overdue", "late"]}, "notify.events", "unknown event"),
    ({"urls": ["json://h"], "events": []}, "notify.events", "empty"),
    ({"urls": ["json://h"], "channel": "#x"}, "notify.channel", "unknown key"),
])
def test_config_errors_name_the_entry_never_its_value(block, key, words):
    with pytest.raises(ConfigError) as err:
        cfg_with(block)
    assert err.value.key == key and words in err.value.message
    assert SECRET not in str(err.value)


def test_run_without_notify_does_not_import_apprise():
    code = ("import sys, mailtriage.run, mailtriage.cli.run; "
            "sys.exit('apprise' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- triage run against a real endpoint ------------------------------------------------------


@pytest.fixture
def hook():
    with Webhook() as server:
        yield server


def configure(tmp_path, mailbox, monkeypatch, urls, **extra):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    rules = [{"name": "down", "match": {"subject": "/site down/"}, "priority": "urgent"}]
    return write_config(tmp_path, mailbox, notify={"urls": urls}, rules=rules, **extra)


def run(cfg, now, *args):
    return triage(cfg, "run", "--no-report", *args, now=now)


def db_of(cfg):
    return open_db(load_config(cfg).db_path)


def tid_of(cfg, msgid="q1@customer.test"):
    return db_of(cfg).execute("SELECT thread_id FROM messages WHERE message_id = ?",
                              [msgid]).fetchone()[0]


def test_one_message_per_run_each_event_once_until_it_clears_and_recurs(
        tmp_path, mailbox, monkeypatch, hook):
    put(mailbox, msgid="q1@customer.test", subject="Login broken", date=NOW - 30 * HOUR)
    put(mailbox, msgid="u1@d.test", subject="Our site down", frm="Dave <dave@d.test>",
        date=NOW - HOUR / 6)
    put(mailbox, msgid="fine@e.test", subject="Question", frm="erin@e.test", date=NOW - HOUR)
    cfg = configure(tmp_path, mailbox, monkeypatch, [hook.url()])

    first = run(cfg, NOW)
    assert first.exit_code == 0 and first.output == ""
    [post] = hook.posts
    assert post.path == "/hook"
    q1, u1 = tid_of(cfg), tid_of(cfg, "u1@d.test")
    assert post.body["title"] == "mailtriage: 1 overdue, 1 urgent"
    assert post.body["message"] == (
        "Waiting too long (1):\n"
        f'- #{q1} "Login broken" from carol@customer.test (since 2026-11-22T06:00:00Z)\n'
        "Urgent (1):\n"
        f'- #{u1} "Our site down" from dave@d.test')

    assert run(cfg, NOW + HOUR / 12).exit_code == 0  # nothing new: nothing sent
    assert len(hook.posts) == 1

    # answered (our reply synced from INBOX): it clears, and nothing is sent for that
    put(mailbox, msgid="a1@example.com", subject="Re: Login broken", frm="support@example.com",
        to="carol@customer.test", in_reply_to="q1@customer.test", date=NOW)
    assert run(cfg, NOW + HOUR / 6).exit_code == 0
    assert len(hook.posts) == 1
    # she writes again and waits too long once more: told again, and only that
    put(mailbox, msgid="q2@customer.test", subject="Re: Login broken",
        in_reply_to="a1@example.com", date=NOW + HOUR)
    assert run(cfg, NOW + 2 * HOUR).exit_code == 0
    assert len(hook.posts) == 1  # waiting, but not for 24 h yet
    assert run(cfg, NOW + 26 * HOUR).exit_code == 0  # by now the other two waited too long
    assert len(hook.posts) == 2
    assert hook.posts[1].body["title"] == "mailtriage: 3 overdue"
    told = hook.posts[1].body["message"]
    assert all(f"#{t} " in told for t in (q1, u1, tid_of(cfg, "fine@e.test"))), told

    db = db_of(cfg)
    rows = list(db.query("SELECT event, cleared_at IS NOT NULL AS cleared, "
                         "notified_at IS NOT NULL AS told FROM notify_events "
                         "WHERE thread_id = ? ORDER BY id", [q1]))
    assert [(r["event"], r["cleared"], r["told"]) for r in rows] == [
        ("overdue", 1, 1), ("overdue", 0, 1)]
    assert [r["ok"] for r in db.query("SELECT ok FROM notify_attempts")] == [1, 1]

    # --no-notify: nothing is posted, and what is new is told by the next run that may
    put(mailbox, msgid="u2@f.test", subject="site down again", frm="fay@f.test",
        date=NOW + 26 * HOUR)
    assert run(cfg, NOW + 27 * HOUR, "--no-notify").exit_code == 0
    assert len(hook.posts) == 2
    assert run(cfg, NOW + 28 * HOUR).exit_code == 0
    assert hook.posts[2].body["title"] == "mailtriage: 1 urgent"


def test_bounce_unknown_delivery_and_failed_sync_are_told_and_clear(
        tmp_path, mailbox, monkeypatch, hook):
    put(mailbox, msgid="q1@customer.test", subject="Refund", date=NOW - HOUR)
    put(mailbox, msgid="ours@example.com", subject="Re: Refund", frm="support@example.com",
        to="carol@custmer.test", in_reply_to="q1@customer.test", date=NOW - HOUR / 2)
    mailbox.append("INBOX", bounce("ours@example.com", "carol@custmer.test",
                                   msgid="b1@mx.example.com"), internaldate=NOW - HOUR / 4)
    put(mailbox, msgid="q3@g.test", subject="Invoice", frm="gus@g.test", date=NOW - HOUR)
    with FaultySMTP(mode="close_after_data") as smtp:
        cfg = configure(tmp_path, mailbox, monkeypatch, [hook.url()],
                        smtp={"host": smtp.host, "port": smtp.port, "security": "none",
                              "timeout": 5})
        assert triage(cfg, "sync").exit_code == 0
        q3 = tid_of(cfg, "q3@g.test")
        sent = triage(cfg, "reply", str(q3), "sorry", "--send")
        assert sent.exit_code == 1 and "unknown" in sent.stderr, sent.output
    assert run(cfg, NOW).exit_code == 0
    [post] = hook.posts
    q1 = tid_of(cfg)
    assert post.body["title"] == "mailtriage: 1 bounced, 1 delivery_unknown"
    assert f'Our mail bounced (1):\n- #{q1} "Refund"' in post.body["message"]
    assert "carol@custmer.test" in post.body["message"]
    assert f"Delivery of our reply unknown (1):\n- #{q3} " in post.body["message"]

    [oid] = [r[0] for r in db_of(cfg).execute("SELECT id FROM outbox WHERE state = 'unknown'")]
    assert triage(cfg, "outbox", "resolve", str(oid), "--not-delivered").exit_code == 0
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "wrong")
    failed = run(cfg, NOW + HOUR / 12)
    assert failed.exit_code == 1  # the sync's failure; the notification is not one
    assert hook.posts[1].body["title"] == "mailtriage: 1 sync_failed"
    assert hook.posts[1].body["message"].startswith("Sync failed (1):\n- account default: ")
    assert run(cfg, NOW + HOUR / 6).exit_code == 1  # still failing: not told twice
    assert len(hook.posts) == 2
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    assert run(cfg, NOW + HOUR / 4).exit_code == 0
    assert len(hook.posts) == 2
    cleared = {r[0] for r in db_of(cfg).execute(
        "SELECT event FROM notify_events WHERE cleared_at IS NOT NULL")}
    assert cleared == {"delivery_unknown", "sync_failed"}  # the bounce waits for a person


def test_a_failing_endpoint_is_recorded_warned_about_and_retried(
        tmp_path, mailbox, monkeypatch, hook):
    put(mailbox, msgid="q1@customer.test", subject="Login broken", date=NOW - 30 * HOUR)
    with bind_ephemeral() as closed:  # bound, never listening: connection refused
        dead = f"json://127.0.0.1:{closed.getsockname()[1]}/gone"
        cfg = configure(tmp_path, mailbox, monkeypatch, [dead, hook.url()])
        hook.status = 500
        result = triage(cfg, "-v", "run", "--no-report", now=NOW)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert warnings == [
            "warning: notify notify.urls[0] (json): not delivered: A Connection error "
            "occurred sending JSON notification to 127.0.0.1.",
            "warning: notify notify.urls[1] (json): not delivered: Failed to send JSON POST "
            "notification: Internal server error., error=500."]
        assert len(hook.posts) == 1
        db = db_of(cfg)
        assert [(r["target"], r["ok"], r["events"]) for r in db.query(
            "SELECT * FROM notify_attempts ORDER BY id")] == [
            ("notify.urls[0]", 0, 1), ("notify.urls[1]", 0, 1)]
        # nobody got it: the next run tries again, and one URL taking it is enough
        hook.status = 200
        assert run(cfg, NOW + HOUR / 12).exit_code == 0
        assert len(hook.posts) == 2 and hook.posts[1].body == hook.posts[0].body
        assert run(cfg, NOW + HOUR / 6).exit_code == 0
        assert len(hook.posts) == 2
    [row] = db.query("SELECT attempts, notified_at FROM notify_events")
    assert row["attempts"] == 1 and row["notified_at"]


def test_given_up_after_three_messages_nobody_took(tmp_path, mailbox, monkeypatch, hook):
    put(mailbox, msgid="q1@customer.test", subject="Login broken", date=NOW - 30 * HOUR)
    cfg = configure(tmp_path, mailbox, monkeypatch, [hook.url()])
    hook.status = 500
    for n in range(5):
        assert run(cfg, NOW + n * HOUR / 12).exit_code == 0
    assert len(hook.posts) == notify.MAX_ATTEMPTS == 3


def test_a_url_secret_never_shows_in_output_logs_or_the_database(
        tmp_path, mailbox, monkeypatch, hook):
    put(mailbox, msgid="q1@customer.test", subject="Login broken", date=NOW - 30 * HOUR)
    monkeypatch.setenv("TEST_NOTIFY_URL", hook.url(f"hooks/{SECRET}"))
    script = tmp_path / "print-url"
    script.write_text(f"#!/bin/sh\necho '{hook.url(f'cmd/{SECRET}')}'\n", encoding="utf-8")
    script.chmod(0o700)
    cfg = configure(tmp_path, mailbox, monkeypatch,
                    [{"url_env": "TEST_NOTIFY_URL"}, {"url_cmd": [str(script)]},
                     {"url_env": "TEST_NOTIFY_UNSET"}])
    hook.status = 500  # failures are where a URL could leak: into errors and warnings
    outputs = [triage(cfg, "-vv", "run", "--no-report", now=NOW + n * HOUR) for n in range(2)]
    assert [p.path for p in hook.posts] == [f"/hooks/{SECRET}", f"/cmd/{SECRET}"] * 2
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output and "127.0.0.1:" not in result.output
    assert "notify.urls[2].url_env: environment variable TEST_NOTIFY_UNSET is not set" \
        in outputs[0].stderr
    db_path = load_config(cfg).db_path
    errors = [r[0] for r in db_of(cfg).execute("SELECT error FROM notify_attempts")]
    assert len(errors) == 6 and all(errors)
    for path in db_path.parent.glob(db_path.name + "*"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_schema_m007_notify(tmp_path):
    db = open_db(tmp_path / "state.db")
    applied = [r[0] for r in db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert "m007_notify" in applied and "m005_members_and_notes" in applied
    assert db["notify_events"].pks == ["id"] and db["notify_attempts"].pks == ["id"]
    assert db["notify_events"].columns_dict == {
        "id": int, "event": str, "thread_id": int, "account": str, "since": str,
        "cleared_at": str, "notified_at": str, "attempts": int}
    assert db["notify_attempts"].columns_dict == {
        "id": int, "at": str, "target": str, "service": str, "events": int, "ok": int,
        "error": str}
    assert db["notify_events"].foreign_keys == []  # merged threads go away (schema.py)
