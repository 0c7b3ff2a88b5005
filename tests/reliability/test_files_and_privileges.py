"""Files and privileges: what root refuses to trust, what it creates private, and which
processes may see a secret.

Each test plants what someone with write access to a folder would plant (a symlink, a
world-writable config, a folder of another user) and checks that `triage` refuses with one
line and exit 2 before touching anything.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailtriage import lock
from mailtriage.errors import UnsafePath
from mailtriage.lock import acquire, lock_path

from support.cli import ok, triage
from support.faultproxy import PASSWORD_VAR, conversation_corpus, deliver
from support.mailfactory import mail, write_config

SECRET = "Worker-Must-Not-See-3319"
NOBODY = 65534


@pytest.fixture
def account(mailbox, monkeypatch):
    mailbox.append("INBOX", mail(msgid="f1@c.test", subject="Export broken"))
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    return mailbox


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def refused(res, *words: str) -> str:
    """The one line of a refusal with exit 2, checked to name ``words``."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- the lock --------------------------------------------------------------------------------


def test_a_symlinked_lock_is_refused_and_what_it_points_to_is_untouched(tmp_path, account):
    victim = tmp_path / "elsewhere" / "important"
    victim.parent.mkdir()
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    cfg = write_config(tmp_path, account)
    lock_file = lock_path(tmp_path / "state.db")
    lock_file.symlink_to(victim)

    refused(triage(cfg, "run"), "lock file", "symlink")
    assert victim.read_text() == "keep me\n" and mode(victim) == 0o644
    with pytest.raises(UnsafePath), acquire(lock_file):
        pass
    assert victim.read_text() == "keep me\n"


def test_a_symlink_planted_after_the_check_is_still_not_followed(tmp_path, monkeypatch):
    """The open itself refuses a symlink (O_NOFOLLOW), not only the check before it."""
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "state.db.lock"
    link.symlink_to(victim)
    monkeypatch.setattr(lock, "check_file", lambda path, what: path)  # lose the race
    with pytest.raises(UnsafePath, match="symlink"), acquire(link):
        pass
    assert victim.read_text() == "keep me\n"


# -- the database ----------------------------------------------------------------------------


def test_a_database_folder_other_users_can_write_is_refused(tmp_path, account):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    cfg = write_config(tmp_path, account, db="shared/state.db")
    refused(triage(cfg, "sync"), "database", str(shared), "writable by other users")
    assert not (shared / "state.db").exists()

    shared.chmod(0o700)
    os.chown(shared, NOBODY, NOBODY)
    refused(triage(cfg, "sync"), str(shared), f"uid {NOBODY}")
    os.chown(shared, os.getuid(), os.getgid())
    ok(cfg, "sync")


def test_above_the_database_folder_only_a_sticky_shared_folder_is_fine(tmp_path, account):
    above = tmp_path / "above"
    (above / "own").mkdir(parents=True)
    above.chmod(0o777)
    (above / "own").chmod(0o700)
    cfg = write_config(tmp_path, account, db="above/own/state.db")
    refused(triage(cfg, "sync"), str(above), "writable by other users")
    above.chmod(0o1777)  # like /tmp: nobody can replace another user's entries
    ok(cfg, "sync")


def test_a_symlinked_database_is_refused_unless_allowed(tmp_path, account):
    target = tmp_path / "real" / "state.db"
    target.parent.mkdir()
    cfg = write_config(tmp_path, account)
    link = tmp_path / "state.db"
    link.symlink_to(target)

    refused(triage(cfg, "sync"), "database", "symlink", "db.allow_symlink")  # dangling
    assert not target.exists()
    target.write_bytes(b"")  # a link to an empty file would have become the database
    refused(triage(cfg, "sync"), "symlink")
    assert target.read_bytes() == b""

    cfg = write_config(tmp_path, account, db={"path": "state.db", "allow_symlink": True})
    ok(cfg, "sync")
    assert target.stat().st_size > 0 and link.is_symlink()
    assert "Export broken" in ok(cfg, "threads").output


def test_a_database_file_of_another_user_or_writable_by_others_is_refused(tmp_path, account):
    cfg = write_config(tmp_path, account)
    ok(cfg, "sync")
    db = tmp_path / "state.db"
    db.chmod(0o666)
    refused(triage(cfg, "threads"), "database", "writable by other users")
    db.chmod(0o600)
    wal = tmp_path / "state.db-wal"
    with contextlib.suppress(FileNotFoundError):
        wal.unlink()
    wal.symlink_to(tmp_path / "elsewhere-wal")
    refused(triage(cfg, "threads"), "state.db-wal", "symlink")


