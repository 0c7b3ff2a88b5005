"""Email addresses from headers a stranger wrote: split, decoded and checked in one place.

Who sent a message decides whether it counts as our answer, and where a reply goes decides
who gets mail from us, so both read addresses here and nowhere else.

The email package is not used for the splitting: compat32's ``getaddresses`` reads
``support@example.com <attacker@evil.test>`` as two addresses, ours first, and the default
policy keeps the display name as the address; either way the sender's display name decides
the team check.  Here, as RFC 5322 says, an element with an angle address is what is between
the brackets, and what comes before is only a name.  Encoded-words are decoded in names and
refused in addresses (RFC 2047 forbids them there, and the email package would decode
``=?utf-8?q?a=0D=0Ab?=@x`` into a line break when the reply is built).  A valid address is
one addr-spec: a dot-atom or quoted local part, ``@``, a domain of DNS labels, no control
or invisible characters, nothing left over.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import AddressError
from .text import MAX_HEADER_CHARS, decode_header, from_8bit, one_line

MAX_ADDRESS_CHARS = 254  # RFC 5321 path limit
MAX_LOCAL_CHARS = 64
MAX_SHOWN = 320  # an element (or an invalid address) as written, kept for messages

_TOKEN = re.compile(
    r'(?P<qs>"(?:[^"\\]|\\.)*(?:"|$))'  # quoted string (perhaps unterminated)
    r"|(?P<ew>=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)"  # an encoded-word is one token
    r"|(?P<lp>\()|(?P<rp>\))|(?P<la><)|(?P<ra>>)|(?P<sep>[,;:])|(?P<esc>\\.?)"
    r'|(?P<text>[^"()<>,;:\\=]+|=)',
    re.DOTALL,
)
# atext (RFC 5322 3.2.3, with RFC 6532's non-ASCII) and qtext, written as what they exclude:
# the same sets, but a class spelled as a range up to U+10FFFF takes ~30 ms to compile.
_ATEXT = r'[^\x00-\x20"(),.:;<>@\[\\\]\x7f]'
_QTEXT = r'[^\x00-\x1f"\\\x7f]'
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED_LOCAL = re.compile(rf'"(?:{_QTEXT}|\\[ -~])*"')
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Mailbox:
    """One element of an address header.  ``addr`` is the address part as written (comments
    and name left out, lowercased); only when ``problem`` is empty is it a valid address."""

    name: str  # decoded, control-free display name ('' when none)
    addr: str  # canonical when valid
    text: str  # the whole element, cleaned to one line, for messages
    problem: str = ""

    @property
    def valid(self) -> bool:
        return not self.problem


def canonical(addr: str) -> str:
    """The one valid address ``addr`` is, lowercased; AddressError saying why it is not."""
    return _checked(addr)


@functools.lru_cache(maxsize=8192)
def _checked(addr: str) -> str:
    if not addr:
        raise AddressError("empty address")
    if len(addr) > MAX_ADDRESS_CHARS:
        raise AddressError("address too long")
    # (printable ASCII, nearly every address, holds none: no per-character look needed)
    if not (addr.isascii() and addr.isprintable()) and any(_invisible(ch) for ch in addr):
        raise AddressError("control or invisible character in the address")
    if "=?" in addr:
        raise AddressError("encoded-word in the address")
    local, rest = _local_part(addr)
    if not rest.startswith("@") or len(local) > MAX_LOCAL_CHARS + 2:
        raise AddressError("invalid local part")
    domain = rest[1:].lower()
    if not _domain_ok(domain):
        raise AddressError("invalid domain")
    return f"{local.lower()}@{domain}"


def _invisible(ch: str) -> bool:
    return ord(ch) < 0x20 or ch == "\x7f" or (
        ord(ch) >= 0x80 and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs"))


def _local_part(addr: str) -> tuple[str, str]:
    """(the local part, canonical: a quoted one unquoted when it need not be; ``@domain``)."""
    if addr.startswith('"'):
        m = _QUOTED_LOCAL.match(addr)
        if not m:
            raise AddressError("broken quoted local part")
        local = m.group(0)
        if local[1:-1] and _DOT_ATOM.fullmatch(local[1:-1]):
            local = local[1:-1]  # "abc"@x is abc@x
        return local, addr[m.end():]
    local, at, domain = addr.rpartition("@")
    if not at:
        raise AddressError("no @ in the address")
    if not _DOT_ATOM.fullmatch(local):
        raise AddressError("invalid local part")
    return local, "@" + domain


def _domain_ok(domain: str) -> bool:
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    labels = domain.split(".")
    return len(domain) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def is_valid(addr: str | None) -> bool:
    try:
        canonical(addr or "")
    except AddressError:
        return False
    return True


def check_sendable(addr: str) -> str:
    """An address we can put in RCPT TO and a header: valid and ASCII (no SMTPUTF8 here)."""
    value = canonical(addr)
    if not value.isascii():
        raise AddressError("non-ASCII address (needs SMTPUTF8, which mailtriage does not use)")
    return value


def read_list(value: str | None) -> tuple[Mailbox, ...]:
    """Every element of an address header value (raw: encoded-words still encoded), read
    whole: cutting a long one first could cut off the address (a megabyte of name before
    ``<a@b>``).  The reading is linear; only values of ordinary length are cached."""
    if not value:
        return ()
    value = from_8bit(value)
    return _read(value) if len(value) > MAX_HEADER_CHARS else _read_cached(value)


def addresses(value: str | None) -> list[str]:
    """The valid addresses of a header value, in order (To, Cc)."""
    return [m.addr for m in read_list(value) if m.valid]


def first(value: str | None) -> Mailbox | None:
    """The first element of a header value (From, Reply-To), valid or not."""
    found = read_list(value)
    return found[0] if found else None


def _read(value: str) -> tuple[Mailbox, ...]:
    return tuple(m for m in (_mailbox(*element) for element in _split(value)) if m is not None)


_read_cached = functools.lru_cache(maxsize=8192)(_read)


Token = tuple[str, str]


def _split(value: str) -> list[tuple[list[Token], str]]:
    """Top-level tokens per element (with the element's text): comments and angle addresses
    collapsed to one token each, commas and semicolons separating elements, a group's name
    (before its colon) dropped."""
    elements: list[tuple[list[Token], str]] = []
    current: list[Token] = []
    start = 0
    inside: list[str] | None = None  # the text of an open angle address
    for kind, tok, at, end in _tokens(value):
        if kind == "comment":  # a name, or nothing: never part of an address
            current.append((kind, tok))
        elif inside is not None and kind == "ra":
            current.append(("angle", "".join(inside)))
            inside = None
        elif inside is not None:
            inside.append(tok)
        elif kind == "la":
            inside = []
        elif kind == "sep" and tok == ":":
            current, start = [], end  # "group name:" is not an address
        elif kind == "sep":
            elements.append((current, value[start:at]))
            current, start = [], end
        else:
            current.append((kind, tok))
    if inside is not None:
        current.append(("open-angle", "".join(inside)))
    elements.append((current, value[start:]))
    return elements


def _tokens(value: str) -> Iterator[tuple[str, str, int, int]]:
    """``(kind, text, start, end)`` of each token, a (nested) comment as one token, so the
    comment's own brackets and commas never count (comments inside an angle address
    included: RFC 5322 allows them there)."""
    depth = 0
    comment: list[str] = []
    for m in _TOKEN.finditer(value):
        kind, tok = m.lastgroup or "text", m.group()
        if not depth and kind != "lp":
            yield kind, tok, m.start(), m.end()
            continue
        depth += (kind == "lp") - (kind == "rp")
        if depth == 1 and kind == "lp":
            comment = []
        elif depth:
            comment.append(tok)
        else:
            yield "comment", "".join(comment), m.start(), m.end()


def _mailbox(tokens: list[Token], raw: str) -> Mailbox | None:
    words = [(k, t) for k, t in tokens if not (k == "text" and not t.strip())]
    if not words:
        return None
    text = one_line(raw, MAX_SHOWN)
    angles = [i for i, (k, _t) in enumerate(words) if k in ("angle", "open-angle")]
    comments = " ".join(t for k, t in words if k == "comment")
    if len(angles) > 1:
        return Mailbox(_name(words[:angles[0]]), "", text, "two addresses in one")
    if angles:
        at = angles[0]
        kind, addr = words[at]
        name = _name(words[:at]) or decode_header(comments)
        trailing = [k for k, _t in words[at + 1:] if k != "comment"]
        if kind == "open-angle" or trailing or any(k == "ra" for k, _t in words):
            return Mailbox(name, _as_written(addr), text, "not one address")
        addr = addr.strip()
        if addr.startswith("@") and ":" in addr:  # obsolete route: <@relay:user@host>
            addr = addr.rpartition(":")[2]
    else:
        addr = "".join(t for k, t in words if k != "comment").strip()
        name = decode_header(comments)
        if any(k == "ew" for k, _t in words):
            return Mailbox(name, _as_written(addr), text, "encoded-word in the address")
        if any(k == "ra" for k, _t in words) or any(
                c.isspace() for k, t in words if k == "text" for c in t.strip()):
            return Mailbox(name, _as_written(addr), text, "not one address")
    try:
        return Mailbox(name, canonical(addr), text)
    except AddressError as exc:
        return Mailbox(name, _as_written(addr), text, str(exc))


def _as_written(addr: str) -> str:
    return one_line(addr, MAX_SHOWN).lower()


def _name(words: list[Token]) -> str:
    """The display name before an angle address: quoted strings unquoted, then decoded."""
    raw = []
    for kind, tok in words:
        if kind == "qs":
            raw.append(re.sub(r"\\(.)", r"\1", tok[1:-1] if tok.endswith('"') else tok[1:]))
        elif kind != "comment":
            raw.append(tok)
    return decode_header("".join(raw)).strip("\"' ")
