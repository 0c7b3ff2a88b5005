"""Network faults between sync and a real Dovecot, injected by a TCP proxy.

* connections cut mid-FETCH at many byte offsets: the next sync completes and the database
  equals a clean sync (nothing lost, nothing doubled, the same threads);
* a stalled server: `triage sync` gives up by `imap.timeout`, in one line, quickly; one that
  never sends its greeting is said to be silent, not unreachable;
* transient failures are retried a bounded number of times with growing backoff;
  a refused login is not retried at all.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import pytest

from mailtriage import sync as sync_mod
from mailtriage.config import load_config
from mailtriage.imap import AuthError, SyncError
from mailtriage.store import open_db

from support.cli import triage
from support.dovecot import Account, Dovecot
from support.faultproxy import (
    PASSWORD_VAR,
    Cut,
    FaultProxy,
    Pass,
    Refuse,
    Stall,
    assert_sound,
    conversation_corpus,
    deliver,
    snapshot,
    via,
)
from support.mailfactory import NOW, write_config

BATCH = 10
MID_FETCH_CUTS = 12  # byte offsets inside FETCH responses of an initial sync


def no_sleep(log: list[float]):
    return log.append


def run_sync(cfg: Path, **kw) -> sync_mod.SyncResult:
    config = load_config(cfg)
    db = open_db(config.db_path)
    try:
        kw.setdefault("sleep", no_sleep([]))
        return sync_mod.sync(db, config, NOW, **kw)
    finally:
        db.conn.close()


@pytest.fixture(scope="module")
def corpus_account(dovecot):
    """~60 messages in 12 conversations across INBOX and Sent (module-wide: sync is read-only)."""
    account = dovecot.add_user("reliability-cuts@example.com", "cut-pass-1")
    count = deliver(account, conversation_corpus(threads=12, per_thread=5))
    return account, count


@pytest.fixture
def clean(tmp_path_factory, corpus_account, proxy, monkeypatch):
    """A clean sync through the (pass-through) proxy: the reference, and the byte map."""
    account, count = corpus_account
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    proxy.record_transcript = True
    cfg = write_config(tmp_path_factory.mktemp("clean"), via(proxy, account),
                       imap={"batch_size": BATCH})
    result = run_sync(cfg, retries=0)
    proxy.record_transcript = False
    assert result.new == count
    transcript = bytes(proxy.connections[0].transcript)
    proxy.reset(Pass())
    return account, count, snapshot(load_config(cfg).db_path), transcript


def fetch_offsets(transcript: bytes) -> list[int]:
    """Byte offsets of every untagged FETCH response that carries a header literal."""
    out, at = [], 0
    while (at := transcript.find(b" FETCH (UID ", at)) >= 0:
        out.append(at)
        at += 1
    return out


def cut_points(transcript: bytes) -> list[int]:
    """A dozen offsets inside FETCH responses, spread over the whole initial sync."""
    starts = fetch_offsets(transcript)
    assert len(starts) > 5 * BATCH // 2, "expected several FETCH batches"
    picks = [starts[round(i * (len(starts) - 1) / (MID_FETCH_CUTS - 1))]
             for i in range(MID_FETCH_CUTS)]
    # vary the depth: in the response line, in the header literal, in the body snippet
    return [at + (7, 150, 400, 900)[i % 4] for i, at in enumerate(picks)]


def test_cut_mid_fetch_then_resume_equals_a_clean_sync(tmp_path, clean, proxy):
    account, count, reference, transcript = clean
    points = cut_points(transcript)
    assert len(set(points)) == MID_FETCH_CUTS
    for n, point in enumerate(points):
        work = tmp_path / f"cut{n}"
        work.mkdir()
        cfg = write_config(work, via(proxy, account), imap={"batch_size": BATCH})
        db_path = load_config(cfg).db_path
        proxy.schedule(Cut(point))
        with pytest.raises(SyncError, match="connection lost"):
            run_sync(cfg, retries=0)
        assert proxy.connections[-1].faulted
        assert_sound(db_path)  # nothing half-written, resume point not past stored mail
        partial = snapshot(db_path)
        assert len(partial["keys"]) < count
        result = run_sync(cfg, retries=0)
        assert result.new == count - len(partial["keys"]), f"cut at byte {point}"
        assert_sound(db_path)
        assert snapshot(db_path) == reference, f"cut at byte {point}"


def test_cut_with_retries_heals_within_one_sync(
    tmp_path: Path, clean: tuple[Account, int, dict[str, Any], bytes], proxy: FaultProxy
) -> None:
    account, _count, reference, transcript = clean
    starts = fetch_offsets(transcript)
    for n, point in enumerate((starts[3] + 50, starts[len(starts) // 2] + 300, starts[-2] + 20)):
        work = tmp_path / f"retry{n}"
        work.mkdir()
        cfg = write_config(work, via(proxy, account), imap={"batch_size": BATCH})
        sleeps: list[float] = []
        proxy.reset()
        proxy.schedule(Cut(point))
        run_sync(cfg, sleep=sleeps.append)  # default retries
        assert sleeps == [2.0]
        assert proxy.accepted == 2
        # (SyncResult.new counts only the attempt that finished: the database is the truth)
        assert snapshot(load_config(cfg).db_path) == reference


def test_cut_elsewhere_in_the_session_is_a_clean_one_line_failure(tmp_path, clean, proxy):
    """Cuts in the greeting, in LIST/STATUS/SEARCH: a SyncError, never a raw protocol error."""
    account, _count, reference, transcript = clean
    first_fetch = fetch_offsets(transcript)[0]
    for n, point in enumerate((0, 5, 40, first_fetch // 2, first_fetch - 3)):
        work = tmp_path / f"early{n}"
        work.mkdir()
        cfg = write_config(work, via(proxy, account), imap={"batch_size": BATCH})
        proxy.schedule(Cut(point))
        with pytest.raises(SyncError) as info:
            run_sync(cfg, retries=0)
        assert "\n" not in str(info.value)
        run_sync(cfg, retries=0)
        assert snapshot(load_config(cfg).db_path) == reference


def test_stalled_server_times_out_in_one_line_then_recovers(
    tmp_path: Path, corpus_account: tuple[Account, int], proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mailtriage.cli import sync as cmd_sync

    account, count = corpus_account
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    sleeps: list[float] = []
    # `triage sync` retries with backoff; inject the sleep so the test does not wait for it.
    monkeypatch.setattr(cmd_sync, "sync", functools.partial(sync_mod.sync, sleep=sleeps.append))
    cfg = write_config(tmp_path, via(proxy, account), imap={"timeout": 1, "batch_size": BATCH})
    proxy.schedule(Stall(after=3000))  # first connection: mid-FETCH; then at the greeting
    proxy.default = Stall(after=0)
    started = time.monotonic()
    res = triage(cfg, "sync", now=None)
    elapsed = time.monotonic() - started
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "timed out" in errors[0], res.stderr
    assert "Traceback" not in res.output
    assert elapsed < 5.0, f"took {elapsed:.1f}s with timeout: 1"
    assert proxy.accepted == 3 and sleeps == [2.0, 4.0]  # bounded: 1 try + 2 retries
    assert all(c.faulted for c in proxy.connections)

    proxy.reset(Pass())
    res = triage(cfg, "sync", now=None)
    assert res.exit_code == 0, res.output
    db = open_db(load_config(cfg).db_path)
    assert db["locations"].count == count
    assert_sound(load_config(cfg).db_path)


def test_a_server_that_never_greets_is_said_to_be_silent_not_unreachable(
    tmp_path: Path, mailbox: Account, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TCP connection opens and then nothing comes: say so, not "cannot connect"."""
    from mailtriage.cli import sync as cmd_sync

    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    sleeps: list[float] = []
    monkeypatch.setattr(cmd_sync, "sync", functools.partial(sync_mod.sync, sleep=sleeps.append))
    cfg = write_config(tmp_path, via(proxy, mailbox), imap={"timeout": 1})
    proxy.default = Stall(after=0)
    res = triage(cfg, "sync", now=None)
    assert res.exit_code == 1, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {proxy.host}:{proxy.port}: connected, but timed out after 1 s "
                      "waiting for the server's greeting"], res.stderr
    assert "cannot connect" not in res.stderr
    assert proxy.accepted == 3 and sleeps == [2.0, 4.0]  # a stall may pass: still retried
    assert all(c.faulted and c.to_server == 0 for c in proxy.connections)


