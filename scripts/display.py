"""Plain-text rendering for the terminal.

Everything customer-supplied passes through :func:`~mailtriage.text.one_line` first:
control characters and escape sequences are stripped so a subject cannot move the
cursor, recolour the terminal or fake extra lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from .store import parse_iso
from .text import clean_text, one_line
from .times import format_duration


def age(since: str | None, now: dt.datetime) -> str:
    at = parse_iso(since)
    if at is None:
        return "-"
    return format_duration(max(now - at, dt.timedelta()))


def required_time(value: str) -> dt.datetime:
    """Parse a time that is always set, such as an overdue item's ``waiting_since``."""
    at = parse_iso(value)
    assert at is not None, value
    return at


def short_time(value: str | None) -> str:
    at = parse_iso(value)
    return at.strftime("%Y-%m-%d %H:%M") if at else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def threads_table(rows: Sequence[dict[str, Any]], now: dt.datetime) -> str:
    if not rows:
        return "no threads"
    return table(
        ["ID", "STATE", "WAITING", "LAST", "OWNER", "CUSTOMER", "SUBJECT", "TAGS"],
        [[str(r["id"]), r["state"], age(r["waiting_since"], now) if r["waiting_since"] else "",
          short_time(r["last_at"]), r.get("assignee") or "-", one_line(r["customer"], 30),
          one_line(r["subject"], 50), " ".join([*r["tags"], *_drafts(r)])] for r in rows],
    )


BOLD, RESET = "\x1b[1m", "\x1b[0m"


def search_table(rows: Sequence[dict[str, Any]], now: dt.datetime, highlight: bool,
                 width: int = 100) -> str:
    """``threads_table`` in rank order, each thread followed by its best hit, the matched
    words in bold when ``highlight`` (a terminal: never into a pipe)."""
    if not rows:
        return "no matches"
    lines = threads_table(rows, now).splitlines()
    out = lines[:1]
    for line, r in zip(lines[1:], rows, strict=True):
        m = r.get("matches") or {}
        hit = _marked(m.get("text", ""), m.get("spans", []), highlight, width)
        out += [line, f"    {m.get('in', '')}: {hit}"]
    return "\n".join(out)


def _marked(text: str, spans: Sequence[Sequence[int]], highlight: bool, width: int) -> str:
    """Text (already clean: search.split_marks) cut to ``width``, spans in bold."""
    cut = text if len(text) <= width else text[: width - 1] + "…"
    if not highlight:
        return cut
    out, at = [], 0
    for start, end in spans:
        start, end = min(start, len(cut)), min(end, len(cut))
        if start >= end:
            continue
        out += [cut[at:start], BOLD, cut[start:end], RESET]
        at = end
    return "".join([*out, cut[at:]])


def _drafts(row: dict[str, Any]) -> list[str]:
    return [f"(draft by {one_line(', '.join(row['draft_by']))})"] if row.get("draft_by") else []


def overdue_table(items: Sequence[dict[str, Any]], now: dt.datetime,
                  business_hours: bool) -> str:
    """``overdue`` as a table; SLA age next to wall-clock age when business hours apply."""
    headers = ["ID", "REASON", "AGE", *(["SLA AGE"] if business_hours else []), "DUE",
               "OWNER", "CUSTOMER", "SUBJECT", "TAGS"]
    rows = []
    for i in items:
        sla_age = i["sla_age_hours"]
        rows.append([
            str(i["thread_id"]), i["reason"],
            format_duration(now - required_time(i["waiting_since"])),
            *([format_duration(dt.timedelta(hours=sla_age)) if sla_age is not None
               else "-"] if business_hours else []),
            short_time(i["due_at"]), i.get("assignee") or "-", one_line(i["customer"], 30),
            one_line(i["detail"] if i.get("detail") else i["subject"], 50),
            " ".join([*i["tags"], *_drafts(i)])])
    return table(headers, rows)


