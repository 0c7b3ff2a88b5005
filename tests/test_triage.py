"""Triage against a real Dovecot holding the sample support mailbox: every case a careful
human would judge, plus unit and property tests of the pure "whose turn" logic."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.config import TeamConfig, load_config
from mailtriage.overdue import overdue
from mailtriage.sample import CASE_SUBJECTS, build_sample
from mailtriage.senders import AUTO, CUSTOMER, US
from mailtriage.store import open_db
from mailtriage.summary import Event, summarize
from mailtriage.sync import sync

from support.cli import triage
from support.dovecot import Account, Dovecot
from support.env import isolate
from support.mailfactory import NOW, mail, write_config

TEAM = TeamConfig(addresses=["support@example.com"], domains=["example.com"])
RULES = [
    {"name": "billing", "any": [{"subject": "/invoice|refund|billing/"}], "tags": ["+billing"]},
    {"name": "urgent", "match": {"subject": "/urgent/"}, "tags": ["+urgent"],
     "priority": "urgent"},
]
SLA = {"default": "24h", "overrides": {"urgent": "4h"}}


def load_sample(mailbox: Account) -> None:
    for m in build_sample(NOW):
        mailbox.append(m.folder, m.raw, flags=m.flags, internaldate=m.date)


def sample_config(directory: Path, account: Account) -> Path:
    return write_config(directory, account, rules=RULES, sla=SLA)


@pytest.fixture(scope="module")
def synced_sample(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Account, Path]:
    """The sample mailbox in an account of this module, synced once: (account, its database).

    Tests get copies of the database (`sample_env`) and must not change the account.
    """
    account = dovecot.add_user("triage-sample@example.com", "sample-pass")
    load_sample(account)
    directory = tmp_path_factory.mktemp("synced-sample")
    with pytest.MonkeyPatch.context() as mp:  # module scope: outside the per-test isolation
        isolate(mp, directory / "home")
        mp.setenv("TEST_IMAP_PASSWORD", account.password)
        config = load_config(sample_config(directory, account))
        db = open_db(config.db_path)
        sync(db, config, NOW)
        db.close()
    return account, config.db_path


@pytest.fixture
def sample_env(tmp_path: Path, synced_sample: tuple[Account, Path],
               monkeypatch: pytest.MonkeyPatch) -> tuple[Account, Path]:
    """A config of this test's own with a copy of the synced sample's database."""
    account, db_path = synced_sample
    monkeypatch.setenv("TEST_IMAP_PASSWORD", account.password)
    cfg = sample_config(tmp_path, account)
    target = load_config(cfg).db_path
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db_path}{suffix}")
        if source.exists():
            shutil.copy2(source, f"{target}{suffix}")
    return account, cfg


@pytest.fixture
def own_sample_env(tmp_path: Path, mailbox: Account,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[Account, Path]:
    """The sample in a fresh account of this test's own, not yet synced (for adding mail)."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    load_sample(mailbox)
    return mailbox, sample_config(tmp_path, mailbox)


def cli_json(cfg: Path, *args: str, now: dt.datetime = NOW) -> Any:
    res = triage(cfg, *args, now=now)
    assert res.exit_code in (0, 3), res.output
    return json.loads(res.stdout)


def subjects(items) -> set[str]:
    return {i["subject"] for i in items}


def test_overdue_lists_exactly_what_a_careful_human_would(sample_env):
    _, cfg = sample_env
    assert triage(cfg, "sync").exit_code == 0
    items = cli_json(cfg, "overdue", "--json")
    unanswered = {i["subject"] for i in items if i["reason"] == "unanswered"}
    expected = set(CASE_SUBJECTS["overdue"]) | set(CASE_SUBJECTS["customer-again"]) \
        | set(CASE_SUBJECTS["subject-join"])
    assert unanswered == expected
    # oldest first, fields as documented
    waits = [i["waiting_since"] for i in items]
    assert waits == sorted(waits)
    first = items[0]
    for key in ("thread_id", "subject", "customer", "waiting_since", "due_at", "age_hours",
                "reason", "tags", "message_ids"):
        assert key in first
    assert first["waiting_since"].endswith("Z") and first["due_at"].endswith("Z")
    assert not any(mid.startswith("<") for i in items for mid in i["message_ids"])
    urgent = next(i for i in items if i["subject"].startswith("URGENT"))
    assert "urgent" in urgent["tags"] and urgent["priority"] == "urgent"
    # the 4h override makes the urgent thread due 4h after it arrived
    due = dt.datetime.fromisoformat(urgent["due_at"].replace("Z", "+00:00"))
    since = dt.datetime.fromisoformat(urgent["waiting_since"].replace("Z", "+00:00"))
    assert due - since == dt.timedelta(hours=4)


