"""What the customer wrote, in a line: the first new text of a message, without the
quoted history, the reply headers, the signature or the HTML around it.
"""

from __future__ import annotations

import re
from email.message import Message
from html.parser import HTMLParser

from .mime import (
    boundary,
    content_charset,
    content_type,
    decode_transfer,
    leaves,
    transfer_encoding,
)
from .text import clean_text, decode_bytes, fold

SNIPPET_CHARS = 300

_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template", "blockquote"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5",
        "h6", "hr", "pre", "section", "article", "header", "footer", "dd", "dt", "td", "th",
    }
)  # fmt: skip
_QUOTE_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted")


class _HTMLText(HTMLParser):
    """HTML to plain text: drops script/style/head and quoted blocks, unescapes entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_tag: str | None = None
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        if tag in _SKIP_TAGS or (
            tag == "div"
            and any(
                k in ("class", "id") and v and any(q in v for q in _QUOTE_CLASSES) for k, v in attrs
            )
        ):
            self._skip_tag, self._skip_depth = tag, 1
            return
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is None and tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth <= 0:
                    self._skip_tag = None
            return
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip_tag is None:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment (possibly truncated mid-tag), with line breaks."""
    cut = html.rfind("<")
    if cut > html.rfind(">"):
        html = html[:cut]  # drop a tag cut off by the body prefix limit
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # keep what was extracted before the parser gave up
        pass
    return "".join(parser.parts)


_WROTE = (
    r"(?:wrote|writes|schrieb|a [ée]crit|escribi[óo]|ha scritto|schreef|skrev|napisa[łl]a?"
    r"|написал[аи]?|kirjoitti)"
)
_ATTRIBUTION_RE = re.compile(
    rf"^(?:(?:on|am|le|el|il|op|den|dne|w dniu)\b.{{0,400}}?\b{_WROTE}(?:\b.{{0,200}}:)?"
    rf"|.{{0,400}}?\b{_WROTE}\s*:)\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START_RE = re.compile(
    r"^(?:on|am|le|el|il|op|den|dne|w dniu)\s+\S+.*\d", re.IGNORECASE
)
_SEPARATOR_RE = re.compile(
    r"^(?:-{2,}\s*(?:original message|urspr[üu]ngliche nachricht|message d'origine)\s*-{2,}"
    r"|_{20,}|-{20,})$",
    re.IGNORECASE,
)
_OUTLOOK_FROM_RE = re.compile(r"^\*?(?:from|von|de|van|fra|från)\s*:", re.IGNORECASE)
_OUTLOOK_NEXT_RE = re.compile(
    r"^\*?(?:sent|gesendet|envoy[ée]|enviado|date|datum|to|an|[àa])\s*:", re.IGNORECASE
)


_WROTE_TAIL_RE = re.compile(rf"\b{_WROTE}\s*$", re.IGNORECASE)
_ON_RE = re.compile(r"^(?:on|am|le|el|il|op|den|dne|w dniu)\b", re.IGNORECASE)

# What a (stripped) line must end with for an attribution to end there: ":" or the last letter
# of a _WROTE word; and begin with to be an Outlook "From:" line.  IGNORECASE also equates
# "ſ" with "s" and "ı", "İ" with "i": tests/test_parse_fastpaths.py derives both sets from the
# regexes over all of Unicode.  Most lines are prose, and these let them skip the regexes.
_ATTRIBUTION_LAST = frozenset(":ABEFILOSTVabefilostvÓóİıŁłſАИЛаил")
_OUTLOOK_FIRST = frozenset("*DFVdfv")


def _starts_quote(line: str, nxt: str) -> bool:
    """Attribution ("On ... wrote:"), "-----Original Message-----" or an Outlook header block.

    ``line`` (not empty) and ``nxt`` are stripped.  Cheap checks first: the full regexes are
    slow on long lines and most lines are prose.
    """
    last = line[-1]
    if (
        last in _ATTRIBUTION_LAST
        and len(line) <= 600
        and (last == ":" or _WROTE_TAIL_RE.search(line, max(0, len(line) - 30)))
        and _ATTRIBUTION_RE.match(line)
    ):
        return True
    if (
        len(line) < 200
        and nxt[-1:] == ":"
        and _ON_RE.match(line)
        and _ATTRIBUTION_RE.match(f"{line} {nxt}")
    ):
        return True  # attribution wrapped over two lines
    if line[0] in "-_" and _SEPARATOR_RE.match(line):
        return True
    return bool(line[0] in _OUTLOOK_FIRST and _OUTLOOK_FROM_RE.match(line)
                and _OUTLOOK_NEXT_RE.match(nxt))


def _text_snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """First ``limit`` chars of the new text: quoted lines and reply headers left out."""
    lines = text.splitlines()
    cut_short = not text.endswith(("\n", "\r"))  # maybe truncated by the prefix limit
    last = len(lines) - 1
    out: list[str] = []
    size = 0
    for i, raw_line in enumerate(lines):
        line = raw_line.strip()
        if not line or line[0] == ">":
            continue
        if cut_short and i == last and out and _ATTRIBUTION_START_RE.match(line):
            break  # "On Mon, 1 Jan 2" cut off before its "wrote:"
        nxt = lines[i + 1].strip() if i < last else ""
        if line == "--" and out and raw_line.rstrip() == "--":  # signature separator "-- "
            break
        if _starts_quote(line, nxt):
            if out:
                break
            continue  # nothing new before the quote (e.g. a forward): keep reading
        out.append(line)
        size += len(line) + 1
        if size > limit:
            break
    return fold(clean_text(" ".join(out)))[:limit].rstrip()


def _part_text(data: bytes, charset: str | None, subtype: str) -> str:
    """Text of a transfer-decoded part; html converted to plain text."""
    text = decode_bytes(data, charset)
    text = text.rstrip("\ufffd")  # multibyte char cut by the prefix limit
    if subtype == "html":
        text = html_to_text(text)
    return text


def body_snippet(hdr: Message, body: bytes, errors: list[str]) -> str:
    """The snippet of a message whose headers are ``hdr`` and body starts with ``body``."""
    ctype = content_type(hdr)
    maintype = ctype.split("/", 1)[0]
    if maintype == "text":
        if ctype not in ("text/plain", "text/html"):
            return ""
        data = decode_transfer(body, transfer_encoding(hdr))
        return _text_snippet(_part_text(data, content_charset(hdr), ctype[5:]))
    if maintype != "multipart" and ctype != "message/rfc822":
        return ""
    if maintype == "multipart" and not boundary(hdr):
        errors.append("multipart without boundary")
        return ""
    return _first_text(leaves(hdr, body))


def _first_text(parts: list[tuple[Message, bytes]]) -> str:
    """The first plain-text part that says something, else the first HTML one."""
    inline = [(part, payload, ctype[5:]) for part, payload in parts
              if (ctype := content_type(part)) in ("text/plain", "text/html")
              and not str(part.get("content-disposition", "")).strip().lower()
              .startswith("attachment")]
    for subtype in ("plain", "html"):
        for part, payload, part_subtype in inline:
            if part_subtype == subtype:
                snippet = _text_snippet(_part_text(payload, content_charset(part), subtype))
                if snippet:
                    return snippet
    return ""
