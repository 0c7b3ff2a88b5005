"""Full-text search over subjects, senders, snippets and notes (``triage search``).

The indexes are FTS5 tables kept current in the transactions that write the rows (schema.py:
triggers, and sync's one statement a batch), so a sync needs no extra pass.  A person's
query is never handed to FTS5 as it is: its syntax (``AND``, ``NEAR(``, ``col:``, ``-``,
unbalanced quotes) would be errors or surprises.
:func:`fts_query` keeps only words, ``"exact phrases"`` and ``prefix*``, each quoted, all
required.  Results are threads, each ranked by its best hit (bm25).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .listing import STATE_COLUMNS, state_where, thread_dicts
from .store import query_rows
from .text import clean_text, one_line

if TYPE_CHECKING:
    import sqlite_utils

# A query matching more messages (or notes) than this ranks only the ones stored last (the
# newest, mostly): bm25 costs a few us a hit, and a word in most of 100k messages would
# take 200 ms to rank in full (5,000: 25-40 ms, 2,000: 9-18 ms at 100k on 2 busy cores).
# A word that common is not what anyone searches by alone.
MAX_RANKED = 2000
MAX_EXPANDED = 40  # a prefix standing for more words than this is left to FTS5 (see _expanded)
# bm25 weights of messages_fts's columns: subject, from_name, from_addr, snippet.
WEIGHTS = (4.0, 2.0, 2.0, 1.0)
# snippet() marks: control characters, which split_marks strips from the text around them
# (a stranger's own \x02 in a subject can at worst move the bold, never print)
HIT_START, HIT_END = "\x02", "\x03"
_TERMS = re.compile(r'"([^"]*)"?|(\S+)')  # a phrase (maybe unclosed), or a word
_MARKS = re.compile(f"[{HIT_START}{HIT_END}]")
_SPACES = re.compile(r"\s+")


def terms_of(text: str) -> list[tuple[str, bool]]:
    """The user's words and ``"phrases"`` (an unbalanced quote runs to the end), each with
    whether it ends in ``*``; what holds no letter or digit is dropped."""
    terms = []
    for m in _TERMS.finditer(clean_text(text)):  # a NUL would end FTS5's string early
        phrase, word = m.group(1), m.group(2)
        raw = phrase if word is None else word.replace('"', " ")
        prefix = word is not None and word.endswith("*")
        raw = raw.strip().rstrip("*") if prefix else raw.strip()
        if any(ch.isalnum() for ch in raw):  # not "-", "*", '""': nothing the index holds
            terms.append((raw, prefix))
    if not terms:
        raise UsageError(f"nothing to search for in {one_line(text, 40)!r}: give a word, "
                         '"a phrase" or a prefix*')
    return terms


def _quoted(raw: str, prefix: bool = False) -> str:
    return '"' + raw.replace('"', '""') + '"' + ("*" if prefix else "")


def fts_query(text: str) -> str:
    """The user's words as a safe FTS5 query: every word or ``"phrase"`` quoted (so no
    operator or column filter gets through), a trailing ``*`` kept as a prefix, all
    required.  UsageError when no word is left."""
    return " ".join(_quoted(raw, prefix) for raw, prefix in terms_of(text))


def _expanded(db: sqlite_utils.Database, terms: list[tuple[str, bool]]) -> str:
    """The query for messages_fts, each plain ``pre*`` spelled out as the words it stands
    for, OR-ed: FTS5 reads every such word's whole hit list before a LIMIT can stop it
    (75 ms for ``refu*`` at 100k), and reads OR-ed words lazily, newest first."""
    parts = []
    for raw, prefix in terms:
        words = _words_starting(db, raw) if prefix and raw.isascii() and raw.isalnum() else []
        parts.append("(" + " OR ".join(map(_quoted, words)) + ")" if words
                     else _quoted(raw, prefix))
    return " AND ".join(parts)  # next to a (group), FTS5 wants its AND written out


def _words_starting(db: sqlite_utils.Database, prefix: str) -> list[str]:
    """The indexed words starting with an ASCII ``prefix``, if there are a few (else [])."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.messages_fts_words "
               "USING fts5vocab(main, messages_fts, row)")  # temp: nothing written to the file
    low = prefix.lower()
    words = [r[0] for r in db.execute(
        "SELECT term FROM temp.messages_fts_words WHERE term >= ? AND term < ? LIMIT ?",
        [low, low[:-1] + chr(ord(low[-1]) + 1), MAX_EXPANDED + 1])]
    return words if len(words) <= MAX_EXPANDED else []


def _hits_sql() -> str:
    """Every thread's best hit among the last MAX_RANKED matching messages and notes."""
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
    terms = terms_of(query)
    q = " ".join(_quoted(raw, prefix) for raw, prefix in terms)
    q_messages = _expanded(db, terms) if any(prefix for _r, prefix in terms) else q
    state_sql, state_params = state_where(state, now)
    sql = (_hits_sql() +
           f"SELECT b.kind AS _kind, b.hit AS _hit, t.*, {STATE_COLUMNS} "
           "FROM best b JOIN threads t ON t.id = b.tid "
           "LEFT JOIN thread_state s ON s.thread_id = t.id "
           f"WHERE {state_sql} ORDER BY b.score, t.last_at DESC, t.id DESC")
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = list(db.query(sql, [q_messages, MAX_RANKED, q, MAX_RANKED, *state_params]))
    out = thread_dicts(db, rows, now)
    found = _snippets(db, {"message": q_messages, "note": q}, rows)
    for row, item in zip(rows, out, strict=True):
        text, spans = found.get((row["_kind"], row["_hit"]), ("", []))
        item["matches"] = {"in": row["_kind"], "text": text, "spans": spans}
    return out


def _snippets(db: sqlite_utils.Database, queries: dict[str, str],
              rows: Sequence[dict[str, Any]]) -> dict[tuple[str, int], tuple[str, list[Any]]]:
    """The best hits' snippets with their hits marked, split into clean text and spans."""
    out: dict[tuple[str, int], tuple[str, list[Any]]] = {}
    for kind, fts in (("message", "messages_fts"), ("note", "notes_fts")):
        ids = [r["_hit"] for r in rows if r["_kind"] == kind]
        sql = (f"SELECT rowid, snippet({fts}, -1, '{HIT_START}', '{HIT_END}', '…', 16) "
               f"FROM {fts} WHERE rowid IN ({{in}}) AND {fts} MATCH ?")
        for rowid, marked in query_rows(db, sql, ids, [queries[kind]]):
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
