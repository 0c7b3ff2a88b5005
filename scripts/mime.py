"""MIME parts of a body that may be cut off anywhere (sync keeps the first 2 KB).

The email package's compat32 parser, with header values kept raw (headerblock.RAW_POLICY),
and a shortcut for the common shape: the parts between ``--boundary`` lines are split here
(the stdlib compiles a regular expression for every unique boundary it meets); anything
unusual goes back to the email package.
"""

from __future__ import annotations

import binascii
import email.policy
import functools
import re
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from email.parser import BytesParser
from typing import Any, TypeVar, cast

from . import headerblock
from .headerblock import RAW_POLICY
from .text import one_line, raw_bytes, unfold_raw

MAX_MIME_DEPTH = 30  # deeper MIME trees are not walked (and cannot be in 2 KB anyway)
MAX_MIME_PARTS = 200


BODY_PARSER = BytesParser(policy=RAW_POLICY)


def decode_transfer(data: bytes, cte: str) -> bytes:
    """Undo Content-Transfer-Encoding on a possibly truncated payload."""
    if cte == "base64":
        data = data.translate(None, b" \t\r\n")
        data = data[: len(data) - len(data) % 4]  # cut mid-quad tail of a truncated prefix
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            try:
                return binascii.a2b_base64(data.replace(b"=", b""))
            except binascii.Error:
                return b""
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def transfer_encoding(msg: Message) -> str:
    return str(msg.get("content-transfer-encoding", "")).strip().lower()


# -- what Content-Type says, asked of the email package once per distinct value ------------
#
# Message.get_content_type(), get_content_charset() and get_boundary() each find the header
# and parse its parameters again, ~6 times a part.  These give the same answers, from a probe
# message holding only the Content-Type value, cached by value: part headers such as
# "text/plain; charset=utf-8" repeat a lot.

_CACHED_VALUE_CHARS = 200  # longer values (rare, maybe hostile) are read but not kept


def content_type(msg: Message) -> str:
    """``msg.get_content_type()``."""
    return _ask(msg, Message.get_content_type)


def content_charset(msg: Message) -> str | None:
    """``msg.get_content_charset()``."""
    return _ask(msg, Message.get_content_charset)


# The usual multipart value, unique to each message, so never in the cache: the quoted
# boundary is what the stdlib's parameter parser (~10 µs) finds in it, if it holds no quote,
# backslash, semicolon or angle bracket (those it unquotes or splits at).
_PLAIN_BOUNDARY_RE = re.compile(r'multipart/[a-z]+;[ \t\r\n]*boundary="([^"\\;<>]+)"')


def boundary(msg: Message) -> str | None:
    """``msg.get_boundary()``."""
    value = msg.get("content-type")
    if isinstance(value, str) and (plain := _PLAIN_BOUNDARY_RE.fullmatch(value)):
        return plain[1].rstrip()
    return _ask(msg, Message.get_boundary)


_Answer = TypeVar("_Answer")


def _ask(msg: Message, question: Callable[[Message], _Answer]) -> _Answer:
    """``question(msg)``, whose answer depends only on the (first) Content-Type value.  Without
    one it depends on the default type the parent set: then the message itself is asked."""
    value = msg.get("content-type")
    if not isinstance(value, str) or len(value) > _CACHED_VALUE_CHARS:
        return question(msg)
    return cast(_Answer, _answer(question, value))


@functools.lru_cache(maxsize=2048)
def _answer(question: Callable[[Message], object], value: str) -> object:
    probe = Message(policy=RAW_POLICY)
    probe.set_raw("Content-Type", value)
    return question(probe)  # an exception is not kept: it is raised again, where it was


def _walk(root: Message) -> list[Message]:
    """Leaf parts depth-first, iteratively, with depth and part-count caps."""
    leaves: list[Message] = []
    stack: list[tuple[Message, int]] = [(root, 0)]
    seen = 0
    while stack and seen < MAX_MIME_PARTS:
        part, depth = stack.pop()
        seen += 1
        payload = part.get_payload()
        if isinstance(payload, list):
            if depth < MAX_MIME_DEPTH:
                stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))
        else:
            leaves.append(part)
    return leaves


