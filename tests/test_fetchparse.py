"""The lean FETCH parser gives what imapclient's parser gives, on real server responses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from imapclient.response_parser import parse_fetch_response

from mailtriage import fetchparse
from mailtriage.config import load_config
from mailtriage.imap import IMAPSession
from mailtriage.sample import build_sample

from support.mailfactory import NOW, mail, write_config

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def test_internaldate_parsing():
    assert fetchparse.internaldate(b" 1-Nov-2026 10:00:05 +0130") == dt.datetime(
        2026, 11, 1, 10, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1, minutes=30)))
    with pytest.raises(fetchparse.Unparsed):
        fetchparse.internaldate(b"yesterday")


def test_odd_shapes_are_refused_not_misread():
    with pytest.raises(fetchparse.Unparsed):
        fetchparse.parse([b"1 (UID 5 ENVELOPE (NIL \"x\" ((NIL NIL \"a\" \"b\"))))"])
    assert fetchparse.parse([b"1 (FLAGS (\\Seen))"]) == {}  # unsolicited, no UID: skipped
    parsed = fetchparse.parse([(b'3 (UID 9 FLAGS (\\Seen $Junk) BODY[TEXT]<0> {3}', b"abc"),
                               b' RFC822.SIZE 77 INTERNALDATE "01-Nov-2026 10:00:00 +0000")'])
    assert parsed[9][b"BODY[TEXT]<0>"] == b"abc" and parsed[9][b"RFC822.SIZE"] == 77
    assert parsed[9][b"FLAGS"] == (b"\\Seen", b"$Junk")


def test_lean_parser_equals_imapclient_on_real_responses(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    raws = [m.raw for m in build_sample(NOW)]
    raws.append(mail(msgid="empty@c.test", body=""))
    raws.append(mail(msgid='q"uote@c.test', subject='a "quoted" \\ subject'))
    if CORPORA.is_dir():
        raws += [p.read_bytes() for p in sorted(CORPORA.rglob("*"))
                 if p.is_file() and p.name != "README.md"]
    mailbox.deliver_maildir("INBOX", raws, flags=["\\Seen", "\\Flagged"])
    c = mailbox.client()
    c.select_folder("INBOX")
    c.add_flags(c.search(["ALL"])[:5], [b"$Label1", b"Junk"])  # keywords, too
    c.logout()
    cfg = write_config(tmp_path, mailbox)
    session = IMAPSession(load_config(cfg).accounts[0])
    with session:
        session.examine("INBOX")
        uids = session.all_uids()
        assert len(uids) == len(raws)
        for start in range(0, len(uids), 100):
            data = session.fetch_data(uids[start:start + 100], session.fetch_items())
            ours = fetchparse.parse(list(data))
            theirs = parse_fetch_response(list(data), False, True)
            assert set(ours) == set(theirs)
            for uid, item in theirs.items():
                mine = {k: v for k, v in ours[uid].items() if k != b"UID"}  # it is the key
                assert mine == dict(item), uid


def test_imaplib_wire_logging_is_off_unless_someone_listens(tmp_path, mailbox, monkeypatch):
    """imapclient turns on imaplib's debug output (level 5) and filters it in logging: a
    logger call for every response line, a fifth of a bulk fetch's CPU.  The session turns
    it off unless the ``imapclient.imaplib`` logger would print it."""
    import logging

    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    account = load_config(write_config(tmp_path, mailbox)).accounts[0]
    with IMAPSession(account) as session:
        assert session._c()._imap.debug == 0
    wire = logging.getLogger("imapclient.imaplib")
    before = wire.level
    wire.setLevel(logging.DEBUG)  # (setLevel, which also clears logging's level cache)
    try:
        with IMAPSession(account) as session:
            assert session._c()._imap.debug == 5
    finally:
        wire.setLevel(before)
