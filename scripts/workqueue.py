"""The queue ``triage work`` walks: the most urgent thread first.

Overdue threads (the longest wait first), then follow-ups due, then what waits for a
person (a bounce, a reply of unknown fate), then every other open thread, the longest wait
first: the order a person clears a queue in.  The same filters as ``overdue``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import TYPE_CHECKING

from .config import Config
from .listing import list_threads
from .overdue import ATTENTION_REASONS, overdue

if TYPE_CHECKING:
    import sqlite_utils

ORDER = ("unanswered", "followup", *ATTENTION_REASONS)


def work_queue(db: sqlite_utils.Database, config: Config, now: dt.datetime, *,
               assignee: str | None = None, tag: str | None = None, state: str | None = None,
               holding_templates: Collection[str] = ()) -> list[int]:
    """Thread ids, most urgent first (see the module docstring)."""
    tags = [tag] if tag else []
    items = overdue(db, config, now, tags=tags, state=state, assignee=assignee,
                    holding_templates=holding_templates)
    ranked = sorted(items, key=lambda i: (ORDER.index(i["reason"]), i["waiting_since"] or ""))
    ids = list(dict.fromkeys(i["thread_id"] for i in ranked))
    rest = list_threads(db, now, state=state or "open", tags=tags, assignee=assignee)
    rest.sort(key=lambda t: (t["waiting_since"] is None, t["waiting_since"] or "", t["id"]))
    listed = set(ids)
    return ids + [t["id"] for t in rest if t["id"] not in listed]