def thread_text(t: dict[str, Any], now: dt.datetime) -> str:
    """``triage show`` for a person: the thread, what needs one, each message, what we sent,
    and the history."""
    lines = _thread_head(t, now) + _needs_a_person(t)
    for m in t["messages"]:
        lines += ["", *_message_lines(m)]
    sent = [o for o in t.get("outbox", []) if o["kind"] == "reply"]
    if sent:
        lines += ["", "  sent by mailtriage:"]
        lines += [f"    {short_time(o['created_at'])}  {o['template']} to "
                  f"{one_line(o['to_addr'])}  {o['state']}"
                  + (f" (copy: {o['sent_copy']})" if o["sent_copy"] else "") for o in sent]
    if t.get("notes"):
        lines += ["", "  notes:"]
        for n in t["notes"]:
            text = clean_text(n["text"], keep_newlines=True).splitlines() or [""]
            lines.append(f"    {short_time(n['at'])}  {one_line(n['author'] or 'someone')}: "
                         f"{text[0]}")
            lines += [f"      {line}" for line in text[1:]]
    if t.get("other_threads"):
        lines += ["", "  the customer's other threads:"]
        lines += [f"    {o['id']}  {o['state']}  {short_time(o['last_at'])}  "
                  f"{one_line(o['subject'], 50)}"
                  + (f"  ({one_line(o['customer'])})" if o["by"] == "domain" else "")
                  for o in t["other_threads"]]
    if t["history"]:
        lines += ["", "  history:"]
        lines += [f"    {short_time(h['at'])}  {_change(h)}  ({h['cause']})" for h in t["history"]]
    return "\n".join(lines)


def _thread_head(t: dict[str, Any], now: dt.datetime) -> list[str]:
    until = f" until {t['snoozed_until']}" if t.get("snoozed_until") else ""
    priority = f", priority {t['priority']}" if t.get("priority") else ""
    lines = [
        f"Thread {t['id']}: {one_line(t['subject'])}",
        f"  state: {t['state']}{until}{priority}",
        f"  owner: {t.get('assignee') or '-'}",
        f"  customer: {one_line(t['customer_name'] or '')} <{one_line(t['customer'])}>",
        f"  tags: {' '.join(t['tags']) or '-'}",
    ]
    if t["waiting_since"]:
        lines.append(f"  waiting since {short_time(t['waiting_since'])} "
                     f"({age(t['waiting_since'], now)})")
    if t.get("auto_signals"):
        lines.append(f"  automated signals: {', '.join(t['auto_signals'])}")
    return lines


def _needs_a_person(t: dict[str, Any]) -> list[str]:
    """Replies not known to have arrived, bounces, and drafts someone is writing."""
    lines = [f"  NEEDS A PERSON: reply {o['id']} ({o['template']}) {o['state']}: "
             f"{one_line(o['error'] or '')}" for o in t.get("outbox", [])
             if o["kind"] == "reply" and o["state"] != "sent" and not o["resolved_at"]]
    lines += [f"  BOUNCED: {one_line(b['recipient'] or 'a recipient')} {one_line(b['status'])} "
              f"{one_line(b['diagnostic'], 100)} ({short_time(b['at'])})"
              for b in t.get("bounces", [])]
    for d in t.get("drafts", []):
        who = "our reply --draft" if d["ours"] else one_line(d["from_name"] or d["from"])
        lines.append(f"  draft by {who} in {', '.join(one_line(f) for f in d['folders'])}: "
                     f"{one_line(d['subject'], 60)}")
    return lines


def _message_lines(m: dict[str, Any]) -> list[str]:
    who = (f"{one_line(m['from_name'])} <{one_line(m['from'])}>" if m["from_name"]
           else one_line(m["from"]))
    lines = [f"  [{short_time(m['arrived_at'])}] {who}",
             f"    subject: {one_line(m['subject'])}",
             f"    id: <{one_line(m['id'])}>",  # what `triage split` takes
             f"    folders: {', '.join(one_line(f) for f in m['folders']) or '-'}"
             f"  flags: {' '.join(m['flags']) or '-'}"]
    for label, value in (("automated", ", ".join(m["auto_signals"])),
                         ("rules", ", ".join(m["rules"])),
                         ("parse error", one_line(m["parse_error"]))):
        if value:
            lines.append(f"    {label}: {value}")
    if m["snippet"]:
        lines.append(f"    {one_line(m['snippet'], 160)}")
    return lines


def _change(h: dict[str, Any]) -> str:
    if h["field"] == "tag":
        return str(h["new"])
    return f"{h['field']}: {h['old'] or '-'} -> {h['new'] or '-'}"
