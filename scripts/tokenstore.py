"""Where OAuth2 tokens live between runs: the system keyring, else a 0600 file beside the db.

A refresh token is a password that does not expire on its own, so it is kept where a
password would be: the keyring when the optional ``keyring`` package is installed and has
a working backend (a headless server usually has none), otherwise a private file beside
``state.db`` (``state-oauth2.json``: 0600, written atomically, refused like the database
when another user could change it).  Never in the config, the database or a log.

Each entry is one small JSON mapping (the refresh token, the cached access token and its
expiry, the scopes and who logged in), keyed by what it logs in to (``account:NAME`` or
``smtp``).  In the keyring, the key is prefixed with the database's path, so two configs
with an account called ``default`` do not share a login.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from .errors import StoreError
from .files import check_file, make_private_folders, write_private

log = logging.getLogger(__name__)

KEYRING_SERVICE = "mailtriage-oauth2"
Record = dict[str, Any]


class TokenStore(Protocol):
    where: str  # said by `triage auth status`

    def load(self, key: str) -> Record | None: ...
    def save(self, key: str, record: Record) -> None: ...
    def delete(self, key: str) -> bool: ...


def token_file(db_path: Path) -> Path:
    """The file tokens go to without a keyring: ``state.db`` -> ``state-oauth2.json``."""
    return db_path.with_name(f"{db_path.stem}-oauth2.json")


class FileStore:
    """All of one database's logins in one 0600 JSON file."""

    def __init__(self, path: Path):
        self.path = path
        self.where = f"file {path}"

    def _read(self) -> dict[str, Record]:
        target = check_file(self.path, "token file")
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            raise StoreError(f"{self.path}: not a token file (invalid JSON); delete it and "
                             "log in again") from None
        return data if isinstance(data, dict) else {}

    def load(self, key: str) -> Record | None:
        record = self._read().get(key)
        return record if isinstance(record, dict) else None

    def save(self, key: str, record: Record) -> None:
        make_private_folders(self.path.parent)
        data = self._read()
        data[key] = record
        write_private(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def delete(self, key: str) -> bool:
        data = self._read()
        if key not in data:
            return False
        del data[key]
        if data:
            write_private(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        else:
            self.path.unlink()
        return True


class KeyringStore:
    """One keyring entry per login (service ``mailtriage-oauth2``)."""

    def __init__(self, keyring: Any, namespace: str):
        self.keyring = keyring
        self.namespace = namespace
        self.where = f"system keyring (service {KEYRING_SERVICE})"

    def _name(self, key: str) -> str:
        return f"{self.namespace}#{key}"

    def _call(self, method: str, *args: str) -> Any:
        """A keyring call; a locked or broken keyring is one line (StoreError), not a
        traceback from whichever backend is installed."""
        try:
            return getattr(self.keyring, method)(KEYRING_SERVICE, *args)
        except Exception as exc:
            raise StoreError(f"system keyring: {type(exc).__name__}: {exc}"[:300]) from None

    def load(self, key: str) -> Record | None:
        text = self._call("get_password", self._name(key))
        if not text:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def save(self, key: str, record: Record) -> None:
        self._call("set_password", self._name(key), json.dumps(record))

    def delete(self, key: str) -> bool:
        if self.load(key) is None:
            return False
        self._call("delete_password", self._name(key))
        return True


def _usable_keyring() -> Any:
    """The ``keyring`` module when it is installed and has a real backend, else None (its
    ``fail`` backend, priority 0, is what a machine without a secret service gets)."""
    try:
        import keyring
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
        priority = float(getattr(backend, "priority", 1))
    except Exception:  # a broken backend must not stop the file fallback
        return None
    return keyring if priority > 0 else None


def open_store(db_path: Path) -> TokenStore:
    """The keyring when usable, else the file beside ``db_path``."""
    keyring = _usable_keyring()
    if keyring is not None:
        return KeyringStore(keyring, str(db_path))
    return FileStore(token_file(db_path))
