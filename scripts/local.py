"""Local mail as a sync source: a Maildir (Maildir++ folders) or an mbox file.

Used by ``triage demo`` and to import archives.  It offers the same calls as the
IMAP session.  Local files have no server-assigned UIDs, so a message's "uid" is
a stable hash of its Maildir unique name (or, in an mbox, of its bytes) and sync
finds new mail by set difference: a local scan costs O(mailbox) listing, but only
new messages are read and parsed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mailbox
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import AccountConfig
from .errors import FolderError, SyncError
from .imap import REPORT_BYTES
from .parse import BODY_PREFIX_BYTES
from .source import Fetched, FlagChanges, FolderStatus

MAILDIR_FLAGS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted",
                 "D": "\\Draft"}


def _uid(text: str | bytes) -> int:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return int.from_bytes(hashlib.sha1(data).digest()[:7], "big") or 1


def _split(raw: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[: i + len(sep)], raw[i + len(sep):]
    return raw, b""


class LocalSession:
    """Reads a Maildir tree or an mbox file, never writing to it (a
    :class:`~mailtriage.source.Source` whose UIDs are hashes: not ordered)."""

    ordered_uids = False

    def __init__(self, account: AccountConfig, extra_headers: Sequence[str] = ()):
        self.account = account
        self.selected: str | None = None
        self._files: dict[int, tuple[Path | int, str]] = {}
        self._mbox: mailbox.mbox | None = None

    def connect(self) -> None:
        path = self.account.path
        if path is None or not path.exists():
            raise SyncError(f"{self.account.key_prefix}.{self.account.source}: {path} not found")

    def close(self) -> None:
        if self._mbox is not None:
            self._mbox.close()
            self._mbox = None

    def __enter__(self) -> LocalSession:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve_folders(self) -> dict[str, str | None]:
        folders: dict[str, str | None] = dict.fromkeys(self.account.folders)
        if self.account.source == "maildir":
            for role, configured, name in (("sent", self.account.sent_folder, "Sent"),
                                           ("drafts", self.account.drafts_folder, "Drafts")):
                found = configured or (name if self._folder_dir(name) else None)
                if found:
                    folders[found] = role
        return folders

    def _folder_dir(self, folder: str) -> Path | None:
        root = self.account.path
        assert root is not None
        if folder.upper() == "INBOX":
            return root
        for candidate in (root / ("." + folder.replace("/", ".")), root / folder):
            if (candidate / "cur").is_dir() or (candidate / "new").is_dir():
                return candidate
        return None

    vanished: set[int] | None = None

    def unchanged(self, folder: str, stored: dict[str, Any]) -> bool:
        return False  # a listing is the only way to know, and it is what examine does

    needs_flag_sweep = False  # every examine lists every file with its flags

    def flag_changes(self, stored: dict[str, Any] | None, info: FolderStatus,
                     known: set[int], sweep: bool = False) -> FlagChanges:
        return {uid: (_maildir_flags(flag_info), None)
                for uid, (_where, flag_info) in self._files.items() if uid in known}

    def new_uids(self, last_uid: int, stored_uids: set[int] | None) -> list[int]:
        return sorted(set(self._files) - (stored_uids or set()))

    def examine(self, folder: str, qresync: tuple[int, int] | None = None) -> FolderStatus:
        self.selected = folder
        self._files = {}
        root = self.account.path
        assert root is not None
        if self.account.source == "mbox":
            self.close()
            self._mbox = mailbox.mbox(str(root), create=False)
            for key in self._mbox.iterkeys():
                raw = self._mbox.get_bytes(key)
                # typeshed types every Mailbox key as str; an mbox's keys are ints
                self._files[_uid(raw)] = (key, "")  # type: ignore[assignment]
        else:
            fdir = self._folder_dir(folder)
            if fdir is None:
                raise FolderError(folder, f"no such Maildir folder under {root}")
            for sub in ("new", "cur"):
                d = fdir / sub
                if not d.is_dir():
                    continue
                for entry in os.scandir(d):
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    unique, _, info = entry.name.partition(":")
                    self._files[_uid(unique)] = (Path(entry.path), info)
        validity = _uid(f"{root}/{folder}") & 0x7FFFFFFF
        return FolderStatus(uidvalidity=validity, uidnext=0, messages=len(self._files))

    def all_uids(self) -> list[int]:
        return sorted(self._files)

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        out = []
        for uid in uids:
            where, info = self._files[uid]
            try:
                if isinstance(where, Path):
                    raw = where.read_bytes()
                else:
                    assert self._mbox is not None
                    raw = self._mbox.get_bytes(where)  # type: ignore[arg-type]  # int key, see examine
            except OSError:
                continue  # vanished between listing and reading: picked up next run
            header, body = _split(raw)
            out.append(Fetched(uid=uid, header_bytes=header, body_prefix=body[:BODY_PREFIX_BYTES],
                               flags=_maildir_flags(info), size=len(raw),
                               # file times change on copy; the Date header does not
                               internal_date=None))
        return out

    def fetch_report(self, uids: Sequence[int]) -> dict[int, bytes]:
        out = {}
        for uid in uids:
            where, _info = self._files.get(uid, (None, ""))
            try:
                if isinstance(where, Path):
                    out[uid] = where.read_bytes()[:REPORT_BYTES * 2]
                elif where is not None and self._mbox is not None:
                    out[uid] = self._mbox.get_bytes(where)[:REPORT_BYTES * 2]  # type: ignore[arg-type]
            except OSError:
                continue
        return out

    def append(self, folder: str, raw: bytes, flags: Sequence[str] = (),
               when: dt.datetime | None = None) -> None:
        raise SyncError("cannot append to a local mailbox source")


def _maildir_flags(info: str) -> tuple[str, ...]:
    if not info.startswith("2,"):
        return ()
    return tuple(sorted(MAILDIR_FLAGS[c] for c in info[2:] if c in MAILDIR_FLAGS))
