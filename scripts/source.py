"""What sync needs of a mailbox, whoever serves it: the :class:`Source` protocol and the
values that cross it.  imap.py (an IMAP account) and local.py (a Maildir or an mbox)
implement it; sync.py never asks which one it has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .config import AccountConfig

SENT, DRAFTS = "sent", "drafts"  # folder roles: what is in Sent is ours, Drafts never sent


@dataclass
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None = None


@dataclass
class Fetched:
    """One message as the source gave it: what parsing and storing need."""

    uid: int
    header_bytes: bytes
    body_prefix: bytes | None
    flags: tuple[str, ...]
    internal_date: dt.datetime | None
    size: int | None
    modseq: int | None = None
    gm_thrid: str | None = None
    gm_labels: tuple[str, ...] | None = None  # Gmail's X-GM-LABELS


FlagChanges = dict[int, tuple[tuple[str, ...], int | None]]  # uid -> (flags, modseq)


class Source(Protocol):
    """A mailbox sync reads from, folder by folder, without ever changing it."""

    account: AccountConfig
    #: UIDs only grow (IMAP): new mail is above the stored last UID, and an unchanged
    #: message count means nothing was expunged.  A local source has neither.
    ordered_uids: bool
    #: UIDs the server said vanished since the last sync (QRESYNC), after :meth:`examine`.
    vanished: set[int] | None

    @property
    def needs_flag_sweep(self) -> bool:
        """Flag changes show only when every flag is read again (IMAP without CONDSTORE)."""
        ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...

    def resolve_folders(self) -> dict[str, str | None]:
        """The folders to sync, each with its role: None, :data:`SENT` or :data:`DRAFTS`."""
        ...

    def unchanged(self, folder: str, stored: dict[str, Any]) -> bool:
        """Whether the folder is as its stored ``folders`` row left it (a cheap check)."""
        ...

    def examine(self, folder: str, qresync: tuple[int, int] | None = None) -> FolderStatus:
        """Open the folder read-only; with ``qresync`` (stored UIDVALIDITY, HIGHESTMODSEQ)
        a source that can leaves what was expunged since in :attr:`vanished`."""
        ...

    def flag_changes(self, stored: dict[str, Any] | None, info: FolderStatus,
                     known: set[int], sweep: bool = False) -> FlagChanges:
        """Flags of stored messages (``known``: their UIDs, or empty when only a changed
        modseq tells) that may have changed since the stored row; ``sweep``: all of them,
        where only that tells."""
        ...

    def new_uids(self, last_uid: int, stored_uids: set[int] | None) -> list[int]:
        """UIDs to fetch: above ``last_uid`` where UIDs are ordered, else not stored."""
        ...

    def all_uids(self) -> list[int]: ...

    def fetch(self, uids: Sequence[int]) -> list[Fetched]: ...

    def fetch_report(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The first bytes of whole messages that may be delivery reports."""
        ...
