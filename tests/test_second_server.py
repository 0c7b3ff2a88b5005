"""The same sync against a second real server, Cyrus IMAP 3.6 (tests/support/cyrus.py), with
the classic ``INBOX.`` namespace (``INBOX.Sent``, ``INBOX.Archive``) that Courier and older
Cyrus installs use.

The same mail and the same changes go to Cyrus and to the test Dovecot; after every step
(initial sync, new mail, flag changes, an expunge, a move between folders, a folder whose
UIDVALIDITY changed, ``sync --full``) the two databases agree once folder names are mapped,
and the Cyrus database equals what a direct IMAP session reads back from Cyrus.  Sent and
Drafts are not configured: Cyrus leaves INBOX.Sent unflagged and flags INBOX.Drafts
``\\drafts`` (lower case), so both detection paths of ``IMAPSession.resolve_folders`` run.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailtriage.config import load_config
from mailtriage.imap import IMAPSession, _special

from support.cli import ok
from support.cyrus import CyrusAccount, recreate_folder
from support.dovecot import Account
from support.faultproxy import conversation_corpus, snapshot
from support.mailfactory import NOW, mail, write_config

HOUR = dt.timedelta(hours=1)


@dataclass
class Side:
    """One server's account, how it names our folders, and the config that syncs it."""

    account: Any
    name: Callable[[str], str]  # "Sent" -> the server's name for it
    cfg: Path

    @property
    def db(self) -> Path:
        return self.cfg.parent / "state.db"

    def sync(self, *args: str, now: dt.datetime = NOW) -> None:
        ok(self.cfg, "sync", *args, now=now)


def _side(tmp_path: Path, label: str, account: Any, name: Callable[[str], str]) -> Side:
    work = tmp_path / label
    work.mkdir()
    # No sent_folder/drafts_folder: the product must find them itself on both servers.
    cfg = write_config(work, account, imap={"folders": ["INBOX", name("Archive")],
                                            "batch_size": 7})
    return Side(account, name, cfg)


def _fill(side: Side, corpus: dict[str, list[tuple[bytes, Any]]]) -> None:
    """APPEND the corpus in order over one connection (Cyrus has no Maildir to write into)."""
    c = side.account.client()
    try:
        if not c.folder_exists(side.name("Archive")):
            c.create_folder(side.name("Archive"))
        for folder, items in corpus.items():
            for raw, at in items:
                c.append(side.name(folder), raw, msg_time=at)
    finally:
        c.logout()


def _change(side: Side) -> None:
    """New mail, flag and keyword changes, an expunge and a MOVE, the same on both servers."""
    side.account.append("INBOX", mail(msgid="new1@cust.test", subject="Something new"),
                        internaldate=NOW)
    c = side.account.client()
    try:
        c.select_folder("INBOX")
        c.add_flags([2], [b"\\Seen", b"\\Flagged", b"Urgent"])
        c.delete_messages([1])
        c.expunge()
        c.move([3], side.name("Archive"))
        c.select_folder(side.name("Sent"))
        c.remove_flags([1], [b"\\Seen"])
        c.add_flags([2], [b"\\Answered"])
    finally:
        c.logout()


def _unprefixed(folder: str) -> str:
    return folder.removeprefix("INBOX.")


def _stored(db: Path, rename: Callable[[str], str] = str) -> dict[tuple[str, int], Any]:
    """{(folder, uid): (Message-ID, flags)} of the current locations in a database."""
    conn = sqlite3.connect(db)
    try:
        return {(rename(f), u): (mid, " ".join(sorted((flags or "").split())))
                for f, u, mid, flags in conn.execute(
                    "SELECT l.folder, l.uid, m.message_id, l.flags FROM locations l "
                    "JOIN messages m ON m.id = l.message")}
    finally:
        conn.close()


