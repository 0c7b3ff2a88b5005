"""Gmail's X-GM fields, which no local server serves: FETCH answers in the shape Gmail sends
(its IMAP extensions page), through the lean parser and imapclient's, into rules."""

from __future__ import annotations

from imapclient.response_parser import parse_fetch_response

from mailtriage.config import config_from_dict
from mailtriage.fetchparse import parse
from mailtriage.imap import gmail_labels
from mailtriage.rules import MessageView, matching_rules

HEADER = (b"From: Ann <ann@acme.test>\r\nSubject: Refund\r\nMessage-ID: <g1@acme.test>\r\n"
          b"\r\n")
BODY = b"Please refund order 7.\r\n"
# imaplib's untagged data for one message: text up to each literal, the literal, the rest
RECORDED = [
    (b'1 (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334866 '
     b'X-GM-LABELS (\\Inbox \\Important "Customer A" "Wait \\"for\\" it" billing) UID 302 '
     b'FLAGS (\\Seen) INTERNALDATE " 1-Dec-2026 09:30:00 +0000" RFC822.SIZE 2048 MODSEQ (4711) '
     b'BODY[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)] {' + str(len(HEADER)).encode() + b'}',
     HEADER),
    (b' BODY[TEXT]<0> {' + str(len(BODY)).encode() + b'}', BODY),
    b')',
    b'2 (X-GM-THRID 1278455344230334867 X-GM-LABELS () UID 303 FLAGS () '
    b'INTERNALDATE "01-Dec-2026 10:00:00 +0000" RFC822.SIZE 10 MODSEQ (4712))',
]


def test_the_lean_parser_reads_gmails_fields_like_imapclient():
    ours = parse(RECORDED)
    theirs = dict(parse_fetch_response(RECORDED, False, True))
    assert ours[302][b"X-GM-THRID"] == theirs[302][b"X-GM-THRID"] == 1278455344230334865
    assert ours[302][b"X-GM-MSGID"] == 1278455344230334866
    labels = (b"\\Inbox", b"\\Important", b"Customer A", b'Wait "for" it', b"billing")
    assert ours[302][b"X-GM-LABELS"] == labels
    assert tuple(theirs[302][b"X-GM-LABELS"]) == labels
    assert ours[303][b"X-GM-LABELS"] == () and ours[302][b"FLAGS"] == (b"\\Seen",)
    assert gmail_labels(ours[302][b"X-GM-LABELS"]) == (
        "\\Inbox", "\\Important", "Customer A", 'Wait "for" it', "billing")


def test_a_rule_matches_a_gmail_label(tmp_path):
    config = config_from_dict(
        {"imap": {"host": "imap.gmail.com", "username": "u", "password_env": "X"},
         "team": {"addresses": ["support@example.com"]},
         "rules": [{"name": "vip", "match": {"label": "Customer *"}, "priority": "high"},
                   {"name": "inbox", "match": {"label": "/^\\\\inbox$/"}, "tags": ["+gm"]}]},
        tmp_path / "config.yaml")
    row = {"gm_labels": '["\\\\Inbox", "Customer A"]', "subject": "Refund"}
    assert [r.name for r in matching_rules(config.rules, MessageView(row))] == ["vip", "inbox"]
    assert matching_rules(config.rules, MessageView({"gm_labels": None})) == []
