"""Files that hold mail data or decide what runs: created private, trusted only when safe.

The rule is ssh's StrictModes.  The config (whose ``password_cmd`` we run), the database
and its lock (which we write through) must be owned by the running user or root, and
neither they nor any folder above them may be writable by another user; above the file's
own folder a sticky folder such as ``/tmp`` is fine, since nobody can replace another's
entries there.  Otherwise someone else could swap in a config whose command root would run,
or plant a symlink that root would truncate.  What mailtriage creates is private whatever
the umask: folders 0700, files 0600.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from .errors import UnsafePath

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def _problem(st: os.stat_result, *, sticky_ok: bool) -> str | None:
    """Why another user could change what ``st`` describes, or None."""
    if not _owner_ok(st):
        return f"owned by uid {st.st_uid}, not by this user or root"
    if st.st_mode & 0o022 and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return "writable by other users"
    return None


def check_folder(folder: Path, what: str) -> None:
    """Refuse ``what`` in ``folder`` when another user could change the folder or one above
    it (the folder itself strictly; a sticky folder higher up is fine)."""
    real = folder.resolve()
    for i, part in enumerate([real, *real.parents]):
        try:
            st = os.stat(part)
        except FileNotFoundError:
            continue  # not created yet: make_private_folders makes it 0700
        problem = _problem(st, sticky_ok=i > 0)
        if problem:
            fix = " (chmod go-w)" if "writable" in problem else ""
            raise UnsafePath(f"refusing the {what} {folder / '…' if i else folder}: "
                             f"{part} is {problem}{fix}")


def check_file(path: Path, what: str, *, allow_symlink: bool = False,
               symlink_hint: str = "") -> Path:
    """The file ``path`` names, after refusing it when it or its folders are not safe.

    A symlink is refused (with ``symlink_hint`` saying how to allow it) unless
    ``allow_symlink``, when its target is checked instead; a missing file is fine (its
    folders are checked).  Returns the path to open.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        check_folder(path.parent, what)
        return path
    target = path
    if stat.S_ISLNK(st.st_mode):
        if not allow_symlink:
            raise UnsafePath(f"refusing the {what} {path}: it is a symlink (to "
                             f"{os.readlink(path)}){symlink_hint}")
        target = path.resolve()
        try:
            st = os.stat(target)
        except FileNotFoundError:
            check_folder(target.parent, what)
            return target
    check_folder(target.parent, what)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"refusing the {what} {path}: not a regular file")
    problem = _problem(st, sticky_ok=False)
    if problem:
        raise UnsafePath(f"refusing the {what} {path}: it is {problem}")
    return target


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and any missing parents 0700, whatever the umask (``mkdir -p``
    would give the parents the umask's mode)."""
    missing = []
    for part in [folder, *folder.parents]:
        if part.exists():
            break
        missing.append(part)
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, PRIVATE_FOLDER)


def create_private(path: Path) -> None:
    """Create an empty 0600 file, never through a symlink (and never over an existing file)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 PRIVATE_FILE)
    os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a 0600 file, atomically: a reader sees the old file or
    the new one, and a symlink at ``path`` is replaced, not written through."""
    import tempfile  # (shutil, random): a write most commands never make

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
