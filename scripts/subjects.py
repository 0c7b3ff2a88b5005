"""Subjects: the reply and forward prefixes of many languages, the form subjects are
compared in for threading, the subject of our reply, and subjects that mark machine mail.
"""

from __future__ import annotations

import re

from .text import clean_text, fold

_REPLY_WORDS = r"re|aw|sv|vs|antw|antwort|odp|r[ée]f|rif|res"
# Fwd/FW (en), WG (de), TR (fr), RV (es), ENC (pt), I/Inoltro (it), Doorst (nl), VB (sv),
# VS (da, no), VL (fi), PD (pl), Továbbítás (hu)
_FORWARD_WORDS = r"fwd?|wg|tr|rv|enc|inoltro|doorst|vb|vs|vl|pd|továbbítás|tov"
_COUNTER = r"(?:\s*(?:\[\d+\]|\(\d+\)))?"
_REPLY_PREFIX = rf"(?:{_REPLY_WORDS}){_COUNTER}\s*:"
_ANY_PREFIX = rf"(?:{_REPLY_WORDS}|{_FORWARD_WORDS}){_COUNTER}\s*:"
_TAG = r"\[[^\[\]]*\]"
_LEADING_JUNK_RE = re.compile(rf"^(?:\s*(?:{_ANY_PREFIX}|{_TAG}))+\s*", re.IGNORECASE)
_IS_REPLY_RE = re.compile(rf"^\s*(?:{_TAG}\s*)*{_REPLY_PREFIX}", re.IGNORECASE)
_LEADING_REPLY_OR_TAG_RE = re.compile(rf"^(?:\s*(?:{_REPLY_PREFIX}|{_TAG}))+", re.IGNORECASE)
_REPLY_PREFIX_RE = re.compile(rf"\s*{_REPLY_PREFIX}", re.IGNORECASE)
_IS_FORWARD_RE = re.compile(rf"^\s*(?:{_TAG}\s*)*(?:{_FORWARD_WORDS}){_COUNTER}\s*:",
                            re.IGNORECASE)
# Out-of-office and other auto-replies that carry none of the RFC 3834 headers.
_AUTO_REPLY_SUBJECT_RE = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response|antwort)|auto\s*:"
    r"|out of (?:the )?office|abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique"
    r"|risposta automatica|respuesta autom[áa]tica|resposta autom[áa]tica"
    r"|automatisch antwoord|autosvar|automatisk svar|automaattinen vastaus"
    r"|odpowied[źz] automatyczna|fuera de la oficina|absence du bureau|ausser haus)",
    re.IGNORECASE)
_BOUNCE_SUBJECT_RE = re.compile(
    r"^\s*(?:undeliver(?:ed|able)|delivery (?:status notification|failure|has failed)"
    r"|mail delivery (?:failed|failure|subsystem)|returned mail|failure notice"
    r"|non[- ]?remis|unzustellbar|nicht zustellbar)", re.IGNORECASE)


def normalize_subject(subject: str) -> str:
    """Subject reduced for matching threads by subject: no Re:/Fwd:/[tag] prefixes, lowercase.

    "Re: AW: [EXTERNAL] Fwd:  Order 12" and "order 12" normalise alike.
    """
    if not subject:
        return ""
    s = clean_text(fold(subject))
    s = _LEADING_JUNK_RE.sub("", s)
    return s.lower()


def is_reply_subject(subject: str) -> bool:
    """True for "Re: ..." (and AW/SV/VS/Antw/Odp/Réf...), also after leading [tags]; not Fwd."""
    return bool(subject) and _IS_REPLY_RE.match(subject) is not None


def is_forward_subject(subject: str) -> bool:
    """True for "Fwd: ..." and the other forward prefixes (FW, WG, TR, RV, Doorst, ...)."""
    return bool(subject) and _IS_FORWARD_RE.match(subject) is not None


def is_follow_up_subject(subject: str) -> bool:
    """A reply or a forward by its subject: what threading by subject may join to an
    earlier message (stored as ``messages.follow_up_subject``)."""
    return is_reply_subject(subject) or is_forward_subject(subject)


def reply_subject(subject: str) -> str:
    """Subject for our reply: one "Re: " in front, earlier reply prefixes removed.

    Leading [tags] and everything else stay as written ("Re: Re: AW: Help" -> "Re: Help",
    "[ext] Re: Help" -> "Re: [ext] Help"). Control characters and newlines are removed so the
    result is safe to put in a header.
    """
    s = clean_text(fold(subject or ""))
    m = _LEADING_REPLY_OR_TAG_RE.match(s)
    if m:
        head = fold(_REPLY_PREFIX_RE.sub(" ", m.group(0)))
        s = fold(f"{head} {s[m.end() :]}")
    return f"Re: {s}" if s else "Re: (no subject)"



def is_auto_reply_subject(subject: str) -> bool:
    """An out-of-office or other auto-reply that says so only in its subject."""
    return _AUTO_REPLY_SUBJECT_RE.match(subject) is not None


def is_bounce_subject(subject: str) -> bool:
    """"Undelivered Mail Returned to Sender" and its kin: maybe a delivery report."""
    return _BOUNCE_SUBJECT_RE.match(subject) is not None
