"""Threading: pure grouping, incremental merges, the subject rule, hostile References."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mailtriage.config import TeamConfig, config_from_dict
from mailtriage.mailstore import store_batch
from mailtriage.pipeline import parse_batch
from mailtriage.source import Fetched
from mailtriage.store import open_db, resolve_thread_id
from mailtriage.threader import group

from support.mailfactory import NOW, mail

TEAM = TeamConfig(addresses=["support@example.com"], domains=["example.com"])


def test_group_by_overlapping_links():
    groups = group([("a", {"a"}), ("b", {"b", "a"}), ("c", {"c", "x"}), ("d", {"d", "x"}),
                    ("e", {"e"})])
    assert sorted(map(sorted, groups)) == [["a", "b"], ["c", "d"], ["e"]]


def test_cycles_and_self_references_terminate():
    items = [(f"m{i}", {f"m{i}", f"m{(i + 1) % 50}", f"m{i}"}) for i in range(50)]
    assert len(group(items)) == 1


class Store:
    def __init__(self, tmp_path: Path):
        self.config = config_from_dict(
            {"imap": {"host": "127.0.0.1", "username": "u", "password_env": "X"},
             "team": {"addresses": ["support@example.com"], "domains": ["example.com"]}},
            tmp_path / "config.yaml")
        self.db = open_db(tmp_path / "state.db")
        self.uid = 0

    def add(self, *raws: bytes, at: dt.datetime = NOW) -> None:
        batch = []
        for raw in raws:
            self.uid += 1
            head, _, body = raw.partition(b"\r\n\r\n")
            batch.append(Fetched(uid=self.uid, header_bytes=head + b"\r\n\r\n",
                                 body_prefix=body, flags=(), internal_date=at, size=len(raw)))
        with self.db.atomic():
            store_batch(self.db, self.config, "a", "INBOX", 1, parse_batch(batch), NOW)

    def thread_of(self, msgid: str) -> int:
        return self.db.execute("SELECT thread_id FROM messages WHERE message_id = ?",
                               [msgid]).fetchone()[0]


def test_a_later_message_merges_two_threads_and_the_old_id_still_resolves(tmp_path):
    s = Store(tmp_path)
    s.add(mail(msgid="a@x"))
    s.add(mail(msgid="b@x", subject="Other"))
    ta, tb = s.thread_of("a@x"), s.thread_of("b@x")
    assert ta != tb
    s.db.execute("INSERT INTO tags (thread_id, tag, added_at, cause) VALUES (?, 'vip', '', 'cli')",
                 [tb])
    s.add(mail(msgid="c@x", subject="Re: both", references=["a@x", "b@x"]))
    assert s.thread_of("a@x") == s.thread_of("b@x") == s.thread_of("c@x") == min(ta, tb)
    assert resolve_thread_id(s.db, tb) == min(ta, tb)
    tags = [r[0] for r in s.db.execute("SELECT tag FROM tags WHERE thread_id = ?", [min(ta, tb)])]
    assert tags == ["vip"]


def test_siblings_meet_at_a_parent_never_seen(tmp_path):
    s = Store(tmp_path)
    s.add(mail(msgid="r1@x", in_reply_to="ghost@x"), mail(msgid="r2@x", references=["ghost@x"]))
    assert s.thread_of("r1@x") == s.thread_of("r2@x")


def test_subject_rule_needs_prefix_participant_and_window(tmp_path):
    s = Store(tmp_path)
    s.add(mail(msgid="q@x", subject="Invoice", frm="ann@cust.test"), at=NOW)
    later = NOW + dt.timedelta(days=2)
    # same customer, "RE:" but no threading headers: joins
    s.add(mail(msgid="r@x", subject="RE: Invoice", frm="ann@cust.test"), at=later)
    # a different customer with the same subject: does not
    s.add(mail(msgid="o@x", subject="Re: Invoice", frm="bob@other.test"), at=later)
    # no reply prefix: does not
    s.add(mail(msgid="n@x", subject="Invoice", frm="ann@cust.test"), at=later)
    # outside the 14-day window: does not
    s.add(mail(msgid="w@x", subject="Re: Invoice", frm="ann@cust.test"),
          at=NOW + dt.timedelta(days=40))
    assert s.thread_of("r@x") == s.thread_of("q@x")
    for other in ("o@x", "n@x", "w@x"):
        assert s.thread_of(other) != s.thread_of("q@x"), other


def test_a_team_member_alone_is_not_a_shared_participant(tmp_path):
    s = Store(tmp_path)
    s.add(mail(msgid="q1@x", subject="Help", frm="ann@cust.test"))
    s.add(mail(msgid="q2@x", subject="Re: Help", frm="bob@other.test"),
          at=NOW + dt.timedelta(hours=1))
    assert s.thread_of("q1@x") != s.thread_of("q2@x")  # both wrote to support@ only
