"""Threads whose mail left the synced folders (expunged, or moved to a folder not synced)
are gone: not overdue, listed once in the report, and back when their mail is.
"""

from __future__ import annotations

import datetime as dt
import json

from support.cli import ok
from support.mailfactory import NOW, put, write_config

ASKED = NOW - dt.timedelta(hours=30)  # past the 24 h SLA


def _thread_of(cfg, subject: str) -> dict:
    [row] = [t for t in json.loads(ok(cfg, "threads", "--json").stdout)
             if t["subject"] == subject]
    return row


def _overdue_ids(cfg, now=NOW) -> set[int]:
    return {i["thread_id"] for i in json.loads(ok(cfg, "overdue", "--json", now=now).stdout)}


def _gone_ids(cfg, *args: str, now=NOW) -> set[int]:
    report = json.loads(ok(cfg, "report", "--json", *args, now=now).stdout)
    return {t["thread_id"] for t in report["gone"]["threads"]}


def _remove(mailbox, folder: str, msgid: str, move_to: str | None = None) -> None:
    client = mailbox.client()
    try:
        client.select_folder(folder)
        uids = client.search(["HEADER", "Message-ID", msgid])
        assert uids, msgid
        if move_to:
            if not client.folder_exists(move_to):
                client.create_folder(move_to)
            client.move(uids, move_to)
        else:
            client.delete_messages(uids)
            client.expunge()
    finally:
        client.logout()


def test_expunged_or_moved_away_threads_are_gone_and_come_back(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    put(mailbox, msgid="gone1@c.test", subject="Deleted by a colleague", date=ASKED)
    put(mailbox, msgid="gone2@c.test", subject="Moved to Archive", date=ASKED)
    put(mailbox, msgid="stays@c.test", subject="Still here", date=ASKED)
    cfg = write_config(tmp_path, mailbox)
    ok(cfg, "sync")
    deleted, moved, stays = (_thread_of(cfg, s)["id"] for s in
                             ("Deleted by a colleague", "Moved to Archive", "Still here"))
    assert _overdue_ids(cfg) == {deleted, moved, stays}

    _remove(mailbox, "INBOX", "gone1@c.test")
    _remove(mailbox, "INBOX", "gone2@c.test", move_to="Archive")  # Archive is not synced
    later = NOW + dt.timedelta(hours=1)
    ok(cfg, "sync", now=later)
    assert _thread_of(cfg, "Deleted by a colleague")["state"] == "gone"
    assert _thread_of(cfg, "Moved to Archive")["state"] == "gone"
    assert _overdue_ids(cfg, now=later) == {stays}
    assert _gone_ids(cfg, now=later) == {deleted, moved}  # the report of that day lists them
    assert _gone_ids(cfg, "--since", "30m", now=later + dt.timedelta(hours=2)) == set()  # once
    explained = ok(cfg, "explain", str(deleted), now=later).stdout
    assert "none of its mail is left in a synced folder" in explained

    # the mail comes back (moved back from Archive): the thread is open and overdue again
    client = mailbox.client()
    try:
        client.select_folder("Archive")
        client.move(client.search(["ALL"]), "INBOX")
    finally:
        client.logout()
    ok(cfg, "sync", now=later + dt.timedelta(hours=3))
    back = _thread_of(cfg, "Moved to Archive")
    assert back["id"] == moved and back["state"] == "open"
    assert _overdue_ids(cfg, now=later + dt.timedelta(hours=3)) == {stays, moved}


def test_a_closed_thread_stays_closed_when_its_mail_goes(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    put(mailbox, msgid="done@c.test", subject="Done")
    cfg = write_config(tmp_path, mailbox)
    ok(cfg, "sync")
    tid = _thread_of(cfg, "Done")["id"]
    ok(cfg, "close", str(tid))
    _remove(mailbox, "INBOX", "done@c.test")
    ok(cfg, "sync")
    assert _thread_of(cfg, "Done")["state"] == "closed"
