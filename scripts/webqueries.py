"""The canned queries of ``triage serve``: stable names, the same rows as the commands.

The rules live in Python (the SLA clock with business hours, holding replies, expired
snoozes), so a query cannot be plain SQL without writing them twice.  Each canned query is
SQL over one function, ``mailtriage_rows(name, args)``, that web.py registers on
Datasette's read-only connections: it calls the library function the command calls and
returns its rows as JSON, which ``json_each`` turns back into columns.  That keeps one place
for each rule, and the queries are still Datasette's own: a page with a form, ``.json``,
``.csv``, ``_shape=array``.

SQLite has no lists or booleans: list columns (``tags`` …) come as JSON text and boolean
ones as the text ``true``/``false``; ``_json=COLUMN`` (:func:`json_args`) decodes them,
and the result is then exactly what ``--json`` prints.  No click, no Datasette here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import Config
from .listing import list_threads
from .overdue import overdue
from .report import first_response, open_tags

if TYPE_CHECKING:
    import sqlite_utils

FUNCTION = "mailtriage_rows"

OVERDUE_COLUMNS = (
    "thread_id", "subject", "customer", "customer_name", "waiting_since", "due_at",
    "age_hours", "sla_age_hours", "overdue", "reason", "state", "priority", "assignee",
    "tags", "message_ids", "detail", "draft_by",
)
THREAD_COLUMNS = (
    "id", "subject", "customer", "customer_name", "participants", "first_at", "last_at",
    "message_count", "state", "snoozed_until", "priority", "assignee", "tags",
    "waiting_since", "last_sender", "message_ids", "draft_by",
)
LIST_COLUMNS = frozenset({"tags", "message_ids", "draft_by", "participants"})
BOOL_COLUMNS = frozenset({"overdue"})


@dataclass(frozen=True)
class Query:
    title: str
    description: str  # which command prints the same rows
    columns: tuple[str, ...]
    params: tuple[str, ...] = ()


QUERIES: dict[str, Query] = {
    "overdue": Query("Overdue", "What `triage overdue --json` lists: past the SLA, follow-ups "
                     "due, and what needs a person, oldest first.", OVERDUE_COLUMNS),
    "followup_due": Query("Follow-up due", "The rows of `triage overdue --json` with reason "
                          "followup: we promised news.", OVERDUE_COLUMNS),
    "waiting_on_us": Query("Waiting on us", "`triage threads --state open --json`: every "
                           "thread whose customer waits, the latest first.", THREAD_COLUMNS),
    "by_tag": Query("Open threads by tag", "The report's tag counts (`triage report --json`, "
                    "tags).", ("tag", "count")),
    "customer_threads": Query("A customer's threads", "`triage threads --customer ADDRESS "
                              "--json`: an address, or @domain for everyone there.",
                              THREAD_COLUMNS, ("address",)),
    "first_response": Query("First response", "The report's first-response figures for the "
                            "last 7 days (`triage report --json`, response).",
                            ("days", "answered", "unanswered", "median_hours", "p90_hours")),
}


def rows(name: str, db: sqlite_utils.Database, config: Config, now: dt.datetime,
         args: Mapping[str, Any], holding_templates: Collection[str]) -> list[dict[str, Any]]:
    """The rows of canned query ``name``, from the library function its command calls."""
    if name in ("overdue", "followup_due"):
        items = overdue(db, config, now, holding_templates=holding_templates)
        return items if name == "overdue" else [i for i in items if i["reason"] == "followup"]
    if name == "waiting_on_us":
        return list_threads(db, now, state="open")
    if name == "customer_threads":
        address = str(args.get("address") or "").strip()
        return list_threads(db, now, customer=address) if address else []
    if name == "by_tag":
        return open_tags(db, now)
    if name == "first_response":
        return [first_response(db, now)]
    raise KeyError(name)


def _column(name: str) -> str:
    path = f"'$.{name}'"
    if name in BOOL_COLUMNS:
        return (f"CASE json_type(r.value, {path}) WHEN 'true' THEN 'true' "
                f"WHEN 'false' THEN 'false' END AS {name}")
    return f"json_extract(r.value, {path}) AS [{name}]"


def sql(name: str) -> str:
    """The canned query's SQL: one column per key of the library's rows, in their order."""
    query = QUERIES[name]
    args = ", ".join(f"'{p}', :{p}" for p in query.params)
    columns = ",\n  ".join(_column(c) for c in query.columns)
    return (f"SELECT\n  {columns}\nFROM json_each({FUNCTION}('{name}', json_object({args}))) r\n"
            "ORDER BY r.key")


def json_args(name: str) -> list[str]:
    """The ``_json=`` arguments that give a query's rows exactly as ``--json`` has them."""
    return [c for c in QUERIES[name].columns if c in LIST_COLUMNS | BOOL_COLUMNS]


def canned_queries() -> dict[str, dict[str, Any]]:
    """Datasette's canned-query definitions (none writable)."""
    return {name: {"sql": sql(name), "title": q.title, "description": q.description}
            for name, q in QUERIES.items()}


def row_function(db: sqlite_utils.Database, config: Config, now: Callable[[], dt.datetime],
                 holding_templates: Collection[str]) -> Callable[[str, str], str]:
    """``mailtriage_rows(name, args)`` for one connection: the rows as JSON text."""
    def function(name: str, args: str) -> str:
        values = json.loads(args or "{}")
        return json.dumps(rows(name, db, config, now(), values, holding_templates),
                          ensure_ascii=False)

    return function
