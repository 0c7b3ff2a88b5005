"""Working as a team: members, assignment, the rota, notes, customer history, the report
by owner -- through the real CLI against the test Dovecot (and SMTP for `reply --as`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from mailtriage.config import config_from_dict
from mailtriage.errors import ConfigError
from mailtriage.members import Rota, on_duty
from mailtriage.reportmail import report_recipients

from support.cli import ok, triage
from support.mailfactory import NOW, put, write_config

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
MEMBERS = [{"name": "alice", "address": ALICE}, {"name": "bob", "address": BOB},
           {"name": "carol", "address": CAROL}]
TEAM = {"addresses": ["support@example.com"], "domains": ["example.com"], "members": MEMBERS}
ASKED = NOW - dt.timedelta(hours=30)  # past the 24 h SLA


def _team(**extra):
    return {**TEAM, **extra}


def _config_dict(**extra):
    return {"imap": {"host": "127.0.0.1", "username": "u", "password_env": "X"},
            "team": TEAM, **extra}


def _load(tmp_path: Path, **extra):
    return config_from_dict(_config_dict(**extra), tmp_path / "config.yaml")


def _threads(cfg, *args, now=NOW) -> list[dict]:
    return json.loads(ok(cfg, "threads", "--json", *args, now=now).stdout)


def _by_subject(cfg) -> dict[str, dict]:
    return {t["subject"]: t for t in _threads(cfg)}


# -- the rota, pure ----------------------------------------------------------------------


def test_a_weekday_rota_changes_hands_at_local_midnight_across_a_dst_change():
    """Europe/Berlin leaves summer time in the night to Sunday 2026-10-25: Saturday ends
    at 22:00 UTC, Sunday (25 hours long) at 23:00 UTC."""
    rota = Rota(weekdays={5: "alice", 6: "bob", 0: "carol"})
    members = _load(Path("/tmp")).team.members
    zone = "Europe/Berlin"

    def who(utc: str) -> str | None:
        member = on_duty(members, rota, dt.datetime.fromisoformat(utc), zone)
        return member.name if member else None

    assert who("2026-10-24T21:59:59+00:00") == "alice"
    assert who("2026-10-24T22:00:00+00:00") == "bob"
    assert who("2026-10-25T22:59:59+00:00") == "bob"  # 23:59 CET, the long day
    assert who("2026-10-25T23:00:00+00:00") == "carol"
    assert who("2026-10-27T12:00:00+00:00") is None  # Tuesday: nobody in this map


def test_a_rotation_hands_on_every_week_and_runs_back_before_its_start():
    rota = Rota(every=7, start=dt.date(2026, 11, 30), order=["alice", "bob", "carol"])
    assert [rota.name_on(dt.date(2026, 11, 30) + dt.timedelta(days=d))
            for d in (0, 6, 7, 13, 14, 21)] == ["alice", "alice", "bob", "bob", "carol", "alice"]
    assert rota.name_on(dt.date(2026, 11, 29)) == "carol"


def test_the_rota_and_on_duty_in_report_to_are_read_from_the_config(tmp_path):
    config = _load(tmp_path, team=_team(rota={"every": "1w", "start": "2026-11-30",
                                               "members": ["alice", "bob"]}),
                   report={"to": ["lead@example.com", "on_duty"], "timezone": "UTC"})
    assert report_recipients(config, dt.datetime(2026, 12, 8, 9, tzinfo=dt.UTC)) == [
        "lead@example.com", BOB]


@pytest.mark.parametrize(("team", "report", "key", "words"), [
    (_team(members=[{"name": "alice", "address": "alice@elsewhere.test"}]), {},
     "team.members[0].address", "not a team address"),
    (_team(members=[{"name": "alice", "address": ALICE}, {"name": "alice", "address": BOB}]),
     {}, "team.members[1].name", "listed twice"),
    (_team(members=[{"name": "me", "address": ALICE}]), {}, "team.members[0].name",
     "cannot be a member name"),
    (_team(members=[{"name": "Alice Smith", "address": ALICE}]), {}, "team.members[0].name",
     "cannot be a member name"),
    (_team(rota={"mon": "dave"}), {}, "team.rota.mon", "not in team.members"),
    (_team(rota={"every": "36h", "start": "2026-11-30", "members": ["alice"]}), {},
     "team.rota.every", "whole days"),
    (_team(rota={"every": "1w", "members": ["alice"]}), {}, "team.rota.start", "missing"),
    (_team(rota={"monday": "alice"}), {}, "team.rota.monday", "unknown key"),
    (TEAM, {"to": ["on_duty"]}, "report.to", "needs team.rota"),
])
def test_a_broken_team_config_names_its_key(tmp_path, team, report, key, words):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, team=team, report=report)
    assert f": {key}: " in str(info.value) and words in str(info.value), str(info.value)


def test_a_broken_team_config_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config_dict(team=_team(rota={"mon": "dave"}))))
    result = triage(path, "threads")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {path}: team.rota.mon: 'dave' is not in team.members"]


# -- assignment through the CLI ------------------------------------------------------------


@pytest.fixture
def team_mailbox(tmp_path, mailbox, monkeypatch):
    """Three customer threads (two from one company, one from a gmail.com user), synced with
    a rota that gives every day to bob."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    put(mailbox, msgid="q1@acme.test", subject="Export fails", frm="Ann <ann@acme.test>",
        date=ASKED)
    put(mailbox, msgid="q2@acme.test", subject="Invoice wrong", frm="Ben <ben@acme.test>",
        date=ASKED)
    put(mailbox, msgid="q3@gmail.com", subject="Cannot log in", frm="Dee <dee@gmail.com>",
        date=ASKED)
    put(mailbox, msgid="q4@gmail.com", subject="Sync slow", frm="Eve <eve@gmail.com>",
        date=ASKED)
    rota = {day: "bob" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    cfg = write_config(tmp_path, mailbox, team=_team(rota=rota))
    ok(cfg, "sync")
    return mailbox, cfg


def test_new_customer_threads_go_to_who_is_on_duty(team_mailbox):
    _, cfg = team_mailbox
    threads = _threads(cfg)
    assert {t["assignee"] for t in threads} == {"bob"}
    history = json.loads(ok(cfg, "show", str(threads[0]["id"]), "--json").stdout)["history"]
    assert {"field": "assignee", "old": None, "new": "bob", "cause": "sync: on duty"} in [
        {k: h[k] for k in ("field", "old", "new", "cause")} for h in history]


def test_assign_unassign_and_the_filters(team_mailbox):
    _, cfg = team_mailbox
    t = _by_subject(cfg)
    export, invoice = str(t["Export fails"]["id"]), str(t["Invoice wrong"]["id"])
    ok(cfg, "assign", export, invoice, "alice")
    ok(cfg, "--as", "carol", "assign", invoice, "me")
    ok(cfg, "unassign", str(t["Cannot log in"]["id"]))
    owners = {s: x["assignee"] for s, x in _by_subject(cfg).items()}
    assert owners == {"Export fails": "alice", "Invoice wrong": "carol", "Cannot log in": None,
                      "Sync slow": "bob"}
    assert [x["subject"] for x in _threads(cfg, "--assignee", "alice")] == ["Export fails"]
    assert [x["subject"] for x in _threads(cfg, "--assignee", CAROL)] == ["Invoice wrong"]
    assert [x["subject"] for x in _threads(cfg, "--assignee", "none")] == ["Cannot log in"]
    overdue = json.loads(ok(cfg, "overdue", "--json", "--assignee", "bob").stdout)
    assert [(i["subject"], i["assignee"]) for i in overdue] == [("Sync slow", "bob")]
    table = ok(cfg, "threads").stdout
    assert "OWNER" in table and "alice" in table
    history = json.loads(ok(cfg, "show", invoice, "--json").stdout)["history"]
    assert [(h["old"], h["new"], h["cause"]) for h in history if h["field"] == "assignee"] == [
        (None, "bob", "sync: on duty"), ("bob", "alice", "cli: by someone"),
        ("alice", "carol", "cli: by carol")]


@pytest.mark.parametrize(("args", "words"), [
    (("assign", "1", "dave"), "'dave' is not in team.members"),
    (("assign", "1", "me"), "'me' needs --as"),
    (("--as", "dave", "note", "1", "hello"), "'dave' is not in team.members"),
    (("assign", "999", "alice"), "no thread '999'"),
])
def test_assigning_to_someone_unknown_is_one_line(team_mailbox, args, words):
    _, cfg = team_mailbox
    result = triage(cfg, *args)
    assert result.exit_code in (1, 2) and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_members_reply_makes_an_unowned_thread_theirs_until_unassigned_by_hand(team_mailbox):
    mailbox, cfg = team_mailbox
    tid = str(_by_subject(cfg)["Export fails"]["id"])
    ok(cfg, "unassign", tid, now=NOW + dt.timedelta(minutes=1))
    put(mailbox, msgid="a1@example.com", subject="Re: Export fails", frm=f"Alice <{ALICE}>",
        to="ann@acme.test", in_reply_to="q1@acme.test", date=NOW + dt.timedelta(minutes=5))
    ok(cfg, "sync", now=NOW + dt.timedelta(minutes=10))
    assert _by_subject(cfg)["Export fails"]["assignee"] == "alice"

    ok(cfg, "unassign", tid, now=NOW + dt.timedelta(minutes=20))
    put(mailbox, msgid="q1b@acme.test", subject="Re: Export fails", frm="Ann <ann@acme.test>",
        in_reply_to="a1@example.com", date=NOW + dt.timedelta(minutes=30))
    ok(cfg, "sync", now=NOW + dt.timedelta(minutes=40))  # the thread is refreshed again
    assert _by_subject(cfg)["Export fails"]["assignee"] is None  # the old reply is not news


def test_reply_as_a_member_claims_the_thread(tmp_path, mailbox, smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", smtp_server.password)
    put(mailbox, msgid="q1@acme.test", subject="Export fails", frm="Ann <ann@acme.test>",
        date=ASKED)
    smtp = {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
            "username": smtp_server.username, "password_env": "TEST_SMTP_PASSWORD"}
    cfg = write_config(tmp_path, mailbox, team=TEAM, smtp=smtp)
    ok(cfg, "sync")
    [thread] = _threads(cfg)
    assert thread["assignee"] is None  # no rota
    ok(cfg, "--as", "alice", "reply", str(thread["id"]), "sorry", "--send")
    assert len(smtp_server.wait_for(1)) == 1
    [thread] = _threads(cfg)
    assert thread["assignee"] == "alice"


# -- notes and the customer's history ----------------------------------------------------


def test_notes_are_kept_shown_and_explained_never_sent(team_mailbox):
    _, cfg = team_mailbox
    tid = str(_by_subject(cfg)["Export fails"]["id"])
    ok(cfg, "--as", "alice", "note", tid, "Ann is on the Pro plan; see ticket 7")
    ok(cfg, "note", tid, "-", input="second line follows\n\x1b[2Jcleared?\n",
       now=NOW + dt.timedelta(minutes=1))
    detail = json.loads(ok(cfg, "show", tid, "--json").stdout)
    assert [(n["author"], n["text"]) for n in detail["notes"]] == [
        ("alice", "Ann is on the Pro plan; see ticket 7"),
        (None, "second line follows\n\x1b[2Jcleared?")]
    text = ok(cfg, "show", tid).stdout
    assert "alice: Ann is on the Pro plan" in text and "\x1b" not in text
    explained = ok(cfg, "explain", tid).stdout
    assert "note" in explained and "Pro plan" in explained
    assert triage(cfg, "note", tid, "   ").exit_code == 2


def test_a_customers_other_threads_by_address_and_company_domain(team_mailbox):
    _, cfg = team_mailbox
    t = _by_subject(cfg)
    assert [x["subject"] for x in _threads(cfg, "--customer", "ann@acme.test")] == [
        "Export fails"]
    assert sorted(x["subject"] for x in _threads(cfg, "--customer", "@acme.test")) == [
        "Export fails", "Invoice wrong"]
    acme = json.loads(ok(cfg, "show", str(t["Export fails"]["id"]), "--json").stdout)
    assert [(o["subject"], o["by"]) for o in acme["other_threads"]] == [
        ("Invoice wrong", "domain")]
    assert "Invoice wrong" in ok(cfg, "show", str(t["Export fails"]["id"])).stdout
    gmail = json.loads(ok(cfg, "show", str(t["Cannot log in"]["id"]), "--json").stdout)
    assert gmail["other_threads"] == []  # everyone at gmail.com is not one customer


# -- the report by owner -----------------------------------------------------------------


def test_the_report_groups_overdue_threads_by_owner_nobodys_first(team_mailbox):
    _, cfg = team_mailbox
    t = _by_subject(cfg)
    ok(cfg, "assign", str(t["Export fails"]["id"]), "alice")
    ok(cfg, "unassign", str(t["Cannot log in"]["id"]))
    report = json.loads(ok(cfg, "report", "--json").stdout)
    assert report["headline"]["overdue"] == 4
    assert [(g["label"], sorted(i["subject"] for i in g["threads"]))
            for g in report["overdue_groups"]] == [
        ("unassigned", ["Cannot log in"]), ("alice", ["Export fails"]),
        ("bob", ["Invoice wrong", "Sync slow"])]
    text = ok(cfg, "report").stdout
    assert text.index("unassigned (1):") < text.index("alice (1):") < text.index("bob (2):")


def test_a_rule_assigns_before_the_rota_and_never_over_a_person(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    put(mailbox, msgid="q1@acme.test", subject="Invoice wrong", frm="Ann <ann@acme.test>")
    put(mailbox, msgid="q2@acme.test", subject="Export fails", frm="Ann <ann@acme.test>")
    rules = [{"name": "billing", "match": {"subject": "/invoice/"}, "assign": "carol"}]
    cfg = write_config(tmp_path, mailbox, team=_team(rota={"every": "1d", "start": "2026-01-01",
                                                             "members": ["bob"]}), rules=rules)
    ok(cfg, "sync")
    owners = {s: t["assignee"] for s, t in _by_subject(cfg).items()}
    assert owners == {"Invoice wrong": "carol", "Export fails": "bob"}
    tid = str(_by_subject(cfg)["Invoice wrong"]["id"])
    ok(cfg, "assign", tid, "alice")
    put(mailbox, msgid="q3@acme.test", subject="Re: Invoice wrong", frm="Ann <ann@acme.test>",
        in_reply_to="q1@acme.test", date=NOW)
    ok(cfg, "sync", now=NOW + dt.timedelta(minutes=5))
    assert _by_subject(cfg)["Invoice wrong"]["assignee"] == "alice"


def test_a_rule_assigning_to_someone_not_on_the_team_is_a_config_error(tmp_path):
    rules = [{"name": "billing", "match": {"subject": "/invoice/"}, "assign": "dave"}]
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, rules=rules)
    assert ": rules[0] (billing).assign: 'dave' is not in team.members" in str(info.value)
