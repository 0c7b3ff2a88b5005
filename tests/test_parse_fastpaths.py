"""The parser's shortcuts give exactly what the email package's path gives.

Each shortcut reads the common, clean shape itself and hands anything else to the stdlib;
these tests hold them to identical results on real mail (../shared/corpora, where present),
the benchmark's generated mailbox (bench/generate.py), the sample, and hostile variants of
all of them: LF and bare-CR line ends, 8-bit bytes, missing colons, continuation first lines,
duplicate fields, odd and RFC 2231 parameters, headers and bodies cut anywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import sys
from collections.abc import Callable
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_corpora import NAMES, corpus_files

from mailtriage import headerblock, mime, parse, snippets
from mailtriage.parse import HEADER_FIELDS, ParsedMessage, parse_message, parse_raw_message
from mailtriage.sample import build_sample

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from generate import generate  # noqa: E402

# Lines that break the clean shape, or sit right at its edges; spliced into real headers.
ODD_HEADER_LINES = [
    b"Subject: bare\rCR", b"X-Junk: 8-bit name \xff ok", b"X-\xe9t\xe9: 8-bit name",
    b"no colon at all", b"Subject : space before the colon", b": no name", b" continuation",
    b"\tcontinuation", b"From sender@example.com Mon Nov 20 10:00:00 2023", b"From: a@b.test",
    b"Subject:", b"Subject:   \t", b"Subject:\r\n  folded after nothing",
    b"X-Ctl: \x00\x1b[2J\x0b\x0c",
    b"Content-Type: text/plain; charset*=utf-8''%E2%82%AC; name*0=a; name*1=b",
    b"Content-Type: multipart/mixed; boundary=\"b\"; boundary=second",
    b"Content-Type: TEXT/PLAIN; CHARSET=\"ISO-8859-1\" (comment)",
    b"Content-Type: text; charset=", b"Content-Type: ;;;=; =x", b"Content-Type: a/b/c",
    b"Content-Type: text/html; charset*=''utf-8", b"Content-Type: text/plain; charset*=x-bad''%FF",
    b"Content-Type: text/plain; charset*=utf-8''x; charset*0=y",  # the stdlib raises TypeError
    b"Date: Mon, 20 Nov 2023 10:11:12 +0100", b"Date: 20 Nov 2023 10:11:12 -0000",
    b"Date: Mon, 31 Feb 2023 10:11:12 +0000", b"Date: Mon, 20 Nov 2023 25:11:12 +0000",
    b"Date: Mon, 20 Nov 2023 10:11:12 +9999", b"Date: Mon, 20 Nov 0023 10:11:12 +0000",
    b"Date: mon, 20 nov 2023 10:11 GMT", b"Date: Mon,  20 Nov 2023 10:11:12 +0000",
]


def _hostile(raw: bytes, n: int) -> list[bytes]:
    """Variants of one message: line ends changed, an odd line spliced in, cut short."""
    header, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        header, sep, body = raw.partition(b"\n\n")
    lines = header.splitlines()
    odd = ODD_HEADER_LINES[n % len(ODD_HEADER_LINES)]
    at = n % (len(lines) + 1)
    spliced = b"\r\n".join([*lines[:at], odd, *lines[at:]]) + b"\r\n\r\n" + body
    dup = b"\r\n".join([*lines, *lines[:3]]) + b"\r\n\r\n" + body
    return [raw.replace(b"\r\n", b"\n"), raw.replace(b"\n", b"\r"), spliced, dup,
            raw[: len(header) * (n % 7 + 1) // 8], raw[: len(header) + 4 + n % 900]]


_ODD_BODIES = [b"Hello,\r\n\r\nOn Mon, 1 Jan 2024, Ann wrote:\r\n> hi\r\n",
               b"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b--\r\n"]


@functools.cache
def _messages() -> tuple[bytes, ...]:
    raws = [m.raw for m in build_sample(dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC))]
    raws += [path.read_bytes() for name in NAMES for path in corpus_files(name)]
    raws += [m.raw for m in generate(150, seed=5)]
    odd = [b"Message-ID: <odd@x.test>\r\n" + line + b"\r\n\r\n" + body
           for line in ODD_HEADER_LINES for body in _ODD_BODIES]
    return tuple(raws + odd + [v for n, raw in enumerate(raws) for v in _hostile(raw, n)])


def _header_blocks() -> list[bytes]:
    """Every message's header block and the header blocks of its MIME parts."""
    blocks = []
    for raw in _messages():
        blocks.append(raw)
        for part in raw.split(b"\n--")[1:]:
            blocks.append(part.partition(b"\n")[2])
    return blocks


