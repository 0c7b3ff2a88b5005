"""A private Cyrus IMAP 3.6 (Debian's) in a temp dir: a second real server beside Dovecot.

Classic Cyrus namespace on purpose (``altnamespace: no``, ``unixhierarchysep: no``): folders
live under ``INBOX.`` with ``.`` as the delimiter (``INBOX.Sent``), as on Courier and on many
older Cyrus installs.  Every account gets INBOX, INBOX.Sent (not flagged \\Sent, as Courier
and many hosted servers leave it), INBOX.Drafts (flagged, but spelt ``\\drafts`` by Cyrus)
and INBOX.Trash on its first login.  Passwords are checked against a private sasldb.

Debian's ``cyrus-imapd`` package cannot be installed beside ``dovecot-imapd`` (both provide
and conflict with ``imap-server``), so `.ci/install-system-deps` installs ``cyrus-common``
(master, ctl_cyrusdb) and ``sasl2-bin`` (saslpasswd2) with apt and unpacks only the
``imapd`` binary of ``cyrus-imapd`` under /opt/cyrus-imapd (``MAILTRIAGE_CYRUS_IMAPD``
names another).

Plain Python on purpose (no pytest imports), like support/dovecot.py.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from support.daemon import MasterProcess, append_uid
from support.net import DEFAULT_PASSWORD, free_port

MASTER_BIN = "/usr/sbin/cyrmaster"  # cyrus-common
CTL_CYRUSDB_BIN = "/usr/lib/cyrus/bin/ctl_cyrusdb"  # cyrus-common
SASLPASSWD_BIN = "/usr/sbin/saslpasswd2"  # sasl2-bin
# imapd: where .ci/install-system-deps unpacks it, else where the package would put it
IMAPD_CANDIDATES = ("/opt/cyrus-imapd/usr/lib/cyrus/bin/imapd", "/usr/lib/cyrus/bin/imapd")
CYRUS_USER = "cyrus"  # compiled into Debian's Cyrus: the master switches to it when root
SEPARATOR = "."
PREFIX = "INBOX."  # the personal namespace
# Cyrus takes '.' as its hierarchy separator and '@' as a domain, so names keep to this.
_SAFE_USER = re.compile(r"[a-z0-9][a-z0-9_-]*")


def imapd_binary() -> str | None:
    explicit = os.environ.get("MAILTRIAGE_CYRUS_IMAPD")
    for path in ((explicit,) if explicit else IMAPD_CANDIDATES):
        if os.access(path, os.X_OK):
            return path
    return None


def missing() -> str | None:
    """Why this machine cannot run the test Cyrus (None: it can)."""
    needed = {MASTER_BIN: "cyrus-common", CTL_CYRUSDB_BIN: "cyrus-common",
              SASLPASSWD_BIN: "sasl2-bin"}
    absent = sorted({pkg for path, pkg in needed.items() if not os.access(path, os.X_OK)})
    if imapd_binary() is None:
        absent.append("cyrus-imapd's imapd (unpacked to /opt/cyrus-imapd)")
    if absent:
        return "Cyrus IMAP not installed: " + ", ".join(absent) + "; run .ci/install-system-deps"
    if os.geteuid() != 0:
        with contextlib.suppress(KeyError):
            if pwd.getpwnam(CYRUS_USER).pw_uid == os.geteuid():
                return None
        return "the Cyrus master must start as root or as the cyrus user"
    return None


@dataclass
class CyrusAccount:
    """One account on a running `Cyrus`, with the same helpers as a Dovecot `Account`."""

    server: Cyrus
    username: str
    password: str
    sent_folder = PREFIX + "Sent"
    drafts_folder = PREFIX + "Drafts"
    separator = SEPARATOR

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def folder(self, name: str) -> str:
        """The server's name of a folder: ``Sent`` -> ``INBOX.Sent``; INBOX stays INBOX."""
        if name.upper() == "INBOX" or name.startswith(PREFIX):
            return name
        return PREFIX + name.replace("/", SEPARATOR)

    def client(self) -> Any:
        return self.server.client(self.username, self.password)

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Iterable[str | bytes] = (),
        internaldate: dt.datetime | None = None,
    ) -> int | None:
        """APPEND one message to ``folder`` (Dovecot-style names are mapped: ``Sent``)."""
        client = self.client()
        try:
            return append_uid(client.append(self.folder(folder), raw, flags=tuple(flags),
                                            msg_time=internaldate))
        finally:
            client.logout()

    def change_uidvalidity(self, folder: str) -> None:
        """Give ``folder`` a new UIDVALIDITY with the same messages, flags and dates, as a
        server-side rebuild would: copy them aside, delete and re-create the folder, copy
        them back.  Cyrus has no tool that renumbers a mailbox in place, and INBOX cannot be
        re-created this way (deleting a user's INBOX deletes the user), so not for INBOX."""
        name = self.folder(folder)
        if name.upper() == "INBOX":
            raise ValueError("Cyrus cannot re-create INBOX; use another folder")
        c = self.client()
        try:
            recreate_folder(c, name, f"{PREFIX}uidvalidity-aside-{os.getpid()}")
        finally:
            c.logout()


def recreate_folder(c: Any, name: str, aside: str) -> None:
    """Delete and re-create folder ``name`` with the same messages (flags, INTERNALDATE and
    UID order kept) on a logged-in client, by way of a folder ``aside``: the new folder has
    a new UIDVALIDITY and UIDs from 1.  Plain IMAP4rev1, so the same on any server."""
    before = c.folder_status(name, ["UIDVALIDITY"])[b"UIDVALIDITY"]
    c.create_folder(aside)
    _move_all(c, name, aside)
    c.create_folder(name)
    _move_all(c, aside, name)
    after = c.folder_status(name, ["UIDVALIDITY"])[b"UIDVALIDITY"]
    if after == before:
        raise RuntimeError(f"{name}: UIDVALIDITY stayed {before} after re-creating it")