# -- what is created -------------------------------------------------------------------------


def test_folders_and_files_with_mail_data_are_private_whatever_the_umask(tmp_path, account):
    cfg = write_config(tmp_path, account, db="sub/deeper/state.db")
    out = tmp_path / "report.html"
    out.write_text("old")
    out.chmod(0o644)
    elsewhere = tmp_path / "not-the-report"
    elsewhere.write_text("keep me")
    linked = tmp_path / "linked.html"
    linked.symlink_to(elsewhere)
    with umask(0):
        ok(cfg, "sync")
        ok(cfg, "report", "--output", str(out))
        ok(cfg, "report", "--output", str(linked))
    assert mode(tmp_path / "sub") == 0o700 and mode(tmp_path / "sub" / "deeper") == 0o700
    assert mode(tmp_path / "sub" / "deeper" / "state.db") == 0o600
    assert mode(out) == 0o600 and out.read_text().startswith("<!DOCTYPE html>")
    assert not linked.is_symlink() and mode(linked) == 0o600  # replaced, not written through
    assert elsewhere.read_text() == "keep me"


def test_the_demo_folder_and_config_are_private_whatever_the_umask(tmp_path):
    demo = tmp_path / "deep" / "demo"
    with umask(0):
        ok(None, "demo", "--dir", str(demo))
    assert mode(tmp_path / "deep") == 0o700 and mode(demo) == 0o700
    assert mode(demo / "config.yaml") == 0o600


# -- the config and its commands -------------------------------------------------------------


def test_a_config_others_can_write_is_refused_before_its_command_runs(tmp_path, account):
    marker = tmp_path / "ran"
    cfg = write_config(tmp_path, account, imap={
        "password_env": None, "password_cmd": ["sh", "-c", f"touch {marker}; echo x"]})
    cfg.chmod(0o666)
    refused(triage(cfg, "sync"), "config file", str(cfg), "writable by other users")
    cfg.chmod(0o600)
    tmp_path.chmod(0o777)
    try:
        refused(triage(cfg, "sync"), "config file", str(tmp_path))
    finally:
        tmp_path.chmod(0o700)
    assert not marker.exists()


def test_secret_commands_see_only_a_minimal_environment(tmp_path, account, monkeypatch):
    seen = tmp_path / "env-seen"
    monkeypatch.setenv("TRIAGE_SMTP_PASSWORD", "smtp-secret-5521")
    monkeypatch.setenv("SOME_TOKEN", "token-secret-5522")
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "gnupg"))
    dump = f"env > {seen}; printf %s \"$0\""
    cfg = write_config(tmp_path, account, imap={
        "password_env": None, "command_env": ["GNUPGHOME"],
        "password_cmd": ["sh", "-c", dump, account.password]})
    ok(cfg, "sync")
    names = {line.partition("=")[0] for line in seen.read_text().splitlines()}
    assert "GNUPGHOME" in names and "PATH" in names and "HOME" in names
    assert not names & {"TRIAGE_SMTP_PASSWORD", "SOME_TOKEN", PASSWORD_VAR}
    allowed = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "GNUPGHOME",
               "PWD", "SHLVL", "_", "OLDPWD"}  # the last four the shell adds itself
    assert names <= allowed, names - allowed


# -- the parse worker ------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def _memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any readable mapping of ``pid`` (heap, stack, environment) contains needle."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if "r" not in perms:
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


def test_the_parse_worker_never_holds_the_password(tmp_path, dovecot):
    """The worker parses what strangers wrote: neither its environment nor its memory may
    hold the password that the sync process (checked the same way) does hold."""
    big = dovecot.add_user("worker-secrets@example.com", SECRET)
    deliver(big, conversation_corpus(threads=100, per_thread=6))
    cfg = write_config(tmp_path, big, imap={"batch_size": 20, "folders": ["INBOX", "Sent"]})
    env = {**os.environ, PASSWORD_VAR: SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "mailtriage", "--config", str(cfg), "sync"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[int] = []
    checked = 0
    try:
        while proc.poll() is None and not checked:
            for pid in _children(proc.pid):
                with contextlib.suppress(OSError):
                    if b"mailtriage.parseworker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        workers.append(pid)
                        assert SECRET.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
                        assert not _memory_holds(pid, SECRET.encode())
                        # the same look finds it in the sync process (alive: it waits for
                        # its worker), so the look is not blind
                        assert _memory_holds(proc.pid, SECRET.encode())
                        checked += 1
            time.sleep(0.005)
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert checked, "the sync ended before its parse worker could be looked at"
