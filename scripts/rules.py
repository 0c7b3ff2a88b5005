"""Tagging rules: small declarative filters, compiled once when the config loads.

A rule matches one message and acts on its thread::

    - name: billing
      match: {subject: "*invoice*", from: "/@(bigcorp|acme)\\.com$/"}   # all must hold
      any: [{to: billing@example.com}, {body: "*refund*"}]              # one must hold
      tags: [+billing, -urgent]
      priority: high
      close: false
      keep_closed: false    # true: this mail in a closed thread leaves it closed (states.py)

A pattern is a case-insensitive glob, or a regular expression when written
``/like this/``.  A list of patterns matches when any of them does.  Address
fields (from, to, cc, reply_to) match the bare address or ``Name <address>``.
Invalid rules are a ConfigError naming the rule at load time, never mid-sync.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .validate import Section

if TYPE_CHECKING:
    from email.message import Message

FIELDS = ("from", "to", "cc", "reply_to", "subject", "body", "folder", "label", "header")
PRIORITIES = ("urgent", "high", "normal", "low")
_TAG_RE = re.compile(r"^[\w][\w.:/-]*$")


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str]

    @classmethod
    def compile(cls, text: str) -> Pattern:
        if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
            try:
                return cls(text, re.compile(text[1:-1], re.IGNORECASE))
            except re.error as exc:
                raise ValueError(f"bad regular expression {text!r}: {exc}") from None
        return cls(text, re.compile(fnmatch.translate(text), re.IGNORECASE | re.DOTALL))

    def search(self, value: str) -> bool:
        if self.text.startswith("/"):
            return self.regex.search(value) is not None
        return self.regex.match(value) is not None


@dataclass(frozen=True)
class Condition:
    field: str
    patterns: tuple[Pattern, ...]
    header: str | None = None  # for field == "header"


@dataclass(frozen=True)
class Rule:
    name: str
    all: tuple[Condition, ...] = ()
    any: tuple[tuple[Condition, ...], ...] = ()
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    priority: str | None = None
    close: bool = False
    extra_headers: tuple[str, ...] = field(default=())
    keep_closed: bool = False
    assign: str | None = None  # a team.members name: owner of a thread nobody owns

    def matches(self, msg: MessageView) -> bool:
        if not all(msg.check(c) for c in self.all):
            return False
        return not self.any or any(all(msg.check(c) for c in group) for group in self.any)


class MessageView:
    """The fields of one stored message as rules see them (a row from ``messages``)."""

    def __init__(self, row: Mapping[str, Any], folders: Sequence[str] = ()):
        self.row = row
        self.folders = list(folders)
        self._headers: Message | None = None

    def values(self, cond: Condition) -> list[str]:
        row = self.row
        if cond.field == "from":
            return _addr_values(row.get("from_addr"), row.get("from_name"))
        if cond.field in ("to", "cc"):
            return list(_json_list(row.get(cond.field + "_addrs")))
        if cond.field == "reply_to":
            return [row["reply_to"]] if row.get("reply_to") else []
        if cond.field == "subject":
            return [row.get("subject") or ""]
        if cond.field == "body":
            return [row.get("snippet") or ""]
        if cond.field == "folder":
            return self.folders
        if cond.field == "label":  # Gmail's X-GM-LABELS, as the message arrived
            return list(_json_list(row.get("gm_labels")))
        if self._headers is None:
            from email.parser import BytesHeaderParser  # only rules on a header need it
            from email.policy import compat32

            raw = row.get("headers") or b""
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            self._headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        return [str(v) for v in self._headers.get_all(cond.header or "", [])]

    def check(self, cond: Condition) -> bool:
        return any(p.search(v) for v in self.values(cond) for p in cond.patterns)


def _json_list(value: Any) -> list[str]:
    import json

    if not value:
        return []
    if isinstance(value, list):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def _addr_values(addr: str | None, name: str | None) -> list[str]:
    if not addr:
        return []
    return [addr, f"{name} <{addr}>"] if name else [addr]


def _conditions(spec: Any, where: str) -> tuple[Condition, ...]:
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"{where}: expected a mapping of field: pattern")
    out: list[Condition] = []
    for key, value in spec.items():
        key = str(key)
        header = None
        if key.lower().startswith("header:"):
            header = key.split(":", 1)[1].strip()
            fld = "header"
            if not header:
                raise ValueError(f"{where}: 'header:' needs a header name, e.g. header:X-Priority")
        elif key == "header" and isinstance(value, Mapping):
            for hname, hval in value.items():
                out.append(Condition("header", _patterns(hval, where), str(hname)))
            continue
        else:
            fld = key.lower()
            if fld not in FIELDS:
                raise ValueError(
                    f"{where}: unknown field {key!r} (use one of {', '.join(FIELDS)} "
                    "or header:Name)"
                )
        out.append(Condition(fld, _patterns(value, where), header))
    return tuple(out)


def _patterns(value: Any, where: str) -> tuple[Pattern, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str | int | float) for v in items):
        raise ValueError(f"{where}: a pattern must be a string or a list of strings")
    return tuple(Pattern.compile(str(v)) for v in items)


def _tags(value: Any) -> tuple[list[str], list[str]]:
    items = value if isinstance(value, list) else [value]
    add: list[str] = []
    remove: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"tags: expected strings like +billing or -urgent, got {item!r}")
        sign, name = (item[0], item[1:]) if item[:1] in "+-" else ("+", item)
        check_tag(name)
        (remove if sign == "-" else add).append(name)
    return add, remove


TAG_RULE = "a tag is letters, digits, '.', ':', '/', '-' and '_', starting with a letter or digit"


def parse_tag_changes(changes: Sequence[str]) -> tuple[list[str], list[str]]:
    """``+billing -urgent`` as (added, removed); UsageError for anything else."""
    add: list[str] = []
    remove: list[str] = []
    for change in changes:
        if change[:1] not in ("+", "-") or len(change) < 2:
            raise UsageError(f"{change!r}: write +tag to add or -tag to remove")
        if not is_tag(change[1:]):
            raise UsageError(f"{change[1:]!r}: {TAG_RULE}")
        (add if change[0] == "+" else remove).append(change[1:])
    if not (add or remove):
        raise UsageError("no tag changes (write +tag or -tag)")
    return add, remove


def is_tag(name: str) -> bool:
    return _TAG_RE.match(name) is not None


def check_tag(name: str) -> str:
    """Validate a tag name (letters, digits, and . : / - _ inside)."""
    if not is_tag(name):
        raise ValueError(f"invalid tag {name!r}: {TAG_RULE}")
    return name


def compile_rule(sec: Section) -> Rule:
    """One ``rules:`` entry; problems are raised naming the rule (``rules[0] (billing)``)."""
    name = sec.get("name", str)
    if not name:
        raise sec.error("name", "missing name")
    sec.key = f"{sec.key} ({name})"
    try:
        all_spec = sec.get("match", dict) if sec.has("match") else sec.get("all", dict)
        all_conds = _conditions(all_spec, "match") if all_spec is not None else ()
        any_spec = sec.get("any", list)
        any_groups: tuple[tuple[Condition, ...], ...] = ()
        if any_spec is not None:
            if not any_spec:
                raise ValueError("any: expected a list of mappings")
            any_groups = tuple(_conditions(g, "any") for g in any_spec)
        if not all_conds and not any_groups:
            raise ValueError("needs match: or any: conditions")
        add, remove = _tags(sec.get("tags", (list, str), []))
        priority = sec.get("priority", str)
        if priority is not None and priority not in PRIORITIES:
            raise ValueError(f"priority: expected one of {', '.join(PRIORITIES)}")
        close = sec.get("close", bool, False)
        keep_closed = sec.get("keep_closed", bool, False)
        assign = sec.get("assign", str)
        if not (add or remove or priority or close or keep_closed or assign):
            raise ValueError("no action: give tags, priority, close, keep_closed or assign")
    except ValueError as exc:
        raise sec.error_here(str(exc)) from None
    sec.reject_unknown()
    conds = all_conds + tuple(c for g in any_groups for c in g)
    headers = tuple(sorted({c.header for c in conds if c.header}))
    return Rule(name, all_conds, any_groups, tuple(add), tuple(remove), priority, close, headers,
                keep_closed=keep_closed, assign=assign.strip().lower() if assign else None)


def compile_rules(sections: Sequence[Section]) -> list[Rule]:
    """Compile the ``rules:`` list; a ConfigError names the first bad rule."""
    rules = [compile_rule(sec) for sec in sections]
    seen: set[str] = set()
    for sec, rule in zip(sections, rules, strict=True):
        if rule.name in seen:
            raise sec.error_here("duplicate rule name")
        seen.add(rule.name)
    return rules


def matching_rules(rules: Sequence[Rule], msg: MessageView) -> list[Rule]:
    return [rule for rule in rules if rule.matches(msg)]
