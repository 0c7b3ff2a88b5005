"""Text from mail made safe: decoded from what headers carry, stripped of what lies on screen.

Everything a stranger wrote (subjects, names, snippets) reaches a terminal, a header of a
reply or the report.  :func:`clean_text` is the one place that removes control characters
and escape sequences; :func:`one_line` is its form for headers and table cells, and
:func:`decode_header` turns a raw header value (RFC 2047 encoded-words, raw 8-bit bytes)
into such text.  Nothing here raises for any input.
"""

from __future__ import annotations

import functools
import re
from typing import Any

MAX_HEADER_CHARS = 64 * 1024  # longer values are cut before decoding (DoS guard)

# Characters that make text lie on screen: bidi controls reorder it (``\u202egnp.exe``
# shows as ``exe.png``), zero-width ones hide inside it, tag characters carry hidden text.
INVISIBLE = [0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), 0x2060,
             *range(0x2066, 0x206A), 0xFEFF, *range(0xE0000, 0xE0080)]
_CONTROL_TABLE = {c: None for c in [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0),
                                    *INVISIBLE]}
_CONTROL_TABLE_KEEP_NL = {c: v for c, v in _CONTROL_TABLE.items() if c != 0x0A}
# CSI (ESC [ or 8-bit 0x9B) sequences, OSC/DCS/PM/APC strings, then any other ESC + one char.
_ESCAPE_RE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x85\u2028\u2029]+")


def clean_text(s: str, *, keep_newlines: bool = False) -> str:
    """Remove control characters so untrusted text is safe to print on a terminal.

    Drops C0 controls except tab (and newline with ``keep_newlines``), DEL, C1 controls,
    whole escape sequences (so ``ESC [ 2 J`` does not leave ``[2J`` behind) and the
    :data:`INVISIBLE` characters.
    """
    if s.isprintable():
        return s
    if "\x1b" in s or any(c in s for c in "\x90\x98\x9b\x9d\x9e\x9f"):
        s = _ESCAPE_RE.sub("", s)
    return s.translate(_CONTROL_TABLE_KEEP_NL if keep_newlines else _CONTROL_TABLE)


def one_line(value: Any, width: int | None = None) -> str:
    """``clean_text`` for a header or a table cell: line breaks become spaces, runs of
    whitespace one space, and with ``width`` the text is cut to fit (ending in "…")."""
    text = _LINE_BREAKS.sub(" ", "" if value is None else str(value))  # "a\r\nb" -> "a b"
    text = " ".join(clean_text(text).split())
    if width is not None and len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text


def fold(s: str) -> str:
    """Collapse all whitespace runs (incl. header folding) to single spaces."""
    return " ".join(s.split())


def unfold_raw(value: str) -> str:
    """RFC 5322 unfolding of a raw value (drop CR/LF), identical for CRLF and LF input."""
    return value.replace("\r", "").replace("\n", "").strip()


def raw_bytes(value: str) -> bytes:
    """Back to the original bytes of a surrogate-escaped header/payload string."""
    return value.encode("utf-8", "surrogateescape")


def from_8bit(value: str) -> str:
    """Decode raw 8-bit header bytes: UTF-8 (RFC 6532) first, else cp1252."""
    if value.isascii():
        return value
    try:
        data = raw_bytes(value)
    except UnicodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset; unknown or odd charsets fall back to UTF-8."""
    cs = (charset or "utf-8").split("*", 1)[0].strip().lower()  # RFC 2231 "utf-8*en"
    if cs in ("us-ascii", "ascii", ""):
        cs = "utf-8"  # ASCII declared but 8-bit sent: UTF-8 is the likely truth
    try:
        return data.decode(cs, "replace")
    except Exception:  # LookupError, non-text codecs ("base64"), codecs without "replace"
        return data.decode("utf-8", "replace")


def decode_words(value: str) -> str:
    """RFC 2047-decode a header value; never raises, keeps what cannot be decoded."""
    if "=?" not in value:
        return value
    # email.header and its charset tables: imported when there is an encoded-word to decode
    from email.header import decode_header as _email_decode_header
    from email.header import make_header

    try:
        chunks = _email_decode_header(value)
    except Exception:  # HeaderParseError on hopeless base64
        return value
    try:
        return str(make_header(chunks))
    except Exception:  # unknown charset or bytes invalid in it: decode chunk by chunk
        pass
    out: list[str] = []
    prev_encoded: bool | None = None
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            text = chunk
        elif charset is None:
            text = chunk.decode("raw-unicode-escape", "replace")
        else:
            text = decode_bytes(chunk, charset)
        encoded = charset is not None
        # Same spacing rule as Header.__str__: keep a space between encoded/plain runs.
        if (
            out
            and prev_encoded is not None
            and encoded != prev_encoded
            and text
            and not text[0].isspace()
            and not out[-1][-1:].isspace()
        ):
            out.append(" ")
        out.append(text)
        prev_encoded = encoded
    return "".join(out)


def decode_header(raw: str | None) -> str:
    """Decoded, unfolded, single-line, control-free text of a raw header value ('' if none)."""
    if not raw:
        return ""
    if "=?" not in raw and raw.isascii():
        return fold(clean_text(raw[:MAX_HEADER_CHARS], keep_newlines=True))
    return _decode_header_cached(raw[:MAX_HEADER_CHARS])


@functools.lru_cache(maxsize=4096)
def _decode_header_cached(raw: str) -> str:
    """Slow path (RFC 2047 / 8-bit), cached: thread subjects and names repeat a lot."""
    return fold(clean_text(decode_words(from_8bit(raw)), keep_newlines=True))
