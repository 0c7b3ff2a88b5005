"""Sync against servers that offer less than Dovecot: the test Dovecot behind a proxy that
hides capabilities and answers BAD to commands using them (tests/support/imapprofile.py),
with the profiles of Microsoft 365, Gmail (without X-GM), a Yahoo-like server and a bare
IMAP4rev1.  After every step the database equals a clean sync of the same mailbox straight
from Dovecot -- flags included once the flag sweep is due."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from support.cli import ok, triage
from support.faultproxy import Endpoint, conversation_corpus, deliver, snapshot
from support.imapprofile import PROFILES, ReducedIMAP
from support.mailfactory import NOW, mail, write_config

HOUR = dt.timedelta(hours=1)
FOLDERS = {"folders": ["INBOX", "Archive"], "sent_folder": "Sent", "batch_size": 7}


def _flags(db_path: Path) -> dict[tuple[str, int], str]:
    conn = sqlite3.connect(db_path)
    try:
        return {(f, u): " ".join(sorted((flags or "").split())) for f, u, flags in
                conn.execute("SELECT folder, uid, flags FROM locations")}
    finally:
        conn.close()


def _clean(tmp_path: Path, mailbox, name: str, now: dt.datetime) -> Path:
    """A fresh database synced straight from Dovecot, every extension used."""
    folder = tmp_path / name
    folder.mkdir()
    cfg = write_config(folder, mailbox, imap=FOLDERS)
    ok(cfg, "sync", now=now)
    return folder / "state.db"


def _same(tmp_path: Path, mailbox, db: Path, name: str, now: dt.datetime,
          flags: bool = True) -> None:
    clean = _clean(tmp_path, mailbox, name, now)
    ours, theirs = snapshot(db), snapshot(clean)
    assert ours["locations"] == theirs["locations"]
    # An expunged message keeps its row (and its thread counts it); the rest must agree.
    here = set(ours["locations"].values())
    assert {g & here for g in ours["partition"]} - {frozenset()} == theirs["partition"]
    assert {g: f for g, f in ours["threads"].items() if g <= here} == {
        g: f for g, f in theirs["threads"].items()
        if not any(g < mine for mine in ours["partition"])}
    assert {f: v[:2] for f, v in ours["folders"].items()} == {
        f: v[:2] for f, v in theirs["folders"].items()}  # uidvalidity, last_uid
    if flags:
        assert _flags(db) == _flags(clean)


def _change_flags(mailbox, folder: str, uid: int, add: tuple[bytes, ...]) -> None:
    c = mailbox.client()
    try:
        c.select_folder(folder)
        c.add_flags([uid], add)
    finally:
        c.logout()


def _expunge_and_move(mailbox) -> None:
    c = mailbox.client()
    try:
        if not c.folder_exists("Archive"):
            c.create_folder("Archive")
        c.select_folder("INBOX")
        uids = sorted(c.search(["ALL"]))
        c.delete_messages([uids[0]])
        c.expunge()
        c.copy([uids[1]], "Archive")
        c.delete_messages([uids[1]])
        c.expunge()
    finally:
        c.logout()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_reduced_server_syncs_like_dovecot(tmp_path, mailbox, monkeypatch, profile):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    deliver(mailbox, conversation_corpus(6, 3))
    c = mailbox.client()
    c.create_folder("Archive")
    c.logout()
    with ReducedIMAP(mailbox.host, mailbox.port, PROFILES[profile]) as proxy:
        work = tmp_path / "reduced"
        work.mkdir()
        cfg = write_config(work, Endpoint(proxy.host, proxy.port, mailbox.username,
                                          mailbox.password), imap=FOLDERS)
        db = work / "state.db"
        ok(cfg, "sync")  # initial sync
        _same(tmp_path, mailbox, db, "clean0", NOW)

        mailbox.append("INBOX", mail(msgid="new1@cust.test", subject="Something new"),
                       internaldate=NOW)  # new mail, a flag change, an expunge, a move
        _change_flags(mailbox, "INBOX", 2, (b"\\Seen", b"\\Flagged"))
        _expunge_and_move(mailbox)
        soon = NOW + dt.timedelta(minutes=10)
        ok(cfg, "sync", now=soon)
        condstore = "CONDSTORE" not in proxy.profile.hide and proxy.profile.keep_only is None
        # without CONDSTORE a flag change waits for the sweep (imap.flag_sweep, 1 h)
        _same(tmp_path, mailbox, db, "clean1", soon, flags=condstore)
        later = NOW + 2 * HOUR
        ok(cfg, "sync", now=later)
        _same(tmp_path, mailbox, db, "clean2", later)

        mailbox.change_uidvalidity("INBOX")
        ok(cfg, "sync", now=later + HOUR)
        _same(tmp_path, mailbox, db, "clean3", later + HOUR)
        ok(cfg, "sync", "--full", now=later + HOUR)
        _same(tmp_path, mailbox, db, "clean4", later + HOUR)
    # The client never used what the profile hides: the proxy refused nothing.
    assert proxy.seen.refused == [], proxy.seen.refused
    assert proxy.seen.connections >= 5


def test_the_proxy_refuses_what_it_hides(mailbox):
    """The check above is not blind: a client asking for a hidden extension is refused."""
    import imapclient
    from imapclient.exceptions import IMAPClientError

    with ReducedIMAP(mailbox.host, mailbox.port, PROFILES["microsoft"]) as proxy:
        c = imapclient.IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=10)
        try:
            c.login(mailbox.username, mailbox.password)
            assert b"CONDSTORE" not in c.capabilities() and b"MOVE" in c.capabilities()
            with pytest.raises(IMAPClientError):
                c.folder_status("INBOX", ["HIGHESTMODSEQ"])
        finally:
            c.logout()
    assert proxy.seen.refused and b"HIGHESTMODSEQ" in proxy.seen.refused[0]


def test_a_server_that_limits_us_is_left_alone_for_a_while_not_a_failure(tmp_path, mailbox,
                                                                          monkeypatch):
    """Gmail's [OVERQUOTA] (or [UNAVAILABLE], [LIMIT]): one line with -v, no retries, exit
    0; the account is not asked again for 30 minutes; then it syncs."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    mailbox.append("INBOX", mail(msgid="q1@cust.test"), internaldate=NOW)
    limited = [(rb"UID FETCH", b"NO [OVERQUOTA] Account exceeded command or bandwidth limits")]
    with ReducedIMAP(mailbox.host, mailbox.port, PROFILES["gmail"], answers=limited) as proxy:
        cfg = write_config(tmp_path, Endpoint(proxy.host, proxy.port, mailbox.username,
                                              mailbox.password))
        first = triage(cfg, "-v", "run", "--no-report")
        assert first.exit_code == 0, first.output
        warned = [line for line in first.output.splitlines() if "limits us" in line]
        assert len(warned) == 1 and "[OVERQUOTA]" in warned[0], first.output
        assert "retrying" not in first.output and proxy.seen.connections == 1
        quiet = triage(cfg, "run", "--no-report", now=NOW + dt.timedelta(minutes=10))
        assert quiet.exit_code == 0 and quiet.output == ""
        assert proxy.seen.connections == 1  # left alone
        report = json.loads(ok(cfg, "report", "--json").stdout)
        assert any("limit" in (f["last_error"] or "") for f in report["completeness"]["folders"])
        proxy.answers = []
        ok(cfg, "run", "--no-report", now=NOW + dt.timedelta(minutes=31))
    assert [t["subject"] for t in json.loads(ok(cfg, "threads", "--json").stdout)] == ["Help"]
