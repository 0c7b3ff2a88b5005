"""A private Dovecot 2.3 (IMAP, STARTTLS, IMAPS) in a temp dir, with accounts to fill and inspect.

Plain Python on purpose (no pytest imports): the benchmark imports it too.
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
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from support import maildir
from support.certs import TestPKI
from support.daemon import MasterProcess, append_uid
from support.dovecot_conf import render_config
from support.net import DEFAULT_PASSWORD, DEFAULT_USER, free_port

DOVECOT_BIN = "/usr/sbin/dovecot"
DOVEADM_BIN = "/usr/bin/doveadm"
_SAFE_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]*")


@dataclass
class Account:
    """One IMAP account on a running `Dovecot`: connection details plus helpers bound to it."""

    server: Dovecot
    username: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ssl_port(self) -> int:
        return self.server.ssl_port

    @property
    def ca_file(self) -> str:
        return self.server.ca_file

    @property
    def maildir(self) -> Path:
        return self.server.maildir_root(self.username)

    def client(self, ssl: bool = False, starttls: bool = False) -> Any:
        return self.server.client(ssl=ssl, starttls=starttls, user=self.username)

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Iterable[str | bytes] = (),
        internaldate: dt.datetime | None = None,
    ) -> int | None:
        return self.server.append(folder, raw, flags, internaldate, user=self.username)

    def deliver_maildir(
        self,
        folder: str,
        messages: Iterable[bytes],
        flags: Iterable[str | bytes] = (),
        internaldate: dt.datetime | float | None = None,
    ) -> int:
        return self.server.deliver_maildir(
            self.username, folder, messages, flags=flags, internaldate=internaldate
        )

    def change_uidvalidity(self, folder: str = "INBOX") -> None:
        self.server.change_uidvalidity(self.username, folder)

    def reset(self) -> None:
        self.server.reset(self.username)


class Dovecot(MasterProcess):
    """A private Dovecot 2.3 instance: IMAP with STARTTLS and IMAPS on free localhost ports.

    With `oauth2_introspection_url`, XOAUTH2 and OAUTHBEARER logins are checked by Dovecot's
    own `oauth2` passdb against that introspection endpoint (tests/support/oauth_server.py);
    PLAIN and LOGIN still use the passwd-file.

    Everything (config, sockets, state, logs, mail) lives in one temp dir under /tmp that is
    deleted on `stop()`. The dir is 0755 rather than under pytest's 0700 tmp, because Dovecot
    drops to an unprivileged mail user who must reach the Maildirs.
    """

    name = "Dovecot"

    def __init__(
        self,
        username: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        *,
        pki: TestPKI | None = None,
        separator: str = "/",
        debug: bool = False,
        binary: str = DOVECOT_BIN,
        oauth2_introspection_url: str | None = None,
    ) -> None:
        self.oauth2_introspection_url = oauth2_introspection_url
        self.port = 0
        self.ssl_port = 0
        self.username = username
        self.password = password
        self.separator = separator
        self.debug = debug
        self.binary = binary
        self._pki = pki
        self._users: dict[str, str] = {username: password}
        self._users_lock = threading.Lock()
        self._counter = itertools.count()
        self._proc = None
        self._own_dir = False
        self.directory = None
        self._mail_uid, self._mail_gid = self._pick_mail_user()

    # -- lifecycle -------------------------------------------------------------------------

    @staticmethod
    def available(binary: str = DOVECOT_BIN) -> bool:
        """True if Dovecot is installed (tests skip otherwise)."""
        return os.access(binary, os.X_OK)

    @staticmethod
    def _pick_mail_user() -> tuple[int, int]:
        # As root, mail processes must run as someone unprivileged; otherwise as ourselves.
        if os.geteuid() == 0:
            for name in ("mail", "dovecot"):
                with contextlib.suppress(KeyError):
                    entry = pwd.getpwnam(name)
                    return entry.pw_uid, entry.pw_gid
            raise RuntimeError("no 'mail' or 'dovecot' user to run Dovecot mail processes as")
        return os.getuid(), os.getgid()

    def start(self) -> Self:
        if self._proc is not None:
            return self
        if not self.available(self.binary):
            raise RuntimeError(f"{self.binary} not found; install dovecot-imapd")
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="mailtriage-dovecot-"))
            self._own_dir = True
        self.directory.chmod(0o755)
        if self._pki is None:
            self._pki = TestPKI(self.directory / "tls")
        for sub in ("run", "state"):
            (self.directory / sub).mkdir(exist_ok=True)
        mail = self.directory / "mail"
        mail.mkdir(mode=0o755, exist_ok=True)
        os.chown(mail, self._mail_uid, self._mail_gid)
        self.users_dir.mkdir(mode=0o755, exist_ok=True)
        for user in self._users:
            self._write_user(user)

        last_error = ""
        for _attempt in range(3):  # a free port can be stolen between probe and bind; retry
            self.port, self.ssl_port = free_port(), free_port()
            self.config_file.write_text(self._config())
            log = self.log_file
            log_offset = log.stat().st_size if log.exists() else 0
            # -F: stay in the foreground, so the Popen pid is the master pid (base_dir/master.pid).
            with open(self.directory / "dovecot.out", "ab") as out:
                self._proc = subprocess.Popen(
                    [self.binary, "-F", "-c", str(self.config_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                atexit.register(self.stop)  # no orphaned Dovecot if the caller forgets stop()
                return self
            output = (self.directory / "dovecot.out").read_text(errors="replace")
            log_text = log.read_text(errors="replace")[log_offset:] if log.exists() else ""
            self._kill()
            last_error = (output + log_text)[-4000:]
            if "Address already in use" not in last_error:
                break
        self.stop()
        raise RuntimeError(f"Dovecot did not start:\n{last_error}")

    def ready_ports(self) -> list[int]:
        return [self.port, self.ssl_port]

    def _kill(self) -> None:
        self._stop_master()

    def stop(self) -> None:
        """Stop the master (and so all children) and delete the temp dir if we created it."""
        atexit.unregister(self.stop)
        self._kill()
        if self._own_dir and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            self._own_dir = False

    # -- paths and config ------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self._dir() / "dovecot.conf"

    @property
    def log_file(self) -> Path:
        return self._dir() / "dovecot.log"

    @property
    def users_dir(self) -> Path:
        return self._dir() / "users"

    @property
    def pki(self) -> TestPKI:
        if self._pki is None:
            raise RuntimeError("Dovecot is not started")
        return self._pki

    @property
    def ca_file(self) -> str:
        return str(self.pki.ca_file)

    def home(self, user: str | None = None) -> Path:
        return self._dir() / "mail" / (user or self.username)

    def maildir_root(self, user: str | None = None) -> Path:
        """The user's Maildir (INBOX); other folders are `.Name` subdirs (Maildir++)."""
        return self.home(user) / "Maildir"

    def folder_path(self, user: str | None, folder: str) -> Path:
        root = self.maildir_root(user)
        if folder.upper() == "INBOX":
            return root
        return root / ("." + folder.replace(self.separator, "."))

    def _config(self) -> str:
        return render_config(
            self._dir(),
            host=self.host,
            port=self.port,
            ssl_port=self.ssl_port,
            separator=self.separator,
            debug=self.debug,
            pki=self.pki,
            mail_uid=self._mail_uid,
            mail_gid=self._mail_gid,
            oauth2_introspection_url=self.oauth2_introspection_url,
        )

    # -- users -----------------------------------------------------------------------------

    def _write_user(self, username: str) -> None:
        # One passwd-file per user (path has %u): Dovecot re-checks a passwd-file at most once
        # a second, so adding users to a shared file made logins right after add_user() fail.
        path = self.users_dir / username
        tmp = path.with_name(f".{username}.tmp")
        tmp.write_text(f"{username}:{self._users[username]}\n")
        tmp.chmod(0o644)
        tmp.replace(path)

    def add_user(self, username: str | None = None, password: str | None = None) -> Account:
        """Create an account (fresh and empty unless the name was used before).

        Re-adding a user with a new password may take a second to be noticed by Dovecot.
        """
        with self._users_lock:
            if username is None:
                username = f"user{next(self._counter)}-{os.getpid()}@example.com"
            if not _SAFE_USER.fullmatch(username) or ".." in username:
                raise ValueError(f"user name {username!r} is not safe as a file name")
            if password is not None and (":" in password or "\n" in password):
                raise ValueError("':' and newlines are not allowed in passwd-file passwords")
            self._users[username] = password or DEFAULT_PASSWORD
            if self.directory is not None:
                self._write_user(username)
        return self.account(username)

    def account(self, username: str | None = None) -> Account:
        username = username or self.username
        return Account(self, username, self._users[username])

    # -- IMAP conveniences -----------------------------------------------------------------

    def client(self, ssl: bool = False, starttls: bool = False, user: str | None = None) -> Any:
        """A logged-in `imapclient.IMAPClient` that verifies TLS against the test CA."""
        import imapclient

        user = user or self.username
        ctx = self.pki.client_context()
        if ssl:
            client = imapclient.IMAPClient(
                self.host, port=self.ssl_port, ssl=True, ssl_context=ctx, timeout=10
            )
        else:
            client = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
            if starttls:
                client.starttls(ctx)
        try:
            client.login(user, self._users[user])
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Iterable[str | bytes] = (),
        internaldate: dt.datetime | None = None,
        *,
        user: str | None = None,
    ) -> int | None:
        """APPEND one message over IMAP; returns its UID (from APPENDUID) when known."""
        client = self.client(user=user)
        try:
            response = client.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        finally:
            client.logout()
        return append_uid(response)  # b"[APPENDUID <uidvalidity> <uid>] Append completed."

    # -- on-disk helpers (fast, bypass IMAP) -----------------------------------------------

    def _ensure_folder(self, user: str, folder: str) -> Path:
        return maildir.ensure_folder(
            self.home(user),
            self.maildir_root(user),
            self.folder_path(user, folder),
            self._mail_uid,
            self._mail_gid,
        )

    def deliver_maildir(
        self,
        user: str | None,
        folder: str,
        messages: Iterable[bytes],
        *,
        flags: Iterable[str | bytes] = (),
        internaldate: dt.datetime | float | None = None,
    ) -> int:
        """Write messages straight into Maildir `cur/` files; Dovecot indexes them on SELECT.

        For bulk fills (100k messages for benchmarks) where IMAP APPEND would be far too slow.
        INTERNALDATE is the file mtime (default: now). Returns the number of messages written.
        """
        path = self._ensure_folder(user or self.username, folder)
        return maildir.deliver(
            path,
            messages,
            uid=self._mail_uid,
            gid=self._mail_gid,
            counter=self._counter,
            flags=flags,
            internaldate=internaldate,
        )

    def change_uidvalidity(self, user: str | None, folder: str = "INBOX") -> None:
        """Force a new UIDVALIDITY for a folder (as after a server-side mailbox rebuild).

        Deletes the folder's uidlist and indexes plus the mailbox-list index, so Dovecot
        renumbers the messages under a fresh UIDVALIDITY (it keeps a counter file in the Maildir
        root, so the new value is always larger). Log out every session of the user first.
        """
        user = user or self.username
        maildir.drop_indexes(self._ensure_folder(user, folder), self.maildir_root(user))

    def reset(self, user: str | None = None) -> None:
        """Empty the account: all messages gone, only default folders left (recreated on login).

        Removes the user's home from disk, so log out every session of the user first.
        """
        home = self.home(user)
        if home.exists():
            shutil.rmtree(home)

    def message_files(self, user: str | None, folder: str = "INBOX") -> list[Path]:
        """Message files of a folder on disk (for asserting on what the server really holds)."""
        return maildir.message_files(self.folder_path(user, folder))

    def log_text(self) -> str:
        """Dovecot's log, to attach to failure messages."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

