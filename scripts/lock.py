"""One ``triage run`` (or ``sync``) at a time: an advisory lock on ``<db>.lock``.

The lock is ``flock(2)`` on an open file, so the kernel drops it when the
process ends however it ends: a crashed or killed run never leaves a stale
lock behind, and the file itself is left in place (deleting it would let two
runs lock two different files).  The file is created 0600 and holds the pid of
the run holding it, for humans only.  It is never opened through a symlink: in a
folder someone else could write, root would otherwise truncate whatever it points to
(files.py refuses such folders too).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import Busy, UnsafePath
from .files import check_file, make_private_folders


def lock_path(db_path: Path | str) -> Path:
    """The lock file that belongs to a database file."""
    return Path(f"{db_path}.lock")


def _open_lock(path: Path) -> int:
    make_private_folders(path.parent)
    check_file(path, "lock file")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                     0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink appeared after the check
            raise UnsafePath(f"refusing the lock file {path}: it is a symlink") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.geteuid()):
        os.close(fd)
        raise UnsafePath(f"refusing the lock file {path}: not a regular file of this user")
    return fd


@contextlib.contextmanager
def acquire(path: Path | str, wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for the ``with`` block.

    ``wait=False`` raises :class:`Busy` at once when someone else holds it;
    ``wait=True`` blocks until it is free.
    """
    path = Path(path)
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(f"{path} is held by another process") from None
        with contextlib.suppress(OSError):  # a file root created for us: not ours to fix
            os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