def _state(msg: Message) -> dict[str, object]:
    """All a Message holds (headers, payload, policy, ...), its defects by type and text."""
    return {**vars(msg), "defects": [(type(d), d.args) for d in msg.defects]}


def _fields(msg: ParsedMessage) -> str:
    return repr(dataclasses.astuple(msg))


# -- header blocks -------------------------------------------------------------------------


def test_header_block_shortcut_builds_the_stdlib_message() -> None:
    blocks = _header_blocks()
    taken = 0
    for block in blocks:
        fast = headerblock._parse_clean(block)
        taken += fast is not None
        assert _state(headerblock.parse(block)) == _state(headerblock.HEADER_PARSER.parsebytes(
            block)), block[:300]
    assert taken > len(blocks) // 3  # the shortcut is taken, and not only for empty blocks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.sampled_from([*ODD_HEADER_LINES, b"", b" x", b"A: b", b"\r", b"\n"])
                      | st.binary(max_size=30), max_size=10),
       eol=st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_header_block_shortcut_on_random_lines(lines: list[bytes], eol: bytes) -> None:
    block = eol.join(lines) + eol + eol
    assert _state(headerblock.parse(block)) == _state(headerblock.HEADER_PARSER.parsebytes(block))


# -- Content-Type read once per value ------------------------------------------------------

Question = Callable[[Message], object]
_CONTENT_TYPE_QUESTIONS: list[tuple[Question, Question]] = [
    (mime.content_type, Message.get_content_type),
    (mime.content_charset, Message.get_content_charset),
    (mime.boundary, Message.get_boundary),
]


def _answer(question: Question, msg: Message) -> object:
    try:
        return question(msg)
    except Exception as exc:  # noqa: BLE001 - which exception is part of the answer
        return type(exc)


def _assert_content_type_read_alike(msg: Message) -> None:
    for _ in range(2):  # the second time from the cache
        for ours, stdlib in _CONTENT_TYPE_QUESTIONS:
            assert _answer(ours, msg) == _answer(stdlib, msg), (msg.get("content-type"), ours)


def test_content_type_facts_are_the_email_packages() -> None:
    for raw in _messages():
        for part in mime.BODY_PARSER.parsebytes(raw).walk():
            _assert_content_type_read_alike(part)
    for line in ODD_HEADER_LINES:
        _assert_content_type_read_alike(headerblock.parse(line + b"\r\n\r\n"))


_PARAM = st.sampled_from(["charset", "CHARSET", "boundary", "charset*", "charset*0", "charset*1",
                          "boundary*0*", "boundary*1", "name", "", " "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ctype=st.sampled_from(["text/plain", "multipart/mixed", "TEXT/html", "text", "a/b/c", ""]),
       params=st.lists(st.tuples(_PARAM, st.sampled_from(["=", "", "= "]),
                                 st.sampled_from(['utf-8', '"utf-8"', "us-ascii''%E2%82%AC",
                                                  "x-bad''%FF", "'en'", '"', "", "b; c"])
                                 | st.text(max_size=8)), max_size=4))
def test_content_type_facts_on_odd_parameters(ctype: str,
                                               params: list[tuple[str, str, str]]) -> None:
    value = ctype + "".join(f"; {name}{eq}{val}" for name, eq, val in params)
    block = f"Content-Type: {value}\r\n\r\n".encode("utf-8", "surrogateescape")
    _assert_content_type_read_alike(headerblock.parse(block))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subtype=st.sampled_from(["mixed", "alternative", "x"]),
       space=st.sampled_from(["", " ", "\r\n\t", "\n "]),
       text=st.text(st.characters(codec="utf-8") | st.sampled_from('=-_. "\\;<>\t'),
                    min_size=1, max_size=30))
