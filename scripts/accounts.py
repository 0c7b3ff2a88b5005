"""Which mailbox each account name in ``state.db`` stands for.

Two configs sharing one database and both calling their mailbox ``default`` would mix two
mailboxes: every sync would look like a UIDVALIDITY change and fetch everything again, and
the acknowledgements and replies of one would act on the other's mail.  So the first sync
of an account records its identity (server and user, or the local path; not the port,
which changes with ``security:``), and a later sync under that name with another identity
is refused.  Renaming a recorded account, or
accepting that its mailbox moved, is an explicit command (``triage account``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from .config import AccountConfig, Config
from .errors import ConfigError, NotFound, UsageError
from .store import iso

if TYPE_CHECKING:
    import sqlite_utils


def identity(account: AccountConfig) -> str:
    """The mailbox an account block names, as one string (no secret in it)."""
    if account.source == "imap":
        return f"imap://{account.username}@{account.host.lower()}"
    return f"{account.source}:{account.path}"


def recorded(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT name, identity, recorded_at FROM accounts ORDER BY name"))


def _recorded_identity(db: sqlite_utils.Database, name: str) -> str | None:
    row = db.execute("SELECT identity FROM accounts WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def check_identity(db: sqlite_utils.Database, account: AccountConfig) -> bool:
    """ConfigError when the database holds another mailbox under this account's name; False
    when it holds none yet (:func:`record_identity` once a sync of it succeeded)."""
    ours = identity(account)
    theirs = _recorded_identity(db, account.name)
    if theirs is None:
        return False
    if theirs != ours:
        raise ConfigError(
            account.config_file, account.key_prefix,
            f"account {account.name!r} is {ours}, but the database holds {theirs} under that "
            "name: give this mailbox a database of its own (db:) or another account name, "
            f"or if the mailbox moved, run: triage account adopt {account.name}")
    return True


def record_identity(db: sqlite_utils.Database, account: AccountConfig, now: dt.datetime) -> None:
    """The first successful sync of an account binds its name to its mailbox."""
    with db.atomic():
        db.execute("INSERT OR IGNORE INTO accounts (name, identity, recorded_at) "
                   "VALUES (?, ?, ?)", [account.name, identity(account), iso(now)])


def rename(db: sqlite_utils.Database, old: str, new: str) -> None:
    """Give a recorded account (its folders and the places of its messages) a new name."""
    if _recorded_identity(db, old) is None:
        raise NotFound(f"no account {old!r} in the database")
    if _recorded_identity(db, new) is not None:
        raise UsageError(f"the database already holds an account {new!r}")
    with db.atomic():
        for table in ("folders", "locations"):
            db.execute(f"UPDATE {table} SET account = ? WHERE account = ?", [new, old])
        db.execute("UPDATE accounts SET name = ? WHERE name = ?", [new, old])


def adopt(db: sqlite_utils.Database, config: Config, name: str, now: dt.datetime) -> str:
    """Record the config's identity for ``name`` (the same mailbox at a new address);
    returns the identity it replaced."""
    try:
        account = config.account(name)
    except KeyError:
        raise UsageError(f"no account {name!r} in {config.path}") from None
    old = _recorded_identity(db, name)
    if old is None:
        raise NotFound(f"no account {name!r} in the database (the next sync records it)")
    with db.atomic():
        db.execute("UPDATE accounts SET identity = ?, recorded_at = ? WHERE name = ?",
                   [identity(account), iso(now), name])
    return old
