"""sqlite-utils as mailtriage imports it: without pandas and numpy.

sqlite-utils imports both when they are installed, only to map their number types, which
we never store; on a machine that has them that doubled the start-up time of every cron
run (measured: 325 ms -> 171 ms of imports).  The modules that use sqlite-utils at run time
(the store, its schema, the web view) import it from here; the others name it only in
annotations (ruff's TC002 keeps those imports under ``TYPE_CHECKING``), so a command that
opens no database, ``triage --help`` say, does not import it at all.
"""

from __future__ import annotations

import sys

_blocked = [name for name in ("numpy", "pandas") if name not in sys.modules]
for _name in _blocked:
    sys.modules[_name] = None  # type: ignore[assignment]  # makes `import name` fail
try:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations
finally:
    for _name in _blocked:
        if sys.modules.get(_name) is None:
            del sys.modules[_name]

__all__ = ["Migrations", "sqlite_utils"]
