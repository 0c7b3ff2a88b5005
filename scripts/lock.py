"""One ``triage run`` at a time: an advisory lock on ``<db>.lock``.

The lock is ``flock(2)`` on an open file, so the kernel drops it when the
process ends however it ends: a crashed or killed run never leaves a stale
lock behind, and the file itself is left in place (deleting it would let two
runs lock two different files).  The file is created 0600 and holds the pid of
the run holding it, for humans only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import Busy


def lock_path(db_path: Path | str) -> Path:
    """The lock file that belongs to a database file."""
    return Path(f"{db_path}.lock")


@contextlib.contextmanager
def acquire(path: Path | str, wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for the ``with`` block.

    ``wait=False`` raises :class:`Busy` at once when someone else holds it;
    ``wait=True`` blocks until it is free.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(f"{path} is held by another process") from None
        with contextlib.suppress(OSError):  # a file someone else created: not ours to fix
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
