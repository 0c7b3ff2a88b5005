"""Crashes and storage faults: SIGKILL at random moments, a full disk, a read-only database,
and two cron runs at once.

After every fault the database must be intact (``PRAGMA integrity_check``, no dangling
foreign keys) and its resume point (``folders.last_uid``) must never be ahead of the
messages it stored; one clean run afterwards must make it equal to a clean sync.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailtriage import store as store_mod
from mailtriage.config import load_config
from mailtriage.imap import IMAPSession
from mailtriage.lock import acquire, lock_path
from mailtriage.store import open_db

from support.cli import triage
from support.faultproxy import PASSWORD_VAR, assert_sound, conversation_corpus, deliver, snapshot
from support.mailfactory import NOW, write_config

KILLS = 30
SEED = 20261123
CLI = [sys.executable, "-c", "from mailtriage.cli import cli; cli()"]


def triage_process(cfg: Path, password: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, PASSWORD_VAR: password}
    return subprocess.Popen([*CLI, "--config", str(cfg), "--now", NOW.isoformat(), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def remove_db(db_path: Path, keep_id: bool = False) -> None:
    """Everything of a database, its id file included (a deliberate start from nothing), or
    with ``keep_id`` only the database, as a mistake or a cleanup script would."""
    for suffix in ("", "-wal", "-shm") if keep_id else ("", "-wal", "-shm", ".id"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db_path}{suffix}").unlink()


@pytest.fixture(scope="module")
def big_account(dovecot):
    """600 messages (100 conversations), so a sync takes a noticeable time."""
    account = dovecot.add_user("reliability-kill@example.com", "kill-pass-1")
    count = deliver(account, conversation_corpus(threads=100, per_thread=6))
    return account, count


# A `triage` process that has finished importing and waits for "go" on stdin before running
# the command: the kill loop starts the next one while the current one runs, so Python's
# start-up (most of a run's wall time here) is not what the random kill delays measure.
GATED = [sys.executable, "-c",
         "import sys; from mailtriage.cli import cli; print('ready', flush=True); "
         "sys.stdin.buffer.read(1) == b'g' or sys.exit(0); cli()"]


class Gated:
    def __init__(self, cfg: Path, password: str, *args: str):
        env = {**os.environ, PASSWORD_VAR: password}
        self.proc = subprocess.Popen(
            [*GATED, "--config", str(cfg), "--now", NOW.isoformat(), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def go(self) -> float:
        """Wait until imported, start the command; returns the moment it started."""
        assert self.proc.stdout is not None and self.proc.stdin is not None
        assert self.proc.stdout.readline() == b"ready\n", self.proc.stderr
        started = time.monotonic()
        self.proc.stdin.write(b"g")
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() must not flush it again
        return started

    def finish(self, timeout: float = 60) -> tuple[int, bytes]:
        _out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def discard(self) -> None:
        self.proc.kill()
        self.proc.communicate()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, big_account):
    """A clean `triage run` of the big mailbox (its snapshot), how long its command took, and
    how long the same command takes with nothing to fetch (config, database, login, STATUS).
    """
    account, count = big_account
    cfg = write_config(tmp_path_factory.mktemp("ref"), account, imap={"batch_size": 20})
    timings = []
    for _ in range(2):
        run = Gated(cfg, account.password, "run")
        started = run.go()
        code, err = run.finish()
        timings.append(time.monotonic() - started)
        assert code == 0, err.decode()
    snap = snapshot(load_config(cfg).db_path)
    assert len(snap["locations"]) == count
    took, idle = timings
    return snap, took, min(idle, took / 2)


def test_sigkill_at_random_moments_never_corrupts_or_loses(tmp_path, big_account, reference):
    """SIGKILL `triage run` at seeded random moments; after each, the database is sound.

    Delays are uniform between 0 and the time the run's remaining work takes (a full sync,
    less what earlier killed runs already stored), so kills land in opening and migrating
    the database, logging in, fetching and committing batches, and refreshing threads.
    When most of the mailbox is stored the database is removed to start over.
    """
    account, count = big_account
    snap, took, idle = reference
    cfg = write_config(tmp_path, account, imap={"batch_size": 20})
    db_path = load_config(cfg).db_path
    rng = random.Random(SEED)
    kills = completed = mid_sync = 0
    deadline = time.monotonic() + 120  # a runaway guard, not a speed check: loaded CI is slow
    upcoming = Gated(cfg, account.password, "run")
    try:
        while kills < KILLS:
            assert time.monotonic() < deadline, f"kill loop too slow ({kills} kills)"
            stored = len(snapshot(db_path)["locations"]) if db_path.exists() else 0
            if stored > 0.8 * count:
                remove_db(db_path)
                stored = 0
            delay = rng.uniform(0, idle + (took - idle) * (1 - stored / count))
            current, upcoming = upcoming, Gated(cfg, account.password, "run")
            started = current.go()
            try:
                current.proc.wait(timeout=max(0.0, started + delay - time.monotonic()))
            except subprocess.TimeoutExpired:
                current.proc.send_signal(signal.SIGKILL)
                kills += 1
            code, err = current.finish()
            assert_sound(db_path)
            if code == -signal.SIGKILL:
                stored = len(snapshot(db_path)["locations"]) if db_path.exists() else 0
                mid_sync += 0 < stored < count
            else:
                assert code == 0, err.decode()
                completed += 1
                assert snapshot(db_path) == snap
        started = upcoming.go()
        code, err = upcoming.finish()
    finally:
        if upcoming.proc.returncode is None:
            upcoming.discard()
    assert code == 0, err.decode()
    assert_sound(db_path)
    assert snapshot(db_path) == snap
    print(f"\nSIGKILL loop: {kills} kills ({mid_sync} with part of the mail stored), "
          f"{completed} runs completed before their kill; full run {took:.2f}s, "
          f"idle run {idle:.2f}s")


def _small_page_limit(monkeypatch: pytest.MonkeyPatch, spare_pages: int) -> None:
    """Make the CLI's database "full" a few pages from now: SQLite's own SQLITE_FULL path.

    ``PRAGMA max_page_count`` makes SQLite answer exactly as it does on a full disk
    ("database or disk is full"), root or not, on any file system.
    """
    real = store_mod.open_db

    def limited(path, **options):
        db = real(path, **options)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages + spare_pages}")
        return db

    monkeypatch.setattr(store_mod, "open_db", limited)  # the App opens it through there


def test_disk_full_mid_sync_is_one_line_and_leaves_a_sound_resumable_db(
        tmp_path, big_account, reference, monkeypatch):
    account, count = big_account
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    snap, _took, _idle = reference
    cfg = write_config(tmp_path, account, imap={"batch_size": 20})
    db_path = load_config(cfg).db_path
    open_db(db_path).conn.close()  # migrated, empty
    for command in ("sync", "run"):
        with monkeypatch.context() as m:
            _small_page_limit(m, spare_pages=40)
            res = triage(cfg, command, now=None)
        assert res.exit_code == 1, res.output
        assert res.stderr.strip().splitlines() == ["Error: database error: database or disk "
                                                    "is full"], res.stderr
        assert_sound(db_path)
        stored = len(snapshot(db_path)["locations"])
        assert 0 < stored < count  # some batches committed, the one that failed did not
    res = triage(cfg, "sync", now=None)
    assert res.exit_code == 0, res.output
    assert snapshot(db_path) == snap


def _immutable(path: Path, on: bool) -> bool:
    proc = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True,
                          check=False)
    return proc.returncode == 0


def test_read_only_database_is_one_line_and_changes_nothing(tmp_path, big_account, monkeypatch):
    """A database nobody may write: exit 1, one line, the file untouched.

    The tests run as root, and root ignores chmod (0400 file, 0500 folder would not stop
    it).  The immutable attribute (chattr +i) stops root too: every write, and creating the
    -wal/-shm files next to it, fails in the kernel with EPERM, which is exactly what a
    read-only mount or a foreign-owned file gives an ordinary user.  Not root: plain chmod.
    """
    account, count = big_account
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    work = tmp_path / "ro"
    work.mkdir()
    cfg = write_config(tmp_path, account, db=str(work / "state.db"),
                       imap={"batch_size": 20, "folders": ["INBOX"], "sent_folder": "INBOX"})
    proc = triage_process(cfg, account.password, "sync")
    assert proc.wait(timeout=60) == 0
    db_path = work / "state.db"
    before = snapshot(db_path)
    before_bytes = db_path.read_bytes()
    # now the team's replies folder is configured too: there is work to write
    cfg = write_config(tmp_path, account, db=str(work / "state.db"), imap={"batch_size": 20})
    if os.geteuid() == 0:
        if not (_immutable(db_path, True) and _immutable(work, True)):
            _immutable(db_path, False)
            pytest.skip("chattr +i not supported here")
        locked = [db_path, work]
    else:
        db_path.chmod(0o400)
        work.chmod(0o500)
        locked = []
    try:
        # separate processes: an in-process connection opened before the chattr would still
        # hold a writable descriptor (SQLite even reuses such descriptors for new connections)
        for command in ("sync", "run"):
            proc = triage_process(cfg, account.password, command)
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 1, (command, out, err)
            lines = err.decode().strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), lines
            assert "state.db" in lines[0] or "database" in lines[0], lines[0]
    finally:
        for path in locked:
            _immutable(path, False)
        work.chmod(0o700)
        db_path.chmod(0o600)
    assert db_path.read_bytes() == before_bytes
    assert_sound(db_path)
    assert snapshot(db_path) == before


def test_two_runs_at_once_one_steps_aside(tmp_path, big_account, reference, monkeypatch):
    account, count = big_account
    snap, _took, _idle = reference
    cfg = write_config(tmp_path, account, imap={"batch_size": 20})
    db_path = load_config(cfg).db_path
    # deterministic: someone holds the lock (a run in progress)
    with acquire(lock_path(db_path)):
        proc = triage_process(cfg, account.password, "run")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out == b""
    assert err.decode().strip() == "another triage run is in progress; skipping"
    assert not db_path.exists() or len(snapshot(db_path)["locations"]) == 0

    # for real: two runs started together; both exit 0, the database is as after one run
    procs = [triage_process(cfg, account.password, "run") for _ in range(2)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    for _out, err in results:
        assert err.decode().strip() in ("", "another triage run is in progress; skipping")
    assert_sound(db_path)
    assert snapshot(db_path) == snap


def test_killed_run_leaves_no_stale_lock(tmp_path, big_account, reference):
    account, _count = big_account
    snap, _took, _idle = reference
    cfg = write_config(tmp_path, account, imap={"batch_size": 20})
    db_path = load_config(cfg).db_path
    proc = triage_process(cfg, account.password, "run")
    deadline = time.monotonic() + 120  # a runaway guard, not a speed check: loaded CI is slow
    # kill it while it holds the lock: the lock file names its pid then
    while time.monotonic() < deadline:
        lock = lock_path(db_path)
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            break
        if proc.poll() is not None:
            pytest.fail("run finished before it could be killed")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.01)  # poll the lock file while the run is alive
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (lock_path(db_path).stat().st_mode & 0o777) == 0o600
    proc = triage_process(cfg, account.password, "run")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == b"", err.decode()
    assert snapshot(db_path) == snap
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- a database lost or replaced -------------------------------------------------------------


def test_a_database_deleted_while_the_sync_runs_stops_it(tmp_path, big_account, monkeypatch):
    """cron's sync must not go on writing into an unlinked file and exit 0: the first commit
    after the deletion stops it, and the next run refuses to start over from nothing."""
    account, _count = big_account
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    cfg = write_config(tmp_path, account, imap={"batch_size": 20})
    db_path = load_config(cfg).db_path
    real_fetch = IMAPSession.fetch
    calls = 0

    def fetch_then_delete(self, uids):
        nonlocal calls
        calls += 1
        if calls == 3:  # two batches stored, more to come
            remove_db(db_path, keep_id=True)
        return real_fetch(self, uids)

    monkeypatch.setattr(IMAPSession, "fetch", fetch_then_delete)
    res = triage(cfg, "run", now=None)
    assert res.exit_code == 1, res.output
    assert res.stderr.strip().splitlines() == [
        f"Error: {db_path} was deleted or replaced while triage was running; stopped without "
        "writing more to it"]
    assert not db_path.exists()

    monkeypatch.setattr(IMAPSession, "fetch", real_fetch)
    res = triage(cfg, "run", now=None)
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert "is missing, but a database was here before" in line and "--init" in line
    assert not db_path.exists()  # nothing rebuilt behind the team's back
    ok_res = triage(cfg, "--init", "sync", now=None)
    assert ok_res.exit_code == 0, ok_res.output
    assert_sound(db_path)


def test_another_database_in_its_place_is_refused_until_init(tmp_path, big_account,
                                                             monkeypatch):
    account, _count = big_account
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    cfg = write_config(tmp_path, account, imap={"folders": ["INBOX"]})
    db_path = load_config(cfg).db_path
    assert triage(cfg, "sync", now=None).exit_code == 0
    other = tmp_path / "other" / "state.db"
    open_db(other).conn.close()
    remove_db(db_path, keep_id=True)
    other.rename(db_path)
    res = triage(cfg, "threads")
    assert res.exit_code == 1
    assert "is not the database that was here before" in res.stderr and "--init" in res.stderr
    assert triage(cfg, "--init", "threads").exit_code == 0
    assert triage(cfg, "threads").exit_code == 0  # --init made it the one
