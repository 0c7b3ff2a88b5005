"""Internal notes on a thread: what the team knows that the mail does not say.

A note is never sent and never changes whose turn it is; it is kept with its author (a
``team.members`` name when ``--as`` says who wrote it) and time, shown by ``show`` and
``explain``, and its writing is in ``history``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from .errors import UsageError
from .states import record
from .store import iso

if TYPE_CHECKING:
    import sqlite_utils

MAX_NOTE = 20_000  # characters: a note, not an attachment


def add_note(db: sqlite_utils.Database, thread_id: int, text: str, author: str | None,
             now: dt.datetime) -> int:
    """Keep ``text`` on the thread; its id."""
    text = text.strip()
    if not text:
        raise UsageError("the note is empty")
    if len(text) > MAX_NOTE:
        raise UsageError(f"the note is {len(text)} characters long; at most {MAX_NOTE}")
    at = iso(now)
    with db.atomic():
        cur = db.execute("INSERT INTO notes (thread_id, author, at, text) VALUES (?, ?, ?, ?)",
                         [thread_id, author, at, text])
        record(db, thread_id, at, "note", None, f"by {author or 'someone'}", "cli")
    return int(cur.lastrowid or 0)

