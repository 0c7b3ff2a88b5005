"""Read a delivery failure report ("bounce") for mail we sent: which message bounced, for whom, why.

The caller already decided the message looks like a delivery report; this only extracts the
original Message-ID(s), to look up in its database, and the failed recipients. Best source first:
RFC 3464 ``multipart/report`` (also Exchange NDRs): ``message/delivery-status`` fields plus the
original's headers (``text/rfc822-headers`` or ``message/rfc822``); else plain-text bounces
(qmail, Exim, old Exchange/Lotus/Sendmail) that quote our headers. Input may be cut anywhere (the
sync keeps a body prefix), so everything is read leniently and nothing raises.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

__all__ = ["DeliveryReport", "FailedRecipient", "parse_delivery_report"]


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient the report says could not be reached (permanently)."""
    address: str  # lowercased addr-spec, '' if unknown
    status: str  # RFC 3463 status such as "5.1.1", '' if unknown
    diagnostic: str  # one cleaned line, at most 300 chars, '' if none


@dataclass(frozen=True)
class DeliveryReport:
    """Which of our messages bounced (Message-IDs without brackets) and who failed."""
    original_ids: tuple[str, ...]
    recipients: tuple[FailedRecipient, ...]


_MSGID = re.compile(r"^[ \t>]*Message-Id[ \t]*:[ \t]*(?:\n[ \t]+)?<([^<>]{1,2000})>", re.I | re.M)
_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_SMTP_CODE = re.compile(r"(?<![\d.])([245])\d\d[ -]")  # an SMTP reply: 550 ..., 451-...
_ADDR = r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*"
_ENTRY = re.compile(rf"[ \t]*[<\"]?({_ADDR})[>\"]?:?(.*)")  # an address that starts its line
_QMAIL = re.compile(r"<([^<>\s@]+@[^<>\s]+)>:[ \t]*(.*)")
_INTRO = re.compile(r"address(?:\(es\))? failed|could not be reached|not (?:be )?delivered to"
                    r"|did not reach the following|following recipients? (?:failed|could not"
                    r"|were not)|following addresses had (?!transient)|delivery has failed to",
                    re.I)
_PERMANENT = re.compile(r"permanent (?:error|failure)|given up|not going to try again", re.I)
_COPY = re.compile(r"copy|original message|below this line|returned mess|undelivered", re.I)
_HEADER_LINE = re.compile(r"[ \t>]*(?:Received|Return-Path|Message-Id)[ \t]*:", re.I)
_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)")
_HIDDEN = {"Cc", "Cf", "Cs"}  # control, format (bidi overrides), lone surrogates
_DS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_NOT_FAILED = {"delayed", "delivered", "relayed", "expanded"}


def parse_delivery_report(raw: bytes) -> DeliveryReport | None:
    """raw = the whole message or its first bytes (headers + up to 64 KiB of body), possibly cut
    anywhere. None unless it names an original Message-ID and at least one failed recipient."""
    try:
        return _parse(bytes(raw))
    except Exception:  # a report we cannot read is no report; the caller must never crash
        return None


def _parse(raw: bytes) -> DeliveryReport | None:
    """Structured parts first (they are what the MTA meant); text only where they are missing."""
    msg = BytesParser(policy=compat32).parsebytes(raw)
    ids: list[str] = []
    blocks: list[dict[str, str]] = []
    texts: list[str] = []  # decoded text parts: plain-text bounces and unsplit reports
    for part in _leaves(msg, 0):
        try:  # one unreadable part must not hide what the others say
            _read_part(part, part is msg, ids, blocks, texts)
        except Exception:  # skip the part, keep the rest
            continue
    blocks = [b for b in blocks if {"final-recipient", "original-recipient", "action"} & b.keys()]
    ids = ids or [i for t in texts for i in _ids(t)]  # else: bounces quoting our headers in text
    if not blocks:  # delivery-status fields written into a text part (or not split by the parser)
        blocks = [b for t in texts for b in _field_blocks(t)
                  if "final-recipient" in b or "original-recipient" in b]
    if blocks:
        found = [r for r in map(_from_block, blocks) if r]
    else:
        regions = [_region(t) for t in texts]
        found = [r for lines in regions for r in _text_recipients(lines)]
        found = found or _fallback(msg, [line for lines in regions for line in lines])
    if not ids or not found:
        return None
    return DeliveryReport(tuple(dict.fromkeys(ids)), tuple(dict.fromkeys(found)))


