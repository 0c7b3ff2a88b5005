"""Threading: pure grouping, incremental merges, the subject rule, hostile References."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from mailtriage.config import TeamConfig, config_from_dict
from mailtriage.mailstore import store_batch
from mailtriage.pipeline import parse_batch
from mailtriage.store import open_db, resolve_thread_id
from mailtriage.threader import group

from support.mailfactory import NOW, fetched, mail

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
        self.add_dated(*((raw, at) for raw in raws))

    def add_dated(self, *mails: tuple[bytes, dt.datetime]) -> None:
        """One batch, each message with its own INTERNALDATE."""
        batch = []
        for raw, at in mails:
            self.uid += 1
            batch.append(fetched(raw, self.uid, at))
        with self.db.atomic():
            store_batch(self.db, self.config, "a", "INBOX", 1, parse_batch(batch), NOW)

    def partition(self) -> set[frozenset[str]]:
        groups: dict[int, set[str]] = {}
        for mid, tid in self.db.execute("SELECT message_id, thread_id FROM messages"):
            groups.setdefault(tid, set()).add(mid)
        return {frozenset(g) for g in groups.values()}

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


def _days(n: float) -> dt.datetime:
    return NOW + dt.timedelta(days=n)


def test_a_follow_up_stored_before_the_message_it_follows_still_joins_it(tmp_path):
    """A clean sync stores by folder and UID, not by date: the later "Re:" without headers
    may come first (a higher UID, or the original sits in Sent).  Found by the chaos soak."""
    s = Store(tmp_path)
    s.add(mail(msgid="re@x", subject="Re: Invoice wrong", frm="ann@cust.test"), at=_days(1))
    s.add(mail(msgid="q@x", subject="Invoice wrong", frm="ann@cust.test"), at=_days(0))
    assert s.thread_of("re@x") == s.thread_of("q@x")
    ours = mail(msgid="us@x", subject="Re: Invoice wrong", frm="support@example.com",
                to="ann@cust.test", in_reply_to="q@x")
    s.add(ours, at=_days(0.5))
    assert len({s.thread_of(m) for m in ("re@x", "q@x", "us@x")}) == 1


def test_our_sent_message_stored_after_the_customers_follow_up_joins_it(tmp_path):
    s = Store(tmp_path)
    s.add(mail(msgid="re@x", subject="Re: Your order", frm="ann@cust.test"), at=_days(1))
    s.add(mail(msgid="us@x", subject="Your order", frm="support@example.com",
               to="ann@cust.test"), at=_days(0))
    assert s.thread_of("re@x") == s.thread_of("us@x")


MIXED = [  # (message, INTERNALDATE): every kind of pair rule 3 decides on
    (mail(msgid="q@x", subject="Invoice", frm="ann@cust.test"), _days(0)),
    (mail(msgid="r@x", subject="RE: Invoice", frm="ann@cust.test"), _days(2)),
    (mail(msgid="us@x", subject="Re: Invoice", frm="support@example.com", to="ann@cust.test",
          in_reply_to="q@x"), _days(1)),
    (mail(msgid="f@x", subject="Fwd: Invoice", frm="ann@cust.test"), _days(3)),
    (mail(msgid="o@x", subject="Re: Invoice", frm="bob@other.test"), _days(2.5)),
    (mail(msgid="b@x", subject="Invoice", frm="bob@other.test"), _days(2.2)),
    (mail(msgid="late@x", subject="Invoice", frm="ann@cust.test"), _days(30)),
    (mail(msgid="late-re@x", subject="Re: Invoice", frm="ann@cust.test"), _days(31)),
    (mail(msgid="far@x", subject="Re: Invoice", frm="ann@cust.test"), _days(60)),
]


def test_threads_do_not_depend_on_the_order_or_batches_messages_are_stored_in(tmp_path):
    rng = random.Random(20261124)
    partitions = set()
    for trial in range(25):
        order = MIXED[:]
        rng.shuffle(order)
        s = Store(tmp_path / str(trial))
        while order:
            size = rng.randint(1, 4)
            s.add_dated(*order[:size])
            order = order[size:]
        partitions.add(frozenset(s.partition()))
    [partition] = partitions
    assert partition == {frozenset({"q@x", "r@x", "us@x", "f@x"}),
                         frozenset({"o@x", "b@x"}), frozenset({"late@x", "late-re@x"}),
                         frozenset({"far@x"})}


def test_m013_marks_the_follow_up_subjects_stored_before_it(tmp_path):
    """Threading by subject finds stored follow-ups by ``follow_up_subject``: the migration
    that added it sets it on the messages already stored."""
    import sqlite3

    import sqlite_utils

    from mailtriage.schema import migrations

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    migrations.apply(sqlite_utils.Database(old), stop_before="m013_follow_up_subjects")
    subjects = ["Printer on fire", "Re: Printer on fire", "AW: Drucker", "Fwd: invoice",
                "[ext] RE: quote", "Regarding the invoice", None]
    old.executemany("INSERT INTO messages (id, key, subject) VALUES (?, ?, ?)",
                    [(n, f"k{n}", s) for n, s in enumerate(subjects, 1)])
    old.commit()
    old.close()
    db = open_db(path)
    marked = [r[0] for r in db.execute("SELECT follow_up_subject FROM messages ORDER BY id")]
    assert marked == [0, 1, 1, 1, 1, 0, 0]
