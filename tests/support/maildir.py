"""Write and inspect a Dovecot account's Maildir on disk, for fills far faster than IMAP APPEND.

Functions take explicit paths and the mail user's uid/gid, so they know nothing of a running
server; `support.dovecot.Dovecot` binds them to its accounts.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

# IMAP system flag -> Maildir info letter (letters must be written in ASCII order).
_MAILDIR_FLAGS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}


def flag_suffix(flags: Iterable[str | bytes]) -> str:
    """The info letters (``:2,<letters>``) for IMAP system flags; other flags are refused."""
    letters = set()
    for flag in flags:
        name = flag.decode() if isinstance(flag, bytes) else flag
        letter = _MAILDIR_FLAGS.get(name.lower())
        if letter is None:
            raise ValueError(f"deliver_maildir supports only system flags, not {name!r}")
        letters.add(letter)
    return "".join(sorted(letters))


def timestamp(value: dt.datetime | float | None) -> float | None:
    """A POSIX timestamp for an mtime; naive datetimes are taken as UTC."""
    if value is None or isinstance(value, int | float):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def ensure_dir(path: Path, uid: int, gid: int) -> None:
    """Create `path` (0700) if missing and give it to the mail user."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
    os.chown(path, uid, gid)


def ensure_folder(home: Path, root: Path, path: Path, uid: int, gid: int) -> Path:
    """Make `path` a Maildir folder (cur/new/tmp, plus `maildirfolder` below the root)."""
    for directory in (home, root):
        if not directory.exists():
            ensure_dir(directory, uid, gid)
    if not path.exists():
        ensure_dir(path, uid, gid)
    for sub in ("cur", "new", "tmp"):
        if not (path / sub).exists():
            ensure_dir(path / sub, uid, gid)
    if path != root:
        marker = path / "maildirfolder"
        if not marker.exists():
            marker.touch()
            os.chown(marker, uid, gid)
    return path


def deliver(
    path: Path,
    messages: Iterable[bytes],
    *,
    uid: int,
    gid: int,
    counter: Iterator[int],
    flags: Iterable[str | bytes] = (),
    internaldate: dt.datetime | float | None = None,
) -> int:
    """Write messages straight into the folder's `cur/`; returns how many were written.

    INTERNALDATE is the file mtime (default: now). `counter` keeps file names unique.
    """
    info = flag_suffix(flags)
    stamp = timestamp(internaldate)
    chown = (uid, gid) != (os.geteuid(), os.getegid())
    base = f"{int(time.time())}.M{time.time_ns() // 1000 % 1_000_000}P{os.getpid()}"
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    flags_open = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    count = 0
    # dir fds avoid re-resolving long paths 100k times; write in tmp/ then rename into cur/
    # so a concurrent Dovecot scan never sees a half-written message.
    tmp_fd = os.open(path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    cur_fd = os.open(path / "cur", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for raw in messages:
            count += 1
            name = f"{base}Q{next(counter)}.{host},S={len(raw)}"
            fd = os.open(name, flags_open, 0o600, dir_fd=tmp_fd)
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                if chown:
                    os.fchown(fd, uid, gid)
                if stamp is not None:
                    os.utime(fd, (stamp, stamp))
            finally:
                os.close(fd)
            os.rename(name, f"{name}:2,{info}", src_dir_fd=tmp_fd, dst_dir_fd=cur_fd)
    finally:
        os.close(tmp_fd)
        os.close(cur_fd)
    return count


def drop_indexes(path: Path, root: Path) -> None:
    """Delete a folder's uidlist and indexes plus the mailbox-list index (new UIDVALIDITY)."""
    for directory in {path, root}:
        for entry in directory.iterdir():
            if entry.name == "dovecot-uidlist" or entry.name.startswith(
                ("dovecot.index", "dovecot.list.index")
            ):
                entry.unlink()


def message_files(path: Path) -> list[Path]:
    """Message files of a Maildir folder (new/ and cur/), sorted."""
    return sorted(p for sub in ("new", "cur") for p in (path / sub).glob("*") if p.is_file())