def test_plain_boundaries_are_the_email_packages(subtype: str, space: str, text: str) -> None:
    value = f'multipart/{subtype};{space}boundary="{text}"'
    msg = headerblock.parse(f"Content-Type: {value}\r\n\r\n".encode("utf-8", "surrogateescape"))
    _assert_content_type_read_alike(msg)


# -- cheap pre-checks before the quote regexes ---------------------------------------------

# The words of snippets._WROTE spelled out, and of _OUTLOOK_FROM_RE (with its "*").
WROTE_WORDS = ["wrote", "writes", "schrieb", "a écrit", "a ecrit", "escribió", "escribio",
               "ha scritto", "schreef", "skrev", "napisał", "napisal", "napisała", "napisala",
               "написал", "написала", "написали", "kirjoitti"]
OUTLOOK_FROM_WORDS = ["*from", "from", "von", "de", "van", "fra", "från"]


@functools.cache
def _unicode() -> str:
    return "".join(map(chr, [*range(0xD800), *range(0xE000, 0x110000)]))


@functools.cache
def _same_ignoring_case(char: str) -> frozenset[str]:
    """Every character the re module's IGNORECASE matches ``char`` with, over all of Unicode."""
    return frozenset(re.findall(re.escape(char), _unicode(), re.IGNORECASE))


def test_quote_prechecks_let_through_every_line_the_regexes_can_match() -> None:
    # the regexes the two sets are derived from: change them and the sets together
    assert snippets._WROTE == (
        r"(?:wrote|writes|schrieb|a [ée]crit|escribi[óo]|ha scritto|schreef|skrev|napisa[łl]a?"
        r"|написал[аи]?|kirjoitti)")
    assert snippets._OUTLOOK_FROM_RE.pattern == r"^\*?(?:from|von|de|van|fra|från)\s*:"
    ends = {":"}
    for word in WROTE_WORDS:
        for last in _same_ignoring_case(word[-1]):
            assert snippets._WROTE_TAIL_RE.search(f"Ann {word[:-1]}{last}"), (word, last)
            ends.add(last)
    assert ends == snippets._ATTRIBUTION_LAST
    starts = set().union(*(_same_ignoring_case(word[0]) for word in OUTLOOK_FROM_WORDS))
    assert starts == snippets._OUTLOOK_FIRST
    assert {"ſ", "ı", "İ"} <= ends  # the regexes' own idea of case, not str.lower's


def _snippet_lines() -> list[tuple[str, str]]:
    """(line, next line) pairs as _text_snippet hands them to _starts_quote."""
    texts = [raw.decode("utf-8", "replace") for raw in _messages()]
    texts += [f"On Mon, 1 Jan 2024, Ann {word}:" for word in WROTE_WORDS]
    texts += [f"{word.upper()}: a\nSent: b" for word in OUTLOOK_FROM_WORDS]
    pairs = []
    for text in texts:
        lines = [line.strip() for line in text.splitlines()]
        pairs += [(line, nxt) for line, nxt in zip(lines, [*lines[1:], ""], strict=True) if line]
    return list(dict.fromkeys(pairs))


def test_quote_prechecks_change_no_answer(monkeypatch) -> None:
    pairs = _snippet_lines()
    fast = [snippets._starts_quote(line, nxt) for line, nxt in pairs]
    monkeypatch.setattr(snippets, "_ATTRIBUTION_LAST", _Everything())
    monkeypatch.setattr(snippets, "_OUTLOOK_FIRST", _Everything())
    assert fast == [snippets._starts_quote(line, nxt) for line, nxt in pairs]
    assert 100 < sum(fast) < len(fast) // 10


# -- dates in the standard shape -----------------------------------------------------------


def _read_date(read: Callable[[str], dt.datetime], text: str) -> object:
    try:
        return repr(read(text))  # the zone too: naive for -0000, else its offset
    except Exception as exc:  # noqa: BLE001 - which exception is part of the answer
        return type(exc)