def _read_part(part: Message, is_top: bool, ids: list[str], blocks: list[dict[str, str]],
               texts: list[str]) -> None:
    """What one MIME part says: the original's Message-ID, delivery-status field blocks,
    or text to read later."""
    ctype, payload = part.get_content_type(), part.get_payload()
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    split = isinstance(payload, list) and cte not in ("base64", "quoted-printable")
    if ctype in ("message/rfc822", "message/global"):  # the original: its headers
        inner = payload[0] if isinstance(payload, list) and payload and split else None
        values = (inner.get_all("message-id") if isinstance(inner, Message) else None) or []
        header = "\n".join("Message-ID: " + " ".join(str(v).split()) for v in values)
        ids += _ids(header) or _ids(_text(part).split("\n\n", 1)[0])
    elif ctype in ("text/rfc822-headers", "message/global-headers"):
        ids += _ids(_text(part))
    elif ctype in _DS_TYPES:
        texts.append(_text(part))  # read as text too, for a report not split right
        if ctype == "message/delivery-status" and split:  # the parser split the blocks
            # raw values: 8-bit text, surrogate-escaped by the parser, is UTF-8 (RFC 6533)
            blocks += [{k.lower(): str(v).encode("utf-8", "surrogateescape").decode(
                "utf-8", "replace") for k, v in reversed(list(sub.raw_items()))}
                for sub in payload if isinstance(sub, Message)]
        else:
            blocks += _field_blocks(texts[-1])
    elif part.get_content_maintype() in ("text", "multipart", "message"):
        own = part.get_all("message-id") if not is_top else None  # quoted headers
        texts.append("".join(f"Message-ID: {v}\n" for v in own or []) + _text(part))


def _leaves(part: Message, depth: int) -> Iterator[Message]:
    """Non-multipart parts in order; an attached message is one leaf (its body is not ours)."""
    payload = part.get_payload()
    if part.get_content_maintype() == "multipart" and isinstance(payload, list) and depth < 50:
        for sub in payload:
            if isinstance(sub, Message):
                yield from _leaves(sub, depth + 1)
    else:
        yield part


def _text(part: Message) -> str:
    """The decoded text of a part; message/* payloads the parser split are joined back."""
    src, payload = part, part.get_payload()
    if isinstance(payload, list):
        src = Message()
        if cte := part.get("content-transfer-encoding"):
            src["Content-Transfer-Encoding"] = str(cte)
        src.set_payload("\n".join(p.as_string() for p in payload if isinstance(p, Message)))
    data = src.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    try:
        text = data.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _ids(text: str) -> list[str]:
    """Message-ID lines' ids of the first header block that has one (a quoted body may quote
    more); whitespace removed (folded ids); over-long ids are not real ones."""
    if not (first := _MSGID.search(text)):
        return []
    end = text.find("\n\n", first.end())
    found = _MSGID.finditer(text, first.start(), end if end >= 0 else len(text))
    return [i for m in found if 0 < len(i := "".join(m.group(1).split())) <= 998]


def _field_blocks(text: str) -> list[dict[str, str]]:
    """'Name: value' groups (folded lines joined) separated by blank lines, names lowercased."""
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n", text):
        lines = re.sub(r"\n[ \t]+", " ", chunk).split("\n")
        fields = [m.groups() for line in lines if (m := _FIELD.fullmatch(line.strip()))]
        if fields:
            blocks.append({k.lower(): v for k, v in reversed(fields)})
    return blocks


def _fold(text: str) -> str:
    """One display-safe line: control/format characters dropped, whitespace folded, capped."""
    text = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in _HIDDEN)
    return " ".join(text.split())[:300].strip()


def _addr(value: str) -> str:
    """addr-spec of a DSN address field ("rfc822; Bob@Example.org"), lowercased."""
    return parseaddr(value.split(";", 1)[-1].strip())[1].strip().lower()


