"""The store's small helpers (store.py), without a mail server."""

from __future__ import annotations

import sqlite3

from mailtriage.store import ROWS_PER_INSERT, insert_rows, open_db


def test_insert_rows_writes_every_row_within_sqlites_variable_limit(tmp_path):
    db = open_db(tmp_path / "state.db")
    db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c BLOB)")
    rows = [(n, f"row {n}", bytes([n % 256])) for n in range(ROWS_PER_INSERT * 2 + 5)]
    insert_rows(db, "INSERT INTO t (a, b, c)", rows)
    insert_rows(db, "INSERT INTO t (a, b, c)", [])
    insert_rows(db, "INSERT OR IGNORE INTO t (a, b, c)", [(3, "again", b"")])
    assert db.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == rows
    db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 7)  # 2 rows of 3 a statement
    more = [(n, "x", b"") for n in range(1000, 1011)]
    insert_rows(db, "INSERT INTO t (a, b, c)", more)
    assert db.execute("SELECT COUNT(*) FROM t WHERE a >= 1000").fetchone()[0] == 11
