"""mailtriage: triage a shared support mailbox from cron (the ``triage`` command)."""

import os as _os
import sys as _sys

WORKER_VARIABLE = "MAILTRIAGE_PARSE_WORKER"
"""Set for the parse worker (parseworker.py), which never touches the database and so
need not pay for importing sqlite-utils."""


def _import_sqlite_utils_without_dataframes() -> None:
    """Import sqlite-utils without pandas and numpy.

    sqlite-utils imports both when they are installed, only to map their number types,
    which we never store; on a machine that has them that doubled the start-up time of
    every cron run (measured: 325 ms -> 171 ms of imports).
    """
    if "sqlite_utils" in _sys.modules:
        return
    blocked = [name for name in ("numpy", "pandas") if name not in _sys.modules]
    for name in blocked:
        _sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in blocked:
            if _sys.modules.get(name) is None:
                del _sys.modules[name]


if WORKER_VARIABLE not in _os.environ:
    _import_sqlite_utils_without_dataframes()