def test_transient_failures_are_retried_with_growing_backoff(
    tmp_path: Path, corpus_account: tuple[Account, int], proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account, count = corpus_account
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    cfg = write_config(tmp_path, via(proxy, account), imap={"batch_size": BATCH})

    # two refused connections, then the server is back: healed inside one sync
    proxy.schedule(Refuse(), Refuse())
    sleeps: list[float] = []
    result = run_sync(cfg, retries=3, sleep=sleeps.append)
    assert result.new == count
    assert sleeps == [2.0, 4.0] and proxy.accepted == 3

    # always refused: exactly 1 + retries attempts, increasing delays, then a SyncError
    proxy.reset(Refuse())
    sleeps = []
    with pytest.raises(SyncError):
        run_sync(cfg, retries=4, sleep=sleeps.append, full=True)
    assert proxy.accepted == 5
    assert sleeps == sorted(sleeps) and len(set(sleeps)) == 4 and sleeps[0] > 0
    assert max(sleeps) <= 30.0


def test_wrong_password_is_not_retried(
    tmp_path: Path, corpus_account: tuple[Account, int], proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch, dovecot: Dovecot,
) -> None:
    account, _count = corpus_account
    monkeypatch.setenv(PASSWORD_VAR, "not-the-password")
    cfg = write_config(tmp_path, via(proxy, account))
    log_before = len(dovecot.log_text())
    sleeps: list[float] = []
    with pytest.raises(AuthError):
        run_sync(cfg, retries=5, sleep=sleeps.append)
    assert proxy.accepted == 1 and sleeps == []
    failures = dovecot.log_text()[log_before:].count(account.username)
    assert failures <= 1  # Dovecot saw (at most) one failed login for this user

    # the same through the CLI: exit 1, one line, no retry
    proxy.reset()
    res = triage(cfg, "sync", now=None)
    assert res.exit_code == 1 and proxy.accepted == 1
    assert "login failed" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_proxy_stops_cleanly(dovecot):
    with FaultProxy(dovecot.host, dovecot.port) as p:
        p.schedule(Stall(0))
        import socket

        held = socket.create_connection((p.host, p.port))
        held.settimeout(2)
    assert p.alive_threads == 0
    held.settimeout(2)
    try:  # the stalled connection was closed by stop(): EOF or a reset, never a hang
        assert held.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        held.close()
