"""The SQLite store: opening it safely (schema.py says what is in it), and the small
helpers every query uses: ISO times, chunked ``IN (...)`` queries, thread ids as people
type them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import sqlite_utils

from .errors import NotFound, StoreError
from .schema import ensure_shape, migrations

# Keep IN (...) lists well under SQLite's variable limit.
CHUNK = 500


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Open (creating 0600 if new) the state database, migrated and in WAL mode."""
    path = Path(path)
    try:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        conn = sqlite3.connect(str(path), timeout=30)
        db = sqlite_utils.Database(conn)
        if str(path) != ":memory:":
            db.enable_wal()
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")
        # 32 MB of page cache instead of 2 MB: index inserts land all over a big
        # mailbox's B-trees (the 100k benchmark spent 13 s in INSERTs with the default).
        db.execute("PRAGMA cache_size = -32000")
        migrations.apply(db)
        ensure_shape(db)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"{path}: cannot open the database: {exc}") from exc
    return db


@contextlib.contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A write transaction that takes the write lock at once (``BEGIN IMMEDIATE``): what
    it reads cannot change before it writes, so two processes cannot both claim a send."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()


@overload
def iso(value: dt.datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: dt.datetime | None) -> str | None: ...
def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 UTC with a trailing Z: sorts as text, parses everywhere."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    # isoformat() is C-fast; strftime showed up in profiles at 4 calls per message.
    utc = value.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)
    return utc.isoformat() + "Z"


def parse_iso(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def query_in(
    db: sqlite_utils.Database, sql: str, values: Iterable[Any], extra: Sequence[Any] = ()
) -> Iterator[dict[str, Any]]:
    """Run ``sql`` (holding one ``{in}`` placeholder) for values in chunks."""
    values = list(values)
    for part in chunks(values):
        marks = ",".join("?" * len(part))
        yield from db.query(sql.format(**{"in": marks}), [*part, *extra])


def query_rows(
    db: sqlite_utils.Database, sql: str, values: Iterable[Any], extra: Sequence[Any] = ()
) -> Iterator[tuple[Any, ...]]:
    """Like :func:`query_in` but yields plain tuples: for the hot loops of sync."""
    values = list(values)
    for part in chunks(values):
        marks = ",".join("?" * len(part))
        yield from db.execute(sql.format(**{"in": marks}), [*part, *extra])


def get_meta(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_meta(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])


def resolve_thread_id(db: sqlite_utils.Database, ref: str | int) -> int | None:
    """A thread id as users type it (``42`` or ``thread:42``), following merges."""
    text = str(ref).strip().removeprefix("thread:").removeprefix("#")
    if not text.isdigit():
        return None
    tid = int(text)
    for _ in range(100):  # aliases form chains when threads merge repeatedly
        if db.execute("SELECT 1 FROM threads WHERE id = ?", [tid]).fetchone():
            return tid
        row = db.execute("SELECT thread_id FROM thread_aliases WHERE old_id = ?", [tid]).fetchone()
        if not row:
            return None
        tid = row[0]
    return None


def require_thread(db: sqlite_utils.Database, ref: str | int) -> int:
    """:func:`resolve_thread_id`, or NotFound naming what was asked for."""
    tid = resolve_thread_id(db, ref)
    if tid is None:
        raise NotFound(f"no thread {str(ref)!r}")
    return tid


def loads(value: str | None) -> Any:
    return json.loads(value) if value else []