def _on_server(account: Any, folders: list[str]) -> dict[tuple[str, int], Any]:
    """The same, read straight from the server by a plain imapclient session."""
    from email.parser import BytesHeaderParser

    out: dict[tuple[str, int], Any] = {}
    c = account.client()
    try:
        for folder in folders:
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            if not uids:
                continue
            for uid, data in c.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
                                     ).items():
                header = BytesHeaderParser().parsebytes(
                    data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"])
                flags = sorted(f.decode() for f in data[b"FLAGS"] if f != b"\\Recent")
                out[(folder, uid)] = (header["Message-ID"].strip("<> "), " ".join(flags))
    finally:
        c.logout()
    return out


def _roles(db: Path) -> dict[str, str | None]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT folder, role FROM folders"))
    finally:
        conn.close()


def _agree(dove: Side, cyr: Side) -> None:
    """Cyrus's database equals what Cyrus holds, and (names mapped) Dovecot's database."""
    folders = ["INBOX", cyr.name("Sent"), cyr.name("Archive")]
    assert _stored(cyr.db) == _on_server(cyr.account, folders)
    assert _stored(cyr.db, _unprefixed) == _stored(dove.db)
    ours, theirs = snapshot(cyr.db), snapshot(dove.db)
    assert ours["keys"] == theirs["keys"]
    assert ours["partition"] == theirs["partition"]
    assert ours["threads"] == theirs["threads"]
    # last_uid and message count per folder; UIDVALIDITY is the server's own
    assert {_unprefixed(f): v[1:] for f, v in ours["folders"].items()} == {
        f: v[1:] for f, v in theirs["folders"].items()}


def test_cyrus_syncs_like_dovecot(tmp_path: Path, mailbox: Account,
                                  cyrus_mailbox: CyrusAccount,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert mailbox.password == cyrus_mailbox.password
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    dove = _side(tmp_path, "dovecot", mailbox, str)
    cyr = _side(tmp_path, "cyrus", cyrus_mailbox, cyrus_mailbox.folder)
    corpus = conversation_corpus(6, 3)
    for side in (dove, cyr):
        _fill(side, corpus)
        side.sync()
    assert _roles(cyr.db) == {"INBOX": None, "INBOX.Archive": None, "INBOX.Sent": "sent",
                              "INBOX.Drafts": "drafts"}
    assert {_unprefixed(f): r for f, r in _roles(cyr.db).items()} == _roles(dove.db)
    assert len(_stored(cyr.db)) == 18
    uidvalidity = snapshot(cyr.db)["folders"]["INBOX.Archive"][0]
    _agree(dove, cyr)

    soon = NOW + dt.timedelta(minutes=10)
    for side in (dove, cyr):
        _change(side)
        side.sync(now=soon)  # both servers have CONDSTORE: flags show at once
    _agree(dove, cyr)
    assert _stored(cyr.db)[("INBOX", 2)][1] == "Urgent \\Flagged \\Seen"
    assert ("INBOX", 1) not in _stored(cyr.db) and ("INBOX.Archive", 1) in _stored(cyr.db)

    # A new UIDVALIDITY the same way on both servers (Dovecot's change_uidvalidity renumbers
    # in directory order, Cyrus's keeps the order: their UIDs would not be comparable).
    later = soon + HOUR
    for side in (dove, cyr):
        c = side.account.client()
        try:
            recreate_folder(c, side.name("Archive"), side.name("Aside"))
        finally:
            c.logout()
        side.sync(now=later)
    _agree(dove, cyr)
    assert snapshot(cyr.db)["folders"]["INBOX.Archive"][0] != uidvalidity
    for side in (dove, cyr):
        side.sync("--full", now=later)
    _agree(dove, cyr)


def test_sent_and_drafts_are_found_under_the_cyrus_namespace(
        cyrus_mailbox: CyrusAccount, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", cyrus_mailbox.password)
    config = load_config(write_config(tmp_path, cyrus_mailbox))
    with IMAPSession(config.accounts[0]) as session:
        assert "NAMESPACE" in session.capabilities
        assert session.resolve_folders() == {"INBOX": None, "INBOX.Sent": "sent",
                                             "INBOX.Drafts": "drafts"}
        # the way replies find the folder to file their copy in
        assert session.find_special("\\Sent", "Sent") == "INBOX.Sent"
        assert session.find_special("\\Drafts", "Drafts") == "INBOX.Drafts"


LISTINGS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "courier": [((), "INBOX"), (("\\HasNoChildren",), "INBOX.Sent"),
                (("\\HasNoChildren",), "INBOX.Drafts"), ((), "INBOX.Trash")],
    "cyrus": [(("\\HasChildren",), "INBOX"), (("\\HasNoChildren",), "INBOX.Sent"),
              (("\\HasNoChildren", "\\drafts"), "INBOX.Drafts")],
    "microsoft": [((), "INBOX"), ((), "Sent Items"), ((), "Drafts")],
    "apple": [((), "INBOX"), ((), "Sent Messages"), ((), "Drafts")],
    "gmail": [((), "INBOX"), (("\\HasNoChildren", "\\Sent"), "[Gmail]/Gesendet"),
              (("\\Drafts",), "[Gmail]/Entw&APw-rfe")],
    "gmail-unflagged": [((), "INBOX"), ((), "[Gmail]/Sent Mail"), ((), "[Gmail]/Drafts")],
    "flag-beats-name": [((), "INBOX"), ((), "Sent"), (("\\Sent",), "Outbox"),
                        ((), "Drafts")],
    "nothing": [((), "INBOX"), ((), "Archive")],
}
EXPECTED = {
    "courier": ("INBOX.Sent", "INBOX.Drafts"),
    "cyrus": ("INBOX.Sent", "INBOX.Drafts"),
    "microsoft": ("Sent Items", "Drafts"),
    "apple": ("Sent Messages", "Drafts"),
    "gmail": ("[Gmail]/Gesendet", "[Gmail]/Entw&APw-rfe"),
    "gmail-unflagged": ("[Gmail]/Sent Mail", "[Gmail]/Drafts"),
    "flag-beats-name": ("Outbox", "Drafts"),
    "nothing": (None, None),
}


@pytest.mark.parametrize("server", sorted(LISTINGS))
def test_special_folders_by_flag_then_common_names(server: str) -> None:
    """The LIST lines the servers send (Courier's unflagged ``INBOX.`` folders, Cyrus's lower
    case flag, Microsoft's and Apple's names, Gmail's translated ones): the flag first, then
    the common names, under the ``INBOX.`` prefix too."""
    listing = LISTINGS[server]
    prefixes = ["INBOX."] if server in {"courier", "cyrus"} else []
    found = (_special(listing, "\\Sent", "Sent", prefixes),
             _special(listing, "\\Drafts", "Drafts", prefixes))
    assert found == EXPECTED[server]