def _move_all(c: Any, source: str, target: str) -> None:
    """Every message of ``source`` copied to ``target`` in UID order; ``source`` deleted."""
    c.select_folder(source)
    uids = sorted(c.search(["ALL"]))
    if uids:
        c.copy(uids, target)
    c.close_folder()
    c.delete_folder(source)


class Cyrus(MasterProcess):
    """A private Cyrus master with one plain IMAP service on a free 127.0.0.1 port.

    Config, sasldb, mailbox database and spool live in one temp dir (0755, owned by the cyrus
    user, who must reach it) deleted on `stop()`.  Cyrus logs only to syslog; without a
    /dev/log its complaints are lost, so `start()` reports the master's stdout on failure.
    """

    name = "Cyrus"

    def __init__(self) -> None:
        self.port = 0
        self.directory = None
        self._proc = None
        self._users: dict[str, str] = {}
        self._users_lock = threading.Lock()
        self._counter = itertools.count(1)
        self._owner = (-1, -1)
        self._marker: str | None = None  # the dir of the last start, kept after stop()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._proc is not None:
            return self
        reason = missing()
        imapd = imapd_binary()
        if reason or imapd is None:
            raise RuntimeError(reason or "no imapd")
        d = self.directory = Path(tempfile.mkdtemp(prefix="mailtriage-cyrus-"))
        self._marker = str(d) + "/"
        d.chmod(0o755)
        for sub in ("conf/proc", "conf/socket", "conf/lock", "conf/db", "conf/log", "spool",
                    "sieve"):
            (d / sub).mkdir(parents=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(CYRUS_USER)
            self._owner = (entry.pw_uid, entry.pw_gid)
            for path in (d / "conf", d / "spool", d / "sieve", *(d / "conf").iterdir()):
                os.chown(path, *self._owner)
        (d / "imapd.conf").write_text(self._imapd_conf())
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind: retry
            self.port = free_port()
            (d / "cyrus.conf").write_text(self._cyrus_conf(imapd))
            with open(d / "master.out", "ab") as out:
                # -D: stay in the foreground, so the Popen pid is the master's (master.pid)
                self._proc = subprocess.Popen(
                    [MASTER_BIN, "-D", "-C", str(d / "imapd.conf"), "-M", str(d / "cyrus.conf"),
                     "-p", str(d / "master.pid")],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            if self._wait_ready():
                atexit.register(self.stop)
                return self
            last_error = (d / "master.out").read_text(errors="replace")[-4000:]
            self._kill()
        self.stop()
        raise RuntimeError(f"Cyrus did not start listening:\n{last_error}")

    def ready_ports(self) -> list[int]:
        return [self.port]

    def processes(self) -> list[int]:
        """Pids of every process of this instance, running or left behind after `stop()`
        (master, imapd children): those whose command line names this instance's dir."""
        if self._marker is None:
            return []
        marker = self._marker.encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if marker in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
        return found

    def _kill(self) -> None:
        self._stop_master()
        deadline = time.monotonic() + 5
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)  # imapd children exit on their own once the master is gone
        for pid in self.processes():  # only ever ours: their command line names our dir
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the master and its children, then delete the temp dir."""
        atexit.unregister(self.stop)
        self._kill()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    # -- config ----------------------------------------------------------------------------

    def _imapd_conf(self) -> str:
        d = self._dir()
        return f"""\
# Generated by tests/support/cyrus.py -- a throwaway test instance.
configdirectory: {d}/conf
partition-default: {d}/spool
defaultpartition: default
sievedir: {d}/sieve
lmtpsocket: {d}/conf/socket/lmtp
idlesocket: {d}/conf/socket/idle
notifysocket: {d}/conf/socket/notify
syslog_prefix: mailtriage-cyrus
admins: {CYRUS_USER}
altnamespace: no
unixhierarchysep: no
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
autocreate_quota: 0
autocreate_inbox_folders: Sent | Drafts | Trash
autocreate_subscribe_folders: Sent | Drafts | Trash
xlist-drafts: Drafts
"""

    def _cyrus_conf(self, imapd: str) -> str:
        conf = self._dir() / "imapd.conf"
        return f"""\
START {{
  recover cmd="{CTL_CYRUSDB_BIN} -r -C {conf}"
}}
SERVICES {{
  imap cmd="{imapd} -C {conf}" listen="{self.host}:{self.port}" prefork=1
}}
EVENTS {{
}}
"""

    # -- users -----------------------------------------------------------------------------

    def add_user(self, username: str | None = None,
                 password: str = DEFAULT_PASSWORD) -> CyrusAccount:
        """An account, created empty on its first login (INBOX, Sent, Drafts, Trash)."""
        with self._users_lock:
            username = username or f"user{next(self._counter)}-{os.getpid()}"
            if not _SAFE_USER.fullmatch(username):
                raise ValueError(f"{username!r}: Cyrus user names here are [a-z0-9_-]")
            sasldb = self._dir() / "sasldb2"
            subprocess.run([SASLPASSWD_BIN, "-p", "-c", "-f", str(sasldb), "-u", "", username],
                           input=password.encode(), check=True, capture_output=True)
            if self._owner != (-1, -1):
                os.chown(sasldb, *self._owner)
            self._users[username] = password
        return CyrusAccount(self, username, password)

    def client(self, username: str, password: str) -> Any:
        """A logged-in `imapclient.IMAPClient` (plain IMAP on loopback)."""
        import imapclient

        client = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(username, password)
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client
