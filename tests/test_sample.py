"""Tests for the sample mailbox (mailtriage.sample).

Triage tests and ``triage demo`` rely on every case being present with the exact shape
described in the module, so each case gets checked against the parsed message, not just
its tag.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import cache
from pathlib import Path

import pytest

from mailtriage.sample import CASE_SUBJECTS, SampleMessage, build_sample, write_maildir, write_mbox

NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)
SUPPORT = "support@example.com"


@cache
def sample() -> tuple[SampleMessage, ...]:
    return tuple(build_sample(NOW))


def parse(m: SampleMessage) -> EmailMessage:
    msg = email.message_from_bytes(m.raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parsed() -> list[tuple[SampleMessage, EmailMessage]]:
    return [(m, parse(m)) for m in sample()]


def with_subject(subject: str) -> list[tuple[SampleMessage, EmailMessage]]:
    return [(m, p) for m, p in parsed() if p["Subject"] == subject]


def thread(tag: str) -> list[tuple[SampleMessage, EmailMessage]]:
    return [(m, p) for m, p in parsed() if m.expect == tag]


def sender(msg: EmailMessage) -> str:
    return msg["From"].addresses[0].addr_spec.lower()


def age(m: SampleMessage) -> timedelta:
    return NOW - m.date


# ------------------------------------------------------------------------- shape and determinism


def test_same_now_and_seed_give_identical_bytes() -> None:
    again = build_sample(NOW)
    assert [m.raw for m in again] == [m.raw for m in sample()]
    assert again == list(sample())


def test_other_seed_changes_ids_but_keeps_the_cases() -> None:
    other = build_sample(NOW, seed=8)
    assert [m.raw for m in other] != [m.raw for m in sample()]
    assert Counter(m.expect for m in other) == Counter(m.expect for m in sample())


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError):
        build_sample(datetime(2024, 5, 15, 12, 0))


def test_size_and_dates() -> None:
    msgs = sample()
    assert 80 <= len(msgs) <= 100
    originals = {p["Subject"] for m, p in parsed()
                 if "In-Reply-To" not in p and not p["Subject"].lower().startswith("re:")}
    assert 30 <= len(originals) <= 40
    for m in msgs:
        assert m.date.tzinfo is not None and m.date.utcoffset() == timedelta(0)
        assert timedelta(0) < age(m) <= timedelta(days=10)
    assert [m.date for m in msgs] == sorted(m.date for m in msgs)


def test_every_message_parses_without_defects() -> None:
    for m, msg in parsed():
        for part in msg.walk():
            assert not part.defects, (m.expect, msg["Subject"], part.defects)
        for name, value in msg.items():
            assert not value.defects, (m.expect, name, value.defects)
        assert msg["From"] and msg["Date"] and msg["Subject"] is not None
        assert msg["Date"].datetime == m.date
        assert m.raw.isascii(), "all non-ASCII text is encoded"


def test_folders_flags_and_our_replies() -> None:
    for m, msg in parsed():
        assert m.folder in ("INBOX", "Sent")
        assert set(m.flags) <= {"\\Seen", "\\Answered", "\\Flagged"}
        if m.folder == "Sent":
            assert str(msg["From"]) == "Support Team <support@example.com>"
            assert m.flags == ("\\Seen",)
            assert msg["In-Reply-To"] and msg["References"]
        else:
            assert sender(msg) != SUPPORT
    inbox = [m for m in sample() if m.folder == "INBOX"]
    assert any("\\Seen" in m.flags for m in inbox)
    assert any("\\Seen" not in m.flags for m in inbox)


def test_message_ids_are_unique() -> None:
    ids = [p["Message-ID"] for _m, p in parsed() if p["Message-ID"]]
    assert len(ids) == len(set(ids)) == len(sample()) - 1


def test_non_ascii_names_are_encoded_words() -> None:
    raw = b"".join(m.raw for m in sample())
    assert b"=?utf-8?" in raw
    names = {p["From"].addresses[0].display_name for _m, p in parsed()}
    assert {"Zoë Müller", "José Álvarez", "王芳"} <= names


def test_case_tags_match_subjects() -> None:
    subjects_by_tag: dict[str, set[str]] = {}
    for m, msg in parsed():
        subjects_by_tag.setdefault(m.expect, set()).add(msg["Subject"])
    assert set(subjects_by_tag) == set(CASE_SUBJECTS) | {"resolved"}
    for tag, subjects in CASE_SUBJECTS.items():
        assert set(subjects) <= subjects_by_tag[tag], tag


# ------------------------------------------------------------------------------------ the cases


def test_case1_overdue_unanswered() -> None:
    msgs = thread("overdue")
    assert len(msgs) == 4
    assert {p["Subject"] for _m, p in msgs} >= {"Invoice #1234 charged twice",
                                                 "URGENT: production down"}
    for m, msg in msgs:
        assert m.folder == "INBOX" and "In-Reply-To" not in msg
        assert timedelta(hours=47) < age(m) < timedelta(hours=52)
        assert not with_subject("Re: " + msg["Subject"])


def test_case2_open_within_sla() -> None:
    [(m, msg)] = thread("open")
    assert timedelta(minutes=55) <= age(m) <= timedelta(hours=2)
    assert "\\Seen" not in m.flags


def test_case3_waiting_on_customer() -> None:
    msgs = thread("waiting")
    for subject in CASE_SUBJECTS["waiting"]:
        replies = [(m, p) for m, p in msgs if p["Subject"] == "Re: " + subject]
        last_m, last = replies[-1]
        assert last_m.folder == "Sent" and sender(last) == SUPPORT
        original = with_subject(subject)[0][1]
        assert original["Message-ID"] in last["References"]


def test_case4_teammate_answered_with_support_in_cc() -> None:
    [(c, cust), (r, reply)] = thread("teammate-answered")
    assert r.folder == "INBOX" and sender(reply) == "alice@example.com"
    assert SUPPORT in [a.addr_spec for a in reply["Cc"].addresses]
    assert reply["In-Reply-To"] == cust["Message-ID"]


def test_case5_customer_wrote_again_after_our_reply() -> None:
    [(_c, _first), (ours, _r), (again, msg)] = thread("customer-again")
    assert ours.folder == "Sent"
    assert again.folder == "INBOX" and sender(msg) != SUPPORT
    assert timedelta(hours=30) <= age(again) <= timedelta(hours=31)
    assert msg["In-Reply-To"]


def test_case6_outlook_reply_with_in_reply_to_only() -> None:
    [_first, (_m, ours), (_c, reply)] = thread("in-reply-to-only")
    assert reply["In-Reply-To"] == ours["Message-ID"]
    assert "References" not in reply
    assert reply["Subject"] == "RE: Cannot change billing address"


def test_case7_reply_joined_only_by_subject() -> None:
    [_first, (ours_m, ours), (m, reply)] = thread("subject-join")
    assert "In-Reply-To" not in reply and "References" not in reply
    assert reply["Subject"] == "RE: Dark mode for the dashboard?"
    assert sender(reply) == sender(thread("subject-join")[0][1])
    assert m.date - ours_m.date == timedelta(days=1)


def test_case8_auto_reply_to_our_reply() -> None:
    [_first, (_o, ours), (_m, auto)] = thread("auto-reply")
    assert auto["Auto-Submitted"] == "auto-replied"
    assert auto["Subject"].startswith("Out of office")
    assert auto["In-Reply-To"] == ours["Message-ID"]
    assert sender(auto) == sender(thread("auto-reply")[0][1])


def test_case9_bounce_is_a_delivery_status_report() -> None:
    [(m, dsn)] = with_subject("Undelivered Mail Returned to Sender")
    assert sender(dsn) == "mailer-daemon@mail.example.net"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    types = [p.get_content_type() for p in dsn.iter_parts()]
    assert types[:2] == ["text/plain", "message/delivery-status"]
    assert "In-Reply-To" not in dsn and m.expect == "bounce"


def test_case10_newsletter_list_headers() -> None:
    for _m, msg in thread("newsletter"):
        assert msg["List-Id"] and msg["List-Unsubscribe"]
        assert msg["Precedence"] == "bulk"


def test_case11_holding_reply_due_for_follow_up() -> None:
    [(_c, _cust), (m, msg)] = thread("follow-up")
    assert m.folder == "Sent" and msg["X-Mailtriage-Template"] == "sorry"
    assert "we're looking into it" in msg.get_content()
    assert timedelta(days=3) <= age(m) < timedelta(days=3, hours=1)
    marked = [m for m, p in parsed() if p["X-Mailtriage-Template"]]
    assert marked == [m]


def test_case12_html_only() -> None:
    [(_m, msg)] = thread("html-only")
    assert not msg.is_multipart() and msg.get_content_type() == "text/html"
    html = msg.get_content()
    assert "<style>" in html and "<script>" in html


def test_case13_no_message_id() -> None:
    [(m, msg)] = thread("no-message-id")
    assert "Message-ID" not in msg
    assert [s for s, p in parsed() if "Message-ID" not in p] == [m]


def test_case14_script_in_subject() -> None:
    [(_m, msg)] = thread("subject-injection")
    assert msg["Subject"] == "<script>alert(1)</script> broken page"


def test_case15_pdf_attachment() -> None:
    [(_m, msg), _reply] = thread("attachment")
    assert msg.get_content_type() == "multipart/mixed"
    [pdf] = list(msg.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf["Content-Transfer-Encoding"] == "base64"
    assert pdf.get_content().startswith(b"%PDF-")


def test_case16_quoted_printable_and_base64_bodies() -> None:
    qp = thread("qp-body")[0][1]
    assert qp["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Grüßen" in qp.get_content()
    [(_m, b64)] = thread("base64-body")
    assert b64["Content-Transfer-Encoding"] == "base64"
    assert b64.get_content_charset() == "utf-8"
    assert "乱码" in b64.get_content()


# ---------------------------------------------------------------------------------- writers


def test_write_maildir_layout(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    msgs = list(sample())
    write_maildir(msgs, root)
    write_maildir(msgs, root)  # idempotent: same names, no duplicates
    for folder in (root, root / ".Sent"):
        assert all((folder / sub).is_dir() for sub in ("cur", "new", "tmp"))
        assert not list((folder / "new").iterdir()) and not list((folder / "tmp").iterdir())
    inbox = sorted((root / "cur").iterdir())
    sent = sorted((root / ".Sent" / "cur").iterdir())
    assert len(inbox) == sum(m.folder == "INBOX" for m in msgs)
    assert len(sent) == sum(m.folder == "Sent" for m in msgs)

    by_name = {p.name.split(".")[1]: p for p in inbox + sent}
    for n, m in enumerate(msgs, 1):
        path = by_name[str(n)]
        stamp = int(m.date.timestamp())
        letters = "".join(sorted({"\\Seen": "S", "\\Answered": "R", "\\Flagged": "F"}[f]
                                 for f in m.flags))
        assert path.name == f"{stamp}.{n}.sample:2,{letters}"
        assert path.read_bytes() == m.raw
        assert int(os.stat(path).st_mtime) == stamp
    assert sum(1 for p in inbox if p.name.endswith(":2,")) >= 1  # some unseen mail


def test_write_mbox_holds_the_inbox(tmp_path: Path) -> None:
    path = tmp_path / "sample.mbox"
    msgs = list(sample())
    write_mbox(msgs, path)
    first = path.read_bytes()
    write_mbox(msgs, path)
    assert path.read_bytes() == first
    box = mailbox.mbox(str(path))
    try:
        ids = [box.get_message(k)["Message-ID"] for k in box.iterkeys()]
    finally:
        box.close()
    expected = [parse(m)["Message-ID"] for m in msgs if m.folder == "INBOX"]
    assert len(ids) == len(expected)
    assert [i for i in ids if i] == [str(i) for i in expected if i]