def _split_multipart(body: bytes, boundary: str) -> list[bytes] | None:
    """The parts between ``--boundary`` lines (the last one possibly cut off).

    A shortcut for the common case, measured at 80 µs a message in the stdlib parser,
    which compiles a regular expression for every (unique) boundary it meets.  The
    email package still parses every part's headers; None sends anything unusual
    back to it.
    """
    delim = b"--" + boundary.encode("utf-8", "surrogateescape")
    if body.startswith(delim):
        pos = 0
    else:
        pos = body.find(b"\n" + delim)
        if pos < 0:
            return None
        pos += 1
    parts: list[bytes] = []
    while len(parts) < MAX_MIME_PARTS:
        after = pos + len(delim)
        if body[after:after + 2] == b"--":
            break  # the closing delimiter
        eol = body.find(b"\n", after)
        if eol < 0 or body[after:eol].strip():
            return None if eol >= 0 else parts  # junk after the delimiter, or cut here
        nxt = body.find(b"\n" + delim, eol)
        if nxt < 0:
            parts.append(body[eol + 1:])
            break
        parts.append(body[eol + 1:nxt].removesuffix(b"\r"))
        pos = nxt + 1
    return parts


def _split_part(part: bytes) -> tuple[Message, bytes]:
    if part.startswith((b"\r\n", b"\n")):
        return headerblock.parse(b""), part.lstrip(b"\r\n")
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = part.find(sep)
        if i >= 0:
            return headerblock.parse(part[:i + len(sep)]), part[i + len(sep):]
    return headerblock.parse(part), b""  # cut off inside the part's headers


def _leaves_fast(hdr: Message, body: bytes) -> list[tuple[Message, bytes]] | None:
    """Leaf parts with their transfer-decoded payloads, or None to use the full parser."""
    leaves: list[tuple[Message, bytes]] = []
    stack: list[tuple[Message, bytes, int]] = [(hdr, body, 0)]
    while stack:
        node, data, depth = stack.pop()
        ctype = content_type(node)
        if ctype in ("message/rfc822", "multipart/digest"):
            return None  # attached messages: the full parser walks into them
        if ctype.split("/")[0] != "multipart":
            leaves.append((node, decode_transfer(data, transfer_encoding(node))))
            continue
        delimiter = boundary(node)
        if not delimiter or depth >= MAX_MIME_DEPTH:
            continue
        parts = _split_multipart(data, delimiter)
        if parts is None:
            return None
        stack.extend((*_split_part(p), depth + 1) for p in reversed(parts))
    return leaves


def _payload_bytes(part: Message) -> bytes:
    """Transfer-decoded payload bytes of a leaf part.

    ``get_payload(decode=True)`` returns the original 8-bit bytes and undoes
    quoted-printable/uuencode; base64 is done here because a prefix cut mid-quad makes
    the stdlib hand back the still-encoded text.
    """
    cte = transfer_encoding(part)
    if cte == "base64":
        payload = part.get_payload()
        if not isinstance(payload, str):
            return b""
        return decode_transfer(payload.encode("ascii", "ignore"), cte)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""



def leaves(hdr: Message, body: bytes) -> list[tuple[Message, bytes]]:
    """The leaf parts of a multipart (or message/rfc822) body, each with its decoded
    payload: split at the boundaries where the shape is plain, else by the email package."""
    found = _leaves_fast(hdr, body)
    if found is not None:
        return found
    wrapper = (b"Content-Type: " + raw_bytes(unfold_raw(hdr.get("content-type", "")))
               + b"\r\n\r\n")
    return [(p, _payload_bytes(p)) for p in _walk(BODY_PARSER.parsebytes(wrapper + body))]


# -- a whole text part fetched by itself (quoting.py) --------------------------------------


def text_section(structure: Any) -> tuple[str, str, str] | None:
    """The first text/plain part of an imapclient BODYSTRUCTURE that is not an attachment:
    (section number, transfer encoding, charset)."""
    def walk(body: Any, path: tuple[int, ...]) -> tuple[str, str, str] | None:
        if getattr(body, "is_multipart", False):
            for n, part in enumerate(body[0], 1):
                if (found := walk(part, (*path, n))) is not None:
                    return found
            return None
        kind, subtype = _s(body[0]).lower(), _s(body[1]).lower()
        params = _params(body[2])
        if kind != "text" or subtype != "plain" or "name" in params:
            return None
        return ".".join(map(str, path)) or "1", _s(body[5]) or "7bit", params.get("charset",
                                                                                "us-ascii")
    return walk(structure, ())


def decode_part(data: bytes, encoding: str, charset: str) -> str:
    """A fetched part's text, through the email package like any other mail we read."""
    head = (f"Content-Type: text/plain; charset=\"{one_line(charset)}\"\r\n"
            f"Content-Transfer-Encoding: {one_line(encoding)}\r\n\r\n").encode("ascii", "replace")
    part = message_from_bytes(head + data, policy=email.policy.default)
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _s(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)


def _params(value: Any) -> dict[str, str]:
    if not value:
        return {}
    items = list(value)
    return {_s(k).lower(): _s(v) for k, v in zip(items[::2], items[1::2], strict=False)}