def test_states_of_every_sample_case(sample_env):
    _, cfg = sample_env
    threads = cli_json(cfg, "threads", "--json")
    by_subject = {t["subject"]: t for t in threads}
    for case in ("waiting", "teammate-answered", "auto-reply", "follow-up", "attachment",
                 "qp-body"):
        for subject in CASE_SUBJECTS[case]:
            assert by_subject[subject]["state"] == "waiting", (case, subject)
            assert by_subject[subject]["waiting_since"] is None
    for case in ("open", "html-only", "no-message-id", "subject-injection", "base64-body",
                 "in-reply-to-only", "overdue", "customer-again", "subject-join"):
        for subject in CASE_SUBJECTS[case]:
            assert by_subject[subject]["state"] == "open", (case, subject)
            assert by_subject[subject]["waiting_since"]
    for subject in CASE_SUBJECTS["newsletter"] + ("Undelivered Mail Returned to Sender",):
        assert by_subject[subject]["state"] == "closed"
        assert "automated" in by_subject[subject]["tags"]
    billing = cli_json(cfg, "threads", "--json", "--tag", "billing")
    assert billing and all("billing" in t["tags"] for t in billing)
    assert "Invoice #1234 charged twice" in {t["subject"] for t in billing}
    waiting = cli_json(cfg, "threads", "--json", "--state", "waiting", "--limit", "3")
    assert len(waiting) == 3 and {t["state"] for t in waiting} == {"waiting"}
    # the Outlook reply (In-Reply-To only) and the header-less RE: joined their threads
    assert by_subject["Cannot change billing address"]["message_count"] >= 3
    assert by_subject["Dark mode for the dashboard?"]["message_count"] >= 3
    # an auto-reply to our answer does not make the customer wait
    detail = cli_json(cfg, "show", str(by_subject["How long do you keep deleted files?"]["id"]),
                      "--json")
    assert any("auto-submitted:auto-replied" in m["auto_signals"] for m in detail["messages"])


def test_customer_writing_again_reopens_and_snooze_expires(own_sample_env):
    mb, cfg = own_sample_env
    config = load_config(cfg)
    db = open_db(config.db_path)
    sync(db, config, NOW)
    threads = {t["subject"]: t for t in cli_json(cfg, "threads", "--json")}
    tid = threads["Two-factor codes not arriving"]["id"]
    assert triage(cfg, "close", str(tid)).exit_code == 0
    snoozed = threads["Adding seats to our plan"]["id"]
    assert triage(cfg, "snooze", str(snoozed), "--until", "2d").exit_code == 0
    # snoozed threads are not listed as open
    open_ids = {t["id"] for t in cli_json(cfg, "threads", "--json", "--state", "open")}
    assert snoozed not in open_ids
    # the customer writes again to the closed thread
    last_mid = threads["Two-factor codes not arriving"]["message_ids"][-1]
    later = NOW + dt.timedelta(hours=1)
    mb.append("INBOX", mail(msgid="again@c.test", subject="Re: Two-factor codes not arriving",
                            frm=threads["Two-factor codes not arriving"]["customer"],
                            in_reply_to=last_mid, date=later), internaldate=later)
    sync(db, config, later)
    t = next(t for t in cli_json(cfg, "threads", "--json", now=later) if t["id"] == tid)
    assert t["state"] == "open"
    history = cli_json(cfg, "show", str(tid), "--json", now=later)["history"]
    assert [h["cause"] for h in history if h["field"] == "state"][-2:] == \
        ["cli", "sync: new customer mail"]
    # after the snooze runs out, the thread is back (and overdue: it waited > 24h)
    after = NOW + dt.timedelta(days=3)
    sync(db, config, after)
    assert snoozed in {i["thread_id"] for i in cli_json(cfg, "overdue", "--json", now=after)}


def test_follow_up_due_after_holding_reply(sample_env):
    _, cfg = sample_env
    config = load_config(cfg)
    db = open_db(config.db_path)
    items = overdue(db, config, NOW, holding_templates={"sorry"})
    follow = [i for i in items if i["reason"] == "followup"]
    assert subjects(follow) == set(CASE_SUBJECTS["follow-up"])
    # a human tagging `acked` after our reply marks that reply as a holding one
    tid = db.execute("SELECT id FROM threads WHERE subject = 'Two-factor codes not arriving'"
                     ).fetchone()[0]
    res = triage(cfg, "tag", str(tid), "+acked")
    assert res.exit_code == 0
    later = NOW + dt.timedelta(days=3)
    follow = {i["thread_id"] for i in overdue(db, config, later, holding_templates={"sorry"})
              if i["reason"] == "followup"}
    assert tid in follow


def test_team_reply_from_teammate_address_counts_as_ours(sample_env):
    _, cfg = sample_env
    config = load_config(cfg)
    db = open_db(config.db_path)
    row = db.execute("SELECT last_sender FROM threads WHERE subject = 'Refund for unused seats'"
                     ).fetchone()
    assert row[0] == "us"


