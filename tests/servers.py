"""Throwaway real mail servers for tests and benchmarks.

`Dovecot` runs a private Dovecot 2.3 (IMAP, STARTTLS, IMAPS) from a temp directory; `SMTPServer`
runs an aiosmtpd server in a thread. Both use certificates from `TestPKI`, a throwaway CA, so
clients can verify TLS for real instead of disabling verification.

Plain Python on purpose (no pytest imports): the benchmark scripts import this module directly.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import ipaddress
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

DOVECOT_BIN = "/usr/sbin/dovecot"
DOVEADM_BIN = "/usr/bin/doveadm"
DEFAULT_USER = "support@example.com"
DEFAULT_PASSWORD = "s3cret-pass"

# Folders every account gets, with their RFC 6154 special-use flag (None: no flag).
DEFAULT_FOLDERS: dict[str, str | None] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Archive": "\\Archive",
    "Trash": "\\Trash",
}

_SAFE_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]*")

# IMAP system flag -> Maildir info letter (letters must be written in ASCII order).
_MAILDIR_FLAGS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for an unused TCP port, so parallel runs never fight over fixed ports."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """Poll until something accepts TCP connections on host:port (server readiness)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------


class TestPKI:
    """A throwaway CA plus a server certificate for 127.0.0.1 and localhost.

    Tests verify TLS against `ca_file`; a client without it must fail verification.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.ca_file = self.directory / "ca.pem"
        self.cert_file = self.directory / "server.pem"
        self.key_file = self.directory / "server.key"
        if not (self.ca_file.exists() and self.cert_file.exists() and self.key_file.exists()):
            self._generate()

    def _generate(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self.directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=30)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailtriage test CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )

        pem = serialization.Encoding.PEM
        self.ca_file.write_bytes(ca_cert.public_bytes(pem))
        self.cert_file.write_bytes(cert.public_bytes(pem))
        self.key_file.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        # World-readable: Dovecot's config process reads these, and it is a throwaway key.
        for path in (self.ca_file, self.cert_file, self.key_file):
            path.chmod(0o644)

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the test server certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


# --------------------------------------------------------------------------------------------
# Dovecot
# --------------------------------------------------------------------------------------------


def _maildir_flag_suffix(flags: Iterable[str | bytes]) -> str:
    letters = set()
    for flag in flags:
        name = flag.decode() if isinstance(flag, bytes) else flag
        letter = _MAILDIR_FLAGS.get(name.lower())
        if letter is None:
            raise ValueError(f"deliver_maildir supports only system flags, not {name!r}")
        letters.add(letter)
    return "".join(sorted(letters))


def _timestamp(value: dt.datetime | float | None) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


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


class Dovecot:
    """A private Dovecot 2.3 instance: IMAP with STARTTLS and IMAPS on free localhost ports.

    Everything (config, sockets, state, logs, mail) lives in one temp dir under /tmp that is
    deleted on `stop()`. The dir is 0755 rather than under pytest's 0700 tmp, because Dovecot
    drops to an unprivileged mail user who must reach the Maildirs.
    """

    def __init__(
        self,
        username: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        *,
        pki: TestPKI | None = None,
        separator: str = "/",
        debug: bool = False,
        binary: str = DOVECOT_BIN,
    ) -> None:
        self.host = "127.0.0.1"
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
        self._proc: subprocess.Popen[bytes] | None = None
        self._own_dir = False
        self.directory: Path | None = None
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

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if wait_for_port(self.host, self.port, 0.2) and wait_for_port(
                self.host, self.ssl_port, 0.2
            ):
                return True
        return False

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # master stops its children before exiting
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        """Stop the master (and so all children) and delete the temp dir if we created it."""
        atexit.unregister(self.stop)
        self._kill()
        if self._own_dir and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            self._own_dir = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- paths and config ------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("Dovecot is not started")
        return self.directory

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
        d = self._dir()
        internal = pwd.getpwuid(os.geteuid()).pw_name
        root = os.geteuid() == 0
        login_user = "dovenull" if root else internal
        internal_user = "dovecot" if root else internal
        mailboxes = "\n".join(
            f"  mailbox {name} {{\n    auto = subscribe\n"
            + (f"    special_use = {flag}\n" if flag else "")
            + "  }"
            for name, flag in DEFAULT_FOLDERS.items()
        )
        no_chroot = "" if root else "  chroot =\n"
        debug = "yes" if self.debug else "no"
        return f"""\
