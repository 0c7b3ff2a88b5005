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
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from .errors import NotFound, StoreError
from .files import check_file, create_private, make_private_folders, write_private
from .schema import ensure_shape, migrations
from .sqlitelib import sqlite_utils

# Keep IN (...) lists well under SQLite's variable limit.
CHUNK = 500
# Seconds a writer waits for another's transaction (cron's run, a person's reply) to end.
BUSY_TIMEOUT = 30.0


ROWS_PER_INSERT = 64  # store.insert_rows: 1/64 of the GIL hand-overs of executemany
CHECKPOINT_PAGES = 16384  # of 4 KiB: 64 MB of WAL at most before SQLite checkpoints it
HISTORY_SUFFIX = ".id"  # beside the database: its id, written when it is created


class SameFileConnection(sqlite3.Connection):
    """A connection that checks, before every commit, that the file under the database's
    path is still the one it opened: a database deleted or replaced while cron runs must
    stop the run, not take its writes into an unlinked file."""

    watched: tuple[Path, int, int] | None = None  # path, st_dev, st_ino

    def watch(self, path: Path) -> None:
        st = os.stat(path)
        self.watched = (path, st.st_dev, st.st_ino)

    def check_same_file(self) -> None:
        if self.watched is None:
            return
        path, dev, ino = self.watched
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != (dev, ino):
            raise StoreError(f"{path} was deleted or replaced while triage was running; "
                             "stopped without writing more to it")

    def commit(self) -> None:
        self.check_same_file()
        super().commit()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc_type is None:
            try:
                self.check_same_file()
            except StoreError as problem:
                super().__exit__(StoreError, problem, None)  # roll back
                raise
        return super().__exit__(exc_type, exc, tb)


class StateDatabase(sqlite_utils.Database):
    """``state.db``: a sqlite-utils Database whose ``atomic()`` takes the write lock at once
    (``BEGIN IMMEDIATE``) and commits through :class:`SameFileConnection`.

    Taking the lock at once means waiting (up to :data:`BUSY_TIMEOUT`) for a writer in
    another process instead of failing: a deferred transaction that read first and then
    writes cannot wait, and fails at once with "database is locked" when another process
    wrote in between.  It also means what the block reads cannot change before it writes,
    so two processes cannot both claim one send.
    """

    @contextlib.contextmanager
    def atomic(self) -> Iterator[StateDatabase]:
        if self.conn.in_transaction:  # nested: a savepoint inside the outer transaction
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise


def open_db(path: Path | str, *, allow_symlink: bool = False,
            init: bool = False) -> StateDatabase:
    """Open (creating 0600 if new) the state database, migrated and in WAL mode.

    Refused when another user could change it or its folder, when it is a symlink (unless
    ``allow_symlink``), and when it is missing or another database although one was here
    before (its id file says so) unless ``init``: a lost database must not be silently
    rebuilt from nothing, losing states, tags and the record of what was sent.
    """
    path = Path(path)
    if str(path) == ":memory:":
        return _connect(path)
    try:
        make_private_folders(path.parent)
        real = check_file(path, "database", allow_symlink=allow_symlink,
                          symlink_hint="; set db.allow_symlink: true if you made it")
        for suffix in ("-wal", "-shm"):
            check_file(Path(f"{real}{suffix}"), "database file")
        created = _create_if_missing(path, real, init)
        db = _connect(real)
        _check_history(db, path, created=created, init=init)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"{path}: cannot open the database: {exc}") from exc
    return db


def _create_if_missing(path: Path, real: Path, init: bool) -> bool:
    if real.exists():
        return False
    history = Path(f"{path}{HISTORY_SUFFIX}")
    if history.exists() and not init:
        raise StoreError(f"{path} is missing, but a database was here before ({history} "
                         "says so): restore it, or run with --init to start from nothing")
    create_private(real)
    return True


def _check_history(db: sqlite_utils.Database, path: Path, *, created: bool,
                   init: bool) -> None:
    """Give a new database its id and write it beside; refuse another database in its place."""
    history = Path(f"{path}{HISTORY_SUFFIX}")
    db_id = get_meta(db, "db_id")
    if db_id is None:
        db_id = uuid.uuid4().hex
        with db.atomic():
            set_meta(db, "db_id", db_id)
    recorded = history.read_text(encoding="ascii").strip() if history.exists() else None
    if recorded not in (None, db_id) and not (created or init):
        raise StoreError(f"{path} is not the database that was here before ({history} names "
                         "another): restore that one, or run with --init to use this one")
    if recorded != db_id:
        write_private(history, db_id + "\n")


def _connect(path: Path) -> StateDatabase:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, factory=SameFileConnection)
    # No sqlite-utils plugins on our store: finding them reads the entry points of every
    # installed distribution, at each start, for hooks mailtriage never asked for.
    db = StateDatabase(conn, execute_plugins=False)
    if str(path) != ":memory:":
        assert isinstance(conn, SameFileConnection)
        conn.watch(path)
        db.enable_wal()
    db.execute("PRAGMA foreign_keys = ON")
    # An INSERT OR REPLACE deletes the row it replaces without firing delete triggers unless
    # this is on: the full-text index (schema.py, m006) would keep the replaced row's words.
    db.execute("PRAGMA recursive_triggers = ON")
    db.execute("PRAGMA synchronous = NORMAL")
    # 32 MB of page cache instead of 2 MB: index inserts land all over a big
    # mailbox's B-trees (the 100k benchmark spent 13 s in INSERTs with the default).
    db.execute("PRAGMA cache_size = -32000")
    # A checkpoint (WAL pages copied into the database, then fsync) every 64 MB of WAL, not
    # every 4 MB: a big sync's batches made one nearly every commit, the fsync each time on
    # the writer's clock (10k benchmark messages: 0.63-0.73 s of commit time -> 0.43-0.50 s).
    db.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
    migrations.apply(db)
    ensure_shape(db)
    return db


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


def insert_rows(db: sqlite_utils.Database, insert: str, rows: Sequence[Sequence[Any]]) -> None:
    """``insert`` (``INSERT [OR ...] INTO t (a, b)``) of many rows: :data:`ROWS_PER_INSERT`
    rows a statement, the rest one by one.

    Not ``executemany`` alone: that steps once a row, and Python's sqlite3 hands the GIL over
    around every step; while sync's fetch thread runs, each row then waits for it again.
    Always the same number of rows a statement, so sqlite3's statement cache holds one
    statement for each table, not one for every batch's length.
    """
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ", ".join("?" * width) + ")"
    per = max(1, min(ROWS_PER_INSERT,
                     db.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    whole = len(rows) - len(rows) % per
    if whole:
        many = f"{insert} VALUES {', '.join([one] * per)}"
        for start in range(0, whole, per):
            db.conn.execute(many, [value for row in rows[start:start + per] for value in row])
    db.conn.executemany(f"{insert} VALUES {one}", rows[whole:])


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