def test_standard_dates_are_read_as_the_stdlib_reads_them() -> None:
    texts = [msg.get("date", "") for msg in map(headerblock.parse, _messages())]
    texts += [line.partition(b": ")[2].decode() for line in ODD_HEADER_LINES
              if line.startswith(b"Date:")]
    assert sum(bool(parse._STANDARD_DATE_RE.fullmatch(text)) for text in texts) > len(texts) // 2
    for text in texts:
        assert _read_date(parse._parsedate, text) == _read_date(parsedate_to_datetime, text), text


def _mostly(valid: st.SearchStrategy[int], anything: st.SearchStrategy[int]
            ) -> st.SearchStrategy[int]:
    return valid | valid | valid | anything


_DATE_NUMBERS = st.tuples(
    _mostly(st.integers(1, 28), st.integers(0, 99)),  # day
    st.integers(1000, 9999),  # year
    _mostly(st.integers(0, 23), st.integers(0, 99)),  # hour
    _mostly(st.integers(0, 59), st.integers(0, 99)),  # minute
    _mostly(st.integers(0, 59), st.integers(0, 99)),  # second
    _mostly(st.sampled_from([0, 100, 130, 530, 1400, 2359]), st.integers(0, 9999)),  # zone
)


@settings(max_examples=500, deadline=None)
@given(day=st.sampled_from(["Mon, ", "Sun, ", ""]), numbers=_DATE_NUMBERS,
       month=st.sampled_from(list(parse._MONTHS)), sign=st.sampled_from("+-"),
       width=st.sampled_from([1, 2]))
def test_standard_dates_with_any_numbers(day: str, numbers: tuple[int, ...], month: str,
                                         sign: str, width: int) -> None:
    mday, year, hour, minute, second, zone = numbers
    text = (f"{day}{mday:0{width}} {month} {year} {hour:02}:{minute:02}:{second:02}"
            f" {sign}{zone:04}")
    assert parse._STANDARD_DATE_RE.fullmatch(text)
    assert _read_date(parse._parsedate, text) == _read_date(parsedate_to_datetime, text)


# -- all of them together ------------------------------------------------------------------


def _without_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shortcut off: the email package reads everything, as before them."""
    monkeypatch.setattr(headerblock, "_parse_clean", lambda data: None)
    monkeypatch.setattr(mime, "_ask", lambda msg, question: question(msg))
    monkeypatch.setattr(mime, "_PLAIN_BOUNDARY_RE", re.compile("(?!)"))  # matches nothing
    monkeypatch.setattr(parse, "_parsedate", parsedate_to_datetime)
    monkeypatch.setattr(snippets, "_ATTRIBUTION_LAST", _Everything())
    monkeypatch.setattr(snippets, "_OUTLOOK_FIRST", _Everything())


class _Everything:
    """A set holding every character: a pre-check that lets every line through."""

    def __contains__(self, item: object) -> bool:
        return True


def test_messages_are_read_the_same_without_the_shortcuts(monkeypatch) -> None:
    raws = _messages()
    fast = [_fields(parse_raw_message(raw)) for raw in raws]
    _without_shortcuts(monkeypatch)
    slow = [_fields(parse_raw_message(raw)) for raw in raws]
    differ = [i for i, (a, b) in enumerate(zip(fast, slow, strict=True)) if a != b]
    assert not differ, [(raws[i][:200], fast[i], slow[i]) for i in differ[:3]]


_WANTED = {name.lower().encode() for name in HEADER_FIELDS}


def _fetched(raw: bytes) -> tuple[bytes, bytes]:
    """What IMAP hands over: the HEADER.FIELDS we ask for, in order, and 2 KB of the body."""
    header, _sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    kept: list[bytes] = []
    keep = False
    for line in header.split(b"\n"):
        if not line[:1].isspace():
            keep = line.split(b":", 1)[0].lower() in _WANTED
        if keep:
            kept.append(line)
    return b"\r\n".join([*kept, b"", b""]), body[:2048]


def test_fetched_messages_are_read_the_same_without_the_shortcuts(monkeypatch) -> None:
    pairs = [_fetched(raw) for raw in _messages()]
    fast = [_fields(parse_message(h, b)) for h, b in pairs]
    _without_shortcuts(monkeypatch)
    assert fast == [_fields(parse_message(h, b)) for h, b in pairs]