# Generated by tests/servers.py -- a throwaway test instance.
instance_name = mailtriage-test-{self.port}
protocols = imap
listen = {self.host}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
auth_debug = {debug}
mail_debug = {debug}
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = 1
first_valid_gid = 1

disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
ssl = yes
ssl_cert = <{self.pki.cert_file}
ssl_key = <{self.pki.key_file}

mail_location = maildir:~/Maildir
mail_plugins =
mail_fsync = never
mail_max_userip_connections = 1000
mail_uid = {self._mail_uid}
mail_gid = {self._mail_gid}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={d}/mail/%u
}}

namespace inbox {{
  inbox = yes
  separator = {self.separator}
{mailboxes}
}}

service imap-login {{
{no_chroot}  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.ssl_port}
    ssl = yes
  }}
}}
service anvil {{
{no_chroot}  # Unreachable socket = no per-IP auth penalty (up to 15 s of delay for every login
  # after a failed one, which would make tests after a wrong-password test slow).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

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
        # Response looks like b"[APPENDUID <uidvalidity> <uid>] Append completed."
        text = response.decode(errors="replace") if isinstance(response, bytes) else ""
        if text.startswith("[APPENDUID"):
            with contextlib.suppress(IndexError, ValueError):
                return int(text.split("]")[0].split()[2])
        return None

    # -- on-disk helpers (fast, bypass IMAP) -----------------------------------------------

    def _ensure_dir(self, path: Path) -> None:
        if not path.exists():
            path.mkdir(mode=0o700, parents=True)
        os.chown(path, self._mail_uid, self._mail_gid)

    def _ensure_folder(self, user: str, folder: str) -> Path:
        home = self.home(user)
        for path in (home, self.maildir_root(user)):
            if not path.exists():
                self._ensure_dir(path)
        path = self.folder_path(user, folder)
        if not path.exists():
            self._ensure_dir(path)
        for sub in ("cur", "new", "tmp"):
            if not (path / sub).exists():
                self._ensure_dir(path / sub)
        if path != self.maildir_root(user):
            marker = path / "maildirfolder"
            if not marker.exists():
                marker.touch()
                os.chown(marker, self._mail_uid, self._mail_gid)
        return path

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
        user = user or self.username
        path = self._ensure_folder(user, folder)
        info = _maildir_flag_suffix(flags)
        stamp = _timestamp(internaldate)
        uid, gid = self._mail_uid, self._mail_gid
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
                name = f"{base}Q{next(self._counter)}.{host},S={len(raw)}"
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

    def change_uidvalidity(self, user: str | None, folder: str = "INBOX") -> None:
        """Force a new UIDVALIDITY for a folder (as after a server-side mailbox rebuild).

        Deletes the folder's uidlist and indexes plus the mailbox-list index, so Dovecot
        renumbers the messages under a fresh UIDVALIDITY (it keeps a counter file in the Maildir
        root, so the new value is always larger). Log out every session of the user first.
        """
        user = user or self.username
        path = self._ensure_folder(user, folder)
        root = self.maildir_root(user)
        for directory in {path, root}:
            for entry in directory.iterdir():
                if entry.name == "dovecot-uidlist" or entry.name.startswith(
                    ("dovecot.index", "dovecot.list.index")
                ):
                    entry.unlink()

    def reset(self, user: str | None = None) -> None:
        """Empty the account: all messages gone, only default folders left (recreated on login).

        Removes the user's home from disk, so log out every session of the user first.
        """
        home = self.home(user)
        if home.exists():
            shutil.rmtree(home)

    def message_files(self, user: str | None, folder: str = "INBOX") -> list[Path]:
        """Message files of a folder on disk (for asserting on what the server really holds)."""
        path = self.folder_path(user, folder)
        return sorted(p for sub in ("new", "cur") for p in (path / sub).glob("*") if p.is_file())

    def log_text(self) -> str:
        """Dovecot's log, to attach to failure messages."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


# --------------------------------------------------------------------------------------------
# SMTP
# --------------------------------------------------------------------------------------------


@dataclass
class ReceivedMessage:
    """One message accepted by `SMTPServer`, as the envelope and raw bytes it arrived with."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    authenticated_as: str | None = None
    tls: bool = False


@dataclass
class _Failure:
    remaining: int
    code: int
    text: str
    at: str


class _Handler:
    """aiosmtpd handler: records accepted messages and injects scripted failures."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    def _maybe_fail(self, stage: str) -> str | None:
        with self.server._lock:
            failure = self.server._failure
            if failure is None or failure.at != stage or failure.remaining <= 0:
                return None
            failure.remaining -= 1
            if failure.remaining == 0:
                self.server._failure = None
            self.server.failed_attempts += 1
            return f"{failure.code} {failure.text}"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.server.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        failed = self._maybe_fail("mail")
        if failed:
            return failed
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        failed = self._maybe_fail("rcpt")
        if failed:
            return failed
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        failed = self._maybe_fail("data")
        if failed:
            return failed
        login = session.auth_data
        user = login.decode() if isinstance(login, bytes) else None
        received = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=bytes(envelope.original_content or envelope.content),
            authenticated_as=user,
            tls=session.ssl is not None or self.server.security == "ssl",
        )
        with self.server._lock:
            self.server.messages.append(received)
            self.server._received.notify_all()
        return "250 OK: queued"


@dataclass
class SMTPServer:
    """A real SMTP server (aiosmtpd) on a free localhost port, run in a background thread.

    `security`: "none" (plain; AUTH allowed without TLS -- tests only), "starttls" (STARTTLS
    offered; AUTH only after it) or "ssl" (implicit TLS). With `username`, AUTH PLAIN/LOGIN is
    required before MAIL.
    """

    security: str = "none"
    username: str | None = DEFAULT_USER
    password: str | None = DEFAULT_PASSWORD
    pki: TestPKI | None = None
    require_starttls: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[ReceivedMessage] = field(default_factory=list)
    failed_attempts: int = 0

    def __post_init__(self) -> None:
        if self.security not in ("none", "starttls", "ssl"):
            raise ValueError(f"security must be none, starttls or ssl, not {self.security!r}")
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._failure: _Failure | None = None
        self._controller: Any = None
        self._tmpdir: str | None = None

    @property
    def ca_file(self) -> str:
        if self.pki is None:
            raise RuntimeError("SMTPServer is not started")
        return str(self.pki.ca_file)

    @property
    def use_ssl(self) -> bool:
        return self.security == "ssl"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (
            auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    def start(self) -> Self:
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            return self
        if self.pki is None:
            self._tmpdir = tempfile.mkdtemp(prefix="mailtriage-smtp-")
            self.pki = TestPKI(self._tmpdir)
        kwargs: dict[str, Any] = {}
        if self.security == "starttls":
            kwargs["tls_context"] = self.pki.server_context()
            kwargs["require_starttls"] = self.require_starttls
            kwargs["auth_require_tls"] = True
        else:
            # Implicit TLS never sets aiosmtpd's STARTTLS state, so it must not demand it.
            kwargs["auth_require_tls"] = False
        if self.username is not None:
            # AUTH is enforced in the handler's MAIL hook rather than with aiosmtpd's
            # auth_required, which warns on every connection when AUTH may go without TLS.
            kwargs["authenticator"] = self._authenticate
        ssl_context = self.pki.server_context() if self.security == "ssl" else None
        last_error: Exception | None = None
        for _attempt in range(3):
            port = self.port or free_port(self.host)
            controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=port,
                ssl_context=ssl_context,
                server_hostname="mailtriage-test-smtp",
                ready_timeout=10,
                **kwargs,
            )
            try:
                controller.start()
            except Exception as exc:  # port stolen between probe and bind: try another
                last_error = exc
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"SMTP server did not start: {last_error}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------

    def fail_next(
        self, count: int = 1, code: int = 451, text: str = "4.3.0 Try again later", at: str = "data"
    ) -> None:
        """Reject the next `count` transactions with `code` at MAIL, RCPT or DATA (`at`)."""
        if at not in ("mail", "rcpt", "data"):
            raise ValueError("at must be mail, rcpt or data")
        with self._lock:
            self._failure = _Failure(count, code, text, at) if count > 0 else None

    def clear(self) -> None:
        """Forget received messages and pending failures (for sharing one server across tests)."""
        with self._lock:
            self.messages.clear()
            self._failure = None
            self.failed_attempts = 0

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; returns a snapshot."""
        with self._received:
            self._received.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def smtp_client(self, login: bool = True) -> Any:
        """An `smtplib` client connected (and TLS-upgraded/logged in) as configured."""
        import smtplib

        ctx = self.pki.client_context() if self.pki else None
        client: smtplib.SMTP
        if self.security == "ssl":
            client = smtplib.SMTP_SSL(self.host, self.port, context=ctx, timeout=10)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=10)
            if self.security == "starttls":
                client.starttls(context=ctx)
        if login and self.username is not None and self.password is not None:
            client.login(self.username, self.password)
        return client
