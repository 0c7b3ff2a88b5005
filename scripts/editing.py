"""Replies a person writes or finishes: the text put in their editor, and what they saved.

The file holds the headers a person may change (To, Cc, Subject), a blank line, and the
body.  What comes back is checked like any reply: To is one valid address that is not the
team's, every Cc a valid address, the body not empty.  A free-form reply starts from
``templates/editor/free-form.j2`` (greeting, signature, the customer's words quoted).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import addresses, render
from .compose import Draft, Recipients
from .config import Config
from .errors import AddressError, EditAborted, ReplyError, TemplateProblem
from .text import one_line

FREE_FORM = "(free-form)"  # the outbox's template name for a reply without a template
COMMENT = "#"
HELP = ("# Edit the reply: To, Cc and Subject above the blank line, the text below it.\n"
        "# Lines starting with # up here are left out. Save an empty text to send nothing.\n")


def free_form_template(config: Config | None) -> render.ReplyTemplate:
    """The start of a reply without a template: a user's ``editor/free-form.j2`` first."""
    for folder in render.template_dirs(config):
        path = folder / "editor" / "free-form.j2"
        if path.is_file():
            return render.ReplyTemplate(name=FREE_FORM, body=path.read_text(encoding="utf-8"),
                                        source=str(path))
    raise TemplateProblem("no editor/free-form.j2 in the template folders")


def edit_text(draft: Draft) -> str:
    """The file a person edits."""
    return (f"To: {draft.person.to_addr}\n"
            f"Cc: {', '.join(draft.person.cc)}\n"
            f"Subject: {one_line(draft.subject)}\n"
            f"{HELP}\n{draft.body.rstrip()}\n")


def apply_edit(draft: Draft, text: str, config: Config) -> Draft:
    """The draft as the person left it; EditAborted when the text is empty, ReplyError for
    an address that cannot be sent to."""
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise ReplyError("the edited reply has no blank line between its headers and its text")
    fields: dict[str, str] = {}
    for line in head.splitlines():
        if not line.strip() or line.startswith(COMMENT):
            continue
        name, colon, value = line.partition(":")
        if not colon or name.strip().lower() not in ("to", "cc", "subject"):
            raise ReplyError(f"the edited reply has a header line it cannot use: "
                             f"{one_line(line, 60)!r} (only To, Cc and Subject)")
        fields[name.strip().lower()] = value.strip()
    body = body.strip("\n")
    if not body.strip():
        raise EditAborted("the reply's text is empty: nothing sent")
    to_addr = _checked(fields.get("to", ""), "To")
    if config.team.is_us(to_addr):
        raise ReplyError(f"To: {to_addr} is the team's own address")
    cc = [_checked(a, "Cc") for a in _split(fields.get("cc", ""))]
    subject = one_line(fields.get("subject", "")) or draft.subject
    person = Recipients(to_addr, draft.person.to_name if to_addr == draft.person.to_addr
                        else "", [a for a in dict.fromkeys(cc) if a != to_addr])
    return dataclasses.replace(draft, person=person, subject=subject, body=body + "\n")


def read_body(source: str, stdin_text: str | None = None) -> str:
    """``--body FILE`` (``-``: the text read from stdin)."""
    text = stdin_text if source == "-" else Path(source).read_text(encoding="utf-8")
    if not (text or "").strip():
        raise EditAborted("the reply's text is empty: nothing sent")
    return (text or "").strip("\n") + "\n"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _checked(value: str, header: str) -> str:
    if not value:
        raise ReplyError(f"{header}: no address")
    try:
        return addresses.check_sendable(value)
    except AddressError as exc:
        raise ReplyError(f"{header}: cannot send to {one_line(value, 60)!r}: {exc}") from None