def _find_addr(text: str) -> str:
    return m.group(0).lower() if (m := re.search(_ADDR, text[:1000])) else ""


def _status(text: str) -> str:
    return m.group(1) if (m := _STATUS.search(text)) else ""


def _from_block(block: dict[str, str]) -> FailedRecipient | None:
    """A recipient block of a DSN; None unless it failed (Action: failed, or a 5.x.x status)."""
    action = (block.get("action", "").lower().split() or [""])[0].strip(";,.")
    diag = _fold(re.sub(r"^\s*[\w-]+\s*;\s*", "", block.get("diagnostic-code", "")))
    status = _status(block.get("status", "")) or _status(diag)
    if action != "failed" and (action in _NOT_FAILED or not status.startswith("5")):
        return None
    address = (_addr(block.get("final-recipient", "")) or _addr(block.get("original-recipient", ""))
               or _find_addr(diag))
    return FailedRecipient(address, status, diag)


def _region(text: str) -> list[str]:
    """The bounce's own words: lines before the quoted copy of the original message."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _HEADER_LINE.match(line) or ("--" in line[:40] and _COPY.search(line)):
            return lines[:i]
    return lines


def _text_recipients(lines: list[str]) -> list[FailedRecipient]:
    """qmail/Postfix '<addr>:' entries and Exim/Exchange/Lotus/Sendmail address sections."""
    entries: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(lines):  # one pass: every line belongs to at most one entry
        line, i = lines[i], i + 1
        if m := _QMAIL.match(line):  # the reason follows, up to a blank line
            entries.append((m.group(1), [m.group(2)]))
            while i < len(lines) and lines[i].strip() and not _QMAIL.match(lines[i]):
                entries[-1][1].append(lines[i])
                i += 1
        elif line.rstrip()[-1:] in (":", "-") and _INTRO.search(  # the intro may be wrapped
                f"{lines[i - 2] if i > 1 else ''} {line}"):
            i = _section(lines, i, entries)
    found: dict[str, FailedRecipient] = {}
    permanent = any(map(_PERMANENT.search, lines))  # the MTA gave up, even on a 4.x.x status
    for address, body in entries:
        diag = _fold("\n".join(body))
        status, code = _status(diag), _SMTP_CODE.search(diag)
        if permanent or (status[:1] or (code.group(1) if code else "5")) == "5":
            found.setdefault(address.lower(), FailedRecipient(address.lower(), status, diag))
    return list(found.values())


def _section(lines: list[str], i: int, entries: list[tuple[str, list[str]]]) -> int:
    """Entries after an intro line: an address line, then deeper (or adjacent) reason lines.
    Appends them and returns the index of the first line after the section."""
    first, base, prev_blank, end = len(entries), -1, False, len(lines)
    for k in range(i, len(lines)):
        line = lines[k]
        if not line.strip():
            prev_blank = True
            continue
        indent = len(line) - len(line.lstrip())
        base = indent if base < 0 else base
        if m := (_ENTRY.match(line) if indent == base else None):
            entries.append((m.group(1), [m.group(2)]))
        elif (indent < base or line.lstrip().startswith("--") or len(entries) == first
              or (indent == base and prev_blank)):
            end = k  # a separator, or text that is no longer about these addresses
            break
        else:
            entries[-1][1].append(line)
        prev_blank = False
    entries[first:] = [(a, body[1:] or body[:1]) for a, body in entries[first:]]  # reasons, or rest
    return end


def _fallback(msg: Message, lines: list[str]) -> list[FailedRecipient]:
    """No recipient named in a known shape: a line with a 5.x.x status or 5xx reply still says
    it failed; the address is in X-Failed-Recipients (Exim) or on that line (or the one before)."""
    for i, line in enumerate(lines):
        status = next((s for s in _STATUS.findall(line) if s.startswith("5")), "")
        if status or "5" in _SMTP_CODE.findall(line):
            header = [str(v) for v in msg.get_all("x-failed-recipients") or []]
            addrs = [a.lower() for _, a in getaddresses(header) if a]
            addrs = addrs or [_find_addr(line) or (_find_addr(lines[i - 1]) if i else "")]
            return [FailedRecipient(a, status, _fold(line)) for a in addrs]
    return []
