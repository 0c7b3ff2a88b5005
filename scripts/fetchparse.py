"""A lean parser for the one bulk FETCH response shape sync asks for.

imapclient's general parser tokenises every byte of every literal in Python and
costs several times what the server needs to send the data (bench/README.md has the
figures: the library floor against the wire floor).
Sync always asks for the same items, so the responses have one simple shape::

    * 7 FETCH (UID 42 RFC822.SIZE 5120 FLAGS (\\Seen) INTERNALDATE "01-Nov-2026 10:00:00 +0100"
               MODSEQ (12) BODY[HEADER.FIELDS (...)] {431}<literal> BODY[TEXT]<0> {2048}<literal>)

imaplib already splits literals out of the stream; this module only scans the
short text between them with one regular expression.  Anything it does not
recognise raises :class:`Unparsed`, and the caller falls back to imapclient's
parser on the same data (tests compare the two on real mail).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_ITEM = re.compile(
    rb"\s*([A-Za-z0-9.\-]+(?:\[[^\]]*\](?:<\d+>)?)?)\s+"  # name, e.g. BODY[TEXT]<0>
    rb"(?:(\d+)"  # number
    rb"|\(((?:[^()\"]|\"(?:[^\"\\]|\\.)*\")*)\)"  # a flat list: FLAGS, MODSEQ, X-GM-LABELS
    rb"|\"((?:[^\"\\]|\\.)*)\""  # quoted string
    rb"|(NIL)"
    rb"|\{(\d+)\}$)"  # a literal follows (imaplib has read it for us)
)
_HEAD = re.compile(rb"\s*(\d+) \(")
_WORD = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\S+)')
_MONTHS = {m: i for i, m in enumerate(
    (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
     b"dec"), 1)}
_NUMERIC = {b"UID", b"RFC822.SIZE", b"X-GM-THRID", b"X-GM-MSGID"}


class Unparsed(Exception):
    """The response is not of the simple shape; use the general parser."""


def internaldate(value: bytes) -> dt.datetime:
    """``"01-Nov-2026 10:00:00 +0100"`` (day may be space-padded) as an aware datetime."""
    try:
        day, mon, rest = value.strip().split(b"-", 2)
        year, clock, zone = rest.split(b" ")
        hh, mm, ss = clock.split(b":")
        sign = -1 if zone[:1] == b"-" else 1
        offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
        return dt.datetime(int(year), _MONTHS[mon.lower()], int(day), int(hh), int(mm), int(ss),
                           tzinfo=dt.timezone(offset))
    except (ValueError, KeyError, IndexError) as exc:
        raise Unparsed(f"INTERNALDATE {value!r}") from exc


def _unquote(raw: bytes) -> bytes:
    return re.sub(rb"\\(.)", rb"\1", raw) if b"\\" in raw else raw


def _scan(text: bytes, msg: dict[bytes, Any]) -> bytes | None:
    """Read ``name value`` pairs; return the name whose literal follows, if any."""
    pos = 0
    end = len(text)
    while pos < end:
        if text[pos:].strip() in (b"", b")"):
            return None
        m = _ITEM.match(text, pos)
        if not m:
            raise Unparsed(text[pos:pos + 60])
        name = m.group(1).upper()
        number, plist, quoted, nil, literal = m.group(2, 3, 4, 5, 6)
        if literal is not None:
            return name
        if number is not None:
            msg[name] = int(number) if name in _NUMERIC else number
        elif plist is not None:
            if name == b"MODSEQ":
                msg[name] = (int(plist),)
            elif b'"' in plist:  # X-GM-LABELS: "Customer A" \\Inbox
                msg[name] = tuple(_unquote(q) if q or not w else w
                                  for q, w in _WORD.findall(plist))
            else:
                msg[name] = tuple(plist.split())
        elif quoted is not None:
            value = _unquote(quoted)
            msg[name] = internaldate(value) if name == b"INTERNALDATE" else value
        else:
            msg[name] = None
        pos = m.end()
    return None


def parse(data: list[Any]) -> dict[int, dict[bytes, Any]]:
    """imaplib's untagged FETCH data -> {uid: {item: value}} like imapclient's (normalise off)."""
    out: dict[int, dict[bytes, Any]] = {}
    msg: dict[bytes, Any] | None = None
    for item in data:
        if item is None:
            continue
        text, literal = item if isinstance(item, tuple) else (item, None)
        if msg is None:
            msg, text = _start(text)
        pending = _scan(text, msg)
        if literal is not None:
            if pending is None:
                raise Unparsed(b"literal without a name")
            msg[pending] = literal
            continue
        # imaplib ends an item at a literal or at the end of the response line
        if pending is not None or not text.rstrip().endswith(b")"):
            raise Unparsed(text[-60:])
        uid = msg.get(b"UID")
        if isinstance(uid, int):  # else an unsolicited flag update: sync does not need it
            out[uid] = msg
        msg = None
    if msg is not None:
        raise Unparsed(b"unterminated FETCH response")
    return out


def _start(text: bytes) -> tuple[dict[bytes, Any], bytes]:
    """``* 7 FETCH (``: a new message's items, and the text after the opening bracket."""
    head = _HEAD.match(text)
    if not head:
        raise Unparsed(text[:60])
    return {b"SEQ": int(head.group(1))}, text[head.end():]
