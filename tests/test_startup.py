"""Start-up stays cheap: no command path imports or loads what it does not use."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.plugins import pm

from mailtriage.store import open_db


class ConnectionSpy:
    def __init__(self) -> None:
        self.prepared: list[object] = []

    @sqlite_utils.hookimpl
    def prepare_connection(self, conn: object) -> None:
        self.prepared.append(conn)


def test_the_store_runs_no_sqlite_utils_plugins(tmp_path):
    """Running them means loading them, which reads the entry points of every installed
    distribution at each start (~65 M instructions here); mailtriage is no plugin host."""
    spy = ConnectionSpy()
    pm.register(spy)
    try:
        open_db(tmp_path / "state.db").close()
    finally:
        pm.unregister(spy)
    assert spy.prepared == []
