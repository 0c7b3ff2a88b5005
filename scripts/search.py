"""Full-text search over subjects, senders, snippets and notes (``triage search``).

The indexes are FTS5 tables kept current by triggers (schema.py, ``m006_search``), so a
sync needs no extra pass.  A person's query is never handed to FTS5 as it is: its syntax
(``AND``, ``NEAR(``, ``col:``, ``-``, unbalanced quotes) would be errors or surprises.
:func:`fts_query` keeps only words, ``"exact phrases"`` and ``prefix*``, each quoted, all
required.  Results are threads, each ranked by its best hit (bm25).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import sqlite_utils

from .errors import UsageError
from .listing import state_where, thread_dicts
from .store import query_rows
from .text import clean_text, one_line

# A query matching more messages than this ranks only the newest this many of them (by
# storage order): bm25 costs ~2 us a hit, and a word in most of 100k messages would take
# 200 ms to rank in full.  A word that common is not what anyone searches by alone.
MAX_RANKED = 5000
# bm25 weights of messages_fts's columns: subject, from_name, from_addr, snippet.
WEIGHTS = (4.0, 2.0, 2.0, 1.0)
HIT_START, HIT_END = "\x02", "\x03"  # snippet() marks; stored text has no control chars
_TERMS = re.compile(r'"([^"]*)("?)|(\S+)')
_MARKS = re.compile(f"[{HIT_START}{HIT_END}]")
_SPACES = re.compile(r"\s+")


def fts_query(text: str) -> str:
    """The user's words as a safe FTS5 query: every word or ``"phrase"`` quoted (so no
    operator or column filter gets through), a trailing ``*`` kept as a prefix, all
    required.  An unbalanced quote runs to the end.  UsageError when no word is left."""
    terms = []
    for m in _TERMS.finditer(clean_text(text)):  # a NUL would end FTS5's string early
        phrase, word = m.group(1), m.group(3)
        raw = phrase if word is None else word.replace('"', " ")
        prefix = word is not None and word.endswith("*")
        raw = raw.strip().rstrip("*") if prefix else raw.strip()
        if not any(ch.isalnum() for ch in raw):
            continue  # "-", "*", '""': nothing the index holds
        quoted = '"' + raw.replace('"', '""') + '"'
        terms.append(quoted + "*" if prefix else quoted)
    if not terms:
        raise UsageError(f"nothing to search for in {one_line(text, 40)!r}: give a word, "
                         '"a phrase" or a prefix*')
    return " ".join(terms)


def _hits_sql() -> str:
    """Every thread's best hit among the newest MAX_RANKED matching messages and notes."""
    weights = ", ".join(map(str, WEIGHTS))
    return (
        "WITH hits AS ("
        "SELECT m.thread_id AS tid, h.score, 'message' AS kind, h.id FROM ("
        f"SELECT rowid AS id, bm25(messages_fts, {weights}) AS score FROM messages_fts "
        "WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT ?) h "
        "JOIN messages m ON m.id = h.id "
        "UNION ALL "
        "SELECT n.thread_id, h.score, 'note', h.id FROM ("
        "SELECT rowid AS id, bm25(notes_fts) AS score FROM notes_fts "
        "WHERE notes_fts MATCH ? ORDER BY rowid DESC LIMIT ?) h "
        "JOIN notes n ON n.id = h.id), "
        # SQLite gives a bare column of the row MIN() chose: the best hit's kind and id
        "best AS (SELECT tid, MIN(score) AS score, kind, id AS hit FROM hits GROUP BY tid) "
    )


def search_threads(db: sqlite_utils.Database, query: str, now: dt.datetime, *,
                   state: str | None = None, limit: int | None = 20) -> list[dict[str, Any]]:
    """Threads matching ``query``, best first, as ``threads --json`` gives them, each with
    ``matches``: where its best hit is and a snippet of it with the hit spans marked."""
    q = fts_query(query)
    state_sql, state_params = state_where(state, now)
    sql = (_hits_sql() +
           "SELECT b.kind AS _kind, b.hit AS _hit, t.*, s.state, s.snoozed_until, s.priority "
           "FROM best b JOIN threads t ON t.id = b.tid "
           "LEFT JOIN thread_state s ON s.thread_id = t.id "
           f"WHERE {state_sql} ORDER BY b.score, t.last_at DESC, t.id DESC")
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = list(db.query(sql, [q, MAX_RANKED, q, MAX_RANKED, *state_params]))
    out = thread_dicts(db, rows, now)
    found = _snippets(db, q, rows)
    for row, item in zip(rows, out, strict=True):
        text, spans = found.get((row["_kind"], row["_hit"]), ("", []))
        item["matches"] = {"in": row["_kind"], "text": text, "spans": spans}
    return out


def _snippets(db: sqlite_utils.Database, q: str,
              rows: Sequence[dict[str, Any]]) -> dict[tuple[str, int], tuple[str, list[Any]]]:
    """The best hits' snippets with their hits marked, split into clean text and spans."""
    out: dict[tuple[str, int], tuple[str, list[Any]]] = {}
    for kind, fts in (("message", "messages_fts"), ("note", "notes_fts")):
        ids = [r["_hit"] for r in rows if r["_kind"] == kind]
        sql = (f"SELECT rowid, snippet({fts}, -1, '{HIT_START}', '{HIT_END}', '…', 16) "
               f"FROM {fts} WHERE rowid IN ({{in}}) AND {fts} MATCH ?")
        for rowid, marked in query_rows(db, sql, ids, [q]):
            out[(kind, rowid)] = split_marks(marked or "")
    return out


def split_marks(marked: str) -> tuple[str, list[list[int]]]:
    """Snippet text with HIT_START/HIT_END marks -> one clean line and the [start, end)
    spans of the hits in it (for JSON, and for bold on a terminal)."""
    text, spans = "", []
    for n, piece in enumerate(_MARKS.split(marked)):
        clean = _SPACES.sub(" ", clean_text(_SPACES.sub(" ", piece)))
        if text.endswith(" ") and clean.startswith(" "):
            clean = clean[1:]
        if n % 2 and clean.strip():
            spans.append([len(text), len(text) + len(clean)])
        text += clean
    lead = len(text) - len(text.lstrip())
    return text.strip(), [[a - lead, b - lead] for a, b in spans]