def test_business_hours_over_a_weekend_and_holiday(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    # Friday 2025-11-14 17:55 Berlin; Monday 2025-11-17 declared a holiday. (Past dates:
    # Dovecot clamps an INTERNALDATE in the future to the time of the APPEND.)
    friday = dt.datetime(2025, 11, 14, 16, 55, tzinfo=dt.UTC)
    mailbox.append("INBOX", mail(msgid="fri@c.test", subject="Friday evening", date=friday),
                   internaldate=friday)
    cfg = write_config(tmp_path, mailbox, sla={
        "default": "8h", "business_hours": {"timezone": "Europe/Berlin", "days": "mon-fri",
                                            "start": "09:00", "end": "17:00",
                                            "holidays": ["2025-11-17"]}})
    config = load_config(cfg)
    db = open_db(config.db_path)
    sync(db, config, friday)
    saturday = dt.datetime(2025, 11, 15, 12, 0, tzinfo=dt.UTC)
    assert overdue(db, config, saturday) == []  # wall clock would say 19h: SLA says 0
    item = overdue(db, config, saturday, include_not_due=True)[0]
    # clock starts Tuesday 09:00 Berlin (08:00 UTC) and runs 8 business hours
    assert item["due_at"] == "2025-11-18T16:00:00Z"
    assert item["sla_age_hours"] == 0
    late = dt.datetime(2025, 11, 18, 16, 0, tzinfo=dt.UTC)
    assert [i["subject"] for i in overdue(db, config, late)] == ["Friday evening"]
    res = triage(cfg, "explain", "1", now=late)
    assert "clock ran" in res.output and "OVERDUE" in res.output
    res = triage(cfg, "overdue", now=late)
    header, row = res.output.splitlines()[:2]
    assert "SLA AGE" in header and "8h" in row  # 4d wall clock, 8 business hours


def test_fail_if_any_exit_status(sample_env):
    _, cfg = sample_env
    assert triage(cfg, "sync").exit_code == 0
    assert triage(cfg, "overdue", "--fail-if-any").exit_code == 3
    early = (NOW - dt.timedelta(days=30)).isoformat()
    res = triage(cfg, "overdue", "--fail-if-any", now=early)
    assert res.exit_code == 0


def test_retag_dry_run_changes_nothing(sample_env, tmp_path):
    mb, cfg = sample_env
    config = load_config(cfg)
    db = open_db(config.db_path)
    before = db.execute("SELECT COUNT(*) FROM tags").fetchone()[0]
    data = cfg.read_text().replace("/urgent/", "/urgent|export/")
    cfg.write_text(data)
    res = triage(cfg, "retag", "--dry-run")
    assert res.exit_code == 0
    assert "would change +urgent" in res.output and "CSV export" not in res.output
    assert db.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == before
    res = triage(cfg, "retag")
    assert db.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == before + 1
    causes = {r[0] for r in db.execute("SELECT cause FROM history WHERE field = 'tag'")}
    assert "rule:urgent" in causes


def test_manual_tags_the_notmuch_way(sample_env):
    _, cfg = sample_env
    res = triage(cfg, "tag", "1", "+vip", "-billing")
    assert res.exit_code == 0, res.output
    assert "vip" in cli_json(cfg, "show", "1", "--json")["tags"]
    assert triage(cfg, "tag", "1", "vip").exit_code == 2
    assert triage(cfg, "tag", "99999", "+x").exit_code == 1


# -- pure logic -------------------------------------------------------------------------

def ev(hours: float, kind: str) -> Event:
    frm = {"us": "support@example.com", "customer": "c@c.test", "auto": "c@c.test"}[kind]
    return Event(at=NOW + dt.timedelta(hours=hours), kind=kind, from_addr=frm,
                 signals=["x-autoreply"] if kind == AUTO else [])


def test_waiting_since_is_first_customer_message_after_our_last_reply():
    s = summarize([ev(0, CUSTOMER), ev(1, US), ev(2, CUSTOMER), ev(3, AUTO), ev(4, CUSTOMER)],
                  TEAM)
    assert s.waiting_since == NOW + dt.timedelta(hours=2)
    assert s.first_response_at == NOW + dt.timedelta(hours=1)
    assert summarize([ev(0, CUSTOMER), ev(1, US), ev(2, AUTO)], TEAM).waiting_since is None
    only_auto = summarize([ev(0, AUTO)], TEAM)
    assert only_auto.automated and only_auto.waiting_since is None


kinds = st.sampled_from([US, CUSTOMER, AUTO])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), kinds), max_size=12), st.integers(0, 600))
def test_adding_a_team_reply_never_makes_a_thread_more_overdue(events, reply_at):
    base = [ev(h, k) for h, k in events]
    before = summarize(base, TEAM).waiting_since
    after = summarize([*base, ev(reply_at, US)], TEAM).waiting_since
    # waiting either stops, or started no earlier than before
    assert after is None or (before is not None and after >= before)
