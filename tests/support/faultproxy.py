"""A small threaded TCP proxy that breaks connections on purpose, for reliability tests.

It listens on an ephemeral port (127.0.0.1 unless told otherwise) and forwards to a real
server.  What happens to each accepted connection is decided when it is accepted: the next
fault queued with :meth:`FaultProxy.schedule` is used, else :attr:`FaultProxy.default`.

* :class:`Pass` forwards both ways untouched.
* :class:`Cut` forwards exactly ``after`` bytes server->client, then closes both sides (the
  client sees EOF or a reset in the middle of whatever the server was saying).
* :class:`Stall` forwards ``after`` bytes server->client, then forwards nothing more in either
  direction but keeps both sockets open: the client has to notice by its own timeout.
* :class:`Refuse` closes the connection right after accepting it.
* :class:`StripCapability` forwards everything but one capability, which it removes from the
  greeting and every CAPABILITY list (a downgrade, as by a middlebox that strips STARTTLS).

Everything runs in daemon threads; :meth:`FaultProxy.stop` closes every socket and joins every
thread, so no test leaks threads or file descriptors.  Plain Python, no pytest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import socket
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from support.mailfactory import NOW, mail
from support.net import listen_ephemeral, port_of

CHUNK = 16384


@dataclass(frozen=True)
class Pass:
    """Forward everything."""


@dataclass(frozen=True)
class Cut:
    """Close the connection after ``after`` bytes went from the server to the client."""

    after: int


@dataclass(frozen=True)
class Stall:
    """Stop forwarding (both ways) after ``after`` server->client bytes; keep sockets open."""

    after: int = 0


@dataclass(frozen=True)
class Refuse:
    """Close the connection as soon as it is accepted."""


@dataclass(frozen=True)
class StripCapability:
    """Forward everything, with ``name`` taken out of every capability list the server sends."""

    name: str = "STARTTLS"

    def rewrite(self, line: bytes) -> bytes:
        if b"CAPABILITY" not in line.upper():
            return line
        return re.sub(rb" " + re.escape(self.name.encode()) + rb"(?=[ \]\r])", b"", line,
                      flags=re.IGNORECASE)


Fault = Pass | Cut | Stall | Refuse | StripCapability


@dataclass
class ConnectionRecord:
    """What happened on one accepted connection (for assertions)."""

    number: int
    fault: Fault
    to_client: int = 0  # bytes forwarded server -> client
    to_server: int = 0  # bytes forwarded client -> server
    transcript: bytearray = field(default_factory=bytearray)  # server -> client, if recorded
    faulted: bool = False  # the fault actually fired (a cut or stall point was reached)


class _Connection:
    def __init__(self, proxy: FaultProxy, client: socket.socket, record: ConnectionRecord):
        self.proxy = proxy
        self.client = client
        self.record = record
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.partial = b""  # StripCapability: a server line not complete yet
        self.tls = False  # StripCapability: the client asked for STARTTLS; bytes from now on

    def close(self) -> None:
        with self.lock:
            if self.closed.is_set():
                return
            self.closed.set()
            for sock in (self.client, self.upstream):
                if sock is None:
                    continue
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def start(self) -> None:
        fault = self.record.fault
        if isinstance(fault, Refuse):
            self.record.faulted = True
            self.close()
            return
        try:
            self.upstream = socket.create_connection(self.proxy.target, timeout=10)
            self.upstream.settimeout(None)
        except OSError:
            self.close()
            return
        self.proxy._spawn(self._client_to_server)
        self.proxy._spawn(self._server_to_client)

    def _stalled(self) -> bool:
        return isinstance(self.record.fault, Stall) and self.record.faulted

    def _client_to_server(self) -> None:
        assert self.upstream is not None
        try:
            while not self.closed.is_set():
                data = self.client.recv(CHUNK)
                if not data:
                    break
                if self._stalled():
                    continue  # swallow: a stalled server answers nothing
                if b"STARTTLS" in data.upper():
                    self.tls = True
                self.upstream.sendall(data)
                self.record.to_server += len(data)
        except OSError:
            pass
        self.close()

    def _server_to_client(self) -> None:
        assert self.upstream is not None
        fault = self.record.fault
        limit = fault.after if isinstance(fault, Cut | Stall) else None
        try:
            while not self.closed.is_set():
                if limit is not None and self.record.to_client >= limit:
                    self.record.faulted = True
                    if isinstance(fault, Stall):
                        # Keep both sockets open until the client gives up (or stop()).
                        self.closed.wait()
                    break
                data = self.upstream.recv(CHUNK)
                if not data:
                    break
                if isinstance(fault, StripCapability):
                    data = self._rewrite(fault, data)
                if limit is not None:
                    data = data[: limit - self.record.to_client]
                self.client.sendall(data)
                self.record.to_client += len(data)
                if self.proxy.record_transcript:
                    self.record.transcript += data
        except OSError:
            pass
        self.close()


    def _rewrite(self, fault: StripCapability, data: bytes) -> bytes:
        """Whole lines, rewritten; a partial one waits for the rest.  After STARTTLS the
        bytes are TLS records: passed on as they come."""
        if self.tls:
            data, self.partial = self.partial + data, b""
            return data
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        out = b"".join(fault.rewrite(line + b"\n") for line in lines)
        if out != b"".join(line + b"\n" for line in lines):
            self.record.faulted = True
        return out


class FaultProxy:
    """A TCP proxy in front of ``target`` that injects faults connection by connection."""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
                 record_transcript: bool = False) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.host = listen_host
        self.port = 0
        self.default: Fault = Pass()
        self.record_transcript = record_transcript
        self.connections: list[ConnectionRecord] = []
        self._queue: deque[Fault] = deque()
        self._live: list[_Connection] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()

    # -- control ---------------------------------------------------------------------------

    def schedule(self, *faults: Fault) -> None:
        """Use these faults for the next connections, in order; then :attr:`default` again."""
        with self._lock:
            self._queue.extend(faults)

    def reset(self, default: Fault | None = None) -> None:
        """Forget queued faults and recorded connections; close live connections."""
        with self._lock:
            self._queue.clear()
            self.connections = []
            live, self._live = self._live, []
            if default is not None:
                self.default = default
        for conn in live:
            conn.close()

    @property
    def accepted(self) -> int:
        return len(self.connections)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        listener = listen_ephemeral(self.listen_host, backlog=32, reuse_addr=True)
        self._listener = listener
        self.port = port_of(listener)
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            live, self._live = self._live, []
        for conn in live:
            conn.close()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]

    @property
    def alive_threads(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, target: object) -> None:
        thread = threading.Thread(target=target, daemon=True,  # type: ignore[arg-type]
                                  name=f"faultproxy-{self.port}")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            if self._stopping.is_set():
                client.close()
                return
            with self._lock:
                fault = self._queue.popleft() if self._queue else self.default
                record = ConnectionRecord(number=len(self.connections) + 1, fault=fault)
                self.connections.append(record)
                conn = _Connection(self, client, record)
                self._live = [c for c in self._live if not c.closed.is_set()]
                self._live.append(conn)
            conn.start()


# ------------------------------------------------------------------------------------------
# Helpers shared by the reliability tests: accounts seen through the proxy, corpora, and
# looking at a database.
# ------------------------------------------------------------------------------------------

PASSWORD_VAR = "TEST_IMAP_PASSWORD"


@dataclass
class Endpoint:
    """What write_config needs (host, port, username): an account seen through the proxy."""

    host: str
    port: int
    username: str
    password: str


def via(proxy: FaultProxy, account: Any) -> Endpoint:
    return Endpoint(proxy.host, proxy.port, account.username, account.password)


# -- corpora --------------------------------------------------------------------------------

CUSTOMERS = ["ann@alpha.test", "bob@beta.test", "cat@gamma.test", "dan@delta.test",
             "eve@epsilon.test", "fay@zeta.test"]


def conversation_corpus(threads: int, per_thread: int,
                        start: dt.datetime | None = None) -> dict[str, list[tuple[bytes, Any]]]:
    """Support conversations: customer mail in INBOX, our answers in Sent.

    Most replies carry In-Reply-To/References; every seventh thread's customer follow-ups
    carry none (a bare "Re: subject" joining by subject), so both threading rules run.
    Returns ``{folder: [(raw, internaldate), ...]}`` in delivery order.
    """
    start = start or NOW - dt.timedelta(days=5)
    out: dict[str, list[tuple[bytes, Any]]] = {"INBOX": [], "Sent": []}
    for t in range(threads):
        customer = CUSTOMERS[t % len(CUSTOMERS)]
        subject = f"Case {t}: export fails"
        ids: list[str] = []
        bare = t % 7 == 3
        for n in range(per_thread):
            at = start + dt.timedelta(hours=t * 2 + n, minutes=n)
            ours = n % 2 == 1
            mid = f"t{t}.m{n}@{'example.com' if ours else customer.split('@')[1]}"
            headers_ok = ids and not (bare and not ours)
            raw = mail(
                subject=subject if n == 0 else f"Re: {subject}",
                frm="Support <support@example.com>" if ours else f"Customer {t} <{customer}>",
                to=customer if ours else "support@example.com",
                msgid=mid, date=at,
                in_reply_to=ids[-1] if headers_ok else None,
                references=list(ids[-5:]) if headers_ok else None,
                body=f"message {n} of case {t}\n" + "details " * 40,
            )
            ids.append(mid)
            out["Sent" if ours else "INBOX"].append((raw, at))
    return out


def deliver(account: Any, corpus: dict[str, list[tuple[bytes, Any]]]) -> int:
    """Write the corpus straight into the account's Maildir (fast); returns the count."""
    total = 0
    for folder, items in corpus.items():
        for raw, at in items:  # one call each: INTERNALDATE (mtime) per message
            total += account.deliver_maildir(folder, [raw], internaldate=at)
    return total


# -- looking at a database ------------------------------------------------------------------


def connect(db_path: Path | str) -> sqlite3.Connection:
    return sqlite3.connect(str(db_path), timeout=30)


def snapshot(db_path: Path | str) -> dict[str, Any]:
    """Everything a sync decides, in a form two databases can be compared by.

    Row ids and first_seen_at differ between two syncs of the same mailbox; what must not
    differ: which message sits at which (folder, UID), which messages form a thread (the
    partition of message keys), the derived thread facts, and the folders' sync state.
    """
    conn = connect(db_path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if not {"locations", "threads", "folders"} <= tables:  # killed before migrating
            return {"locations": {}, "keys": [], "partition": set(), "threads": {},
                    "folders": {}}
        locations = {
            (folder, uid): key for folder, uid, key in conn.execute(
                "SELECT l.folder, l.uid, m.key FROM locations l JOIN messages m "
                "ON m.id = l.message")
        }
        keys = [r[0] for r in conn.execute("SELECT key FROM messages")]
        groups: dict[int, set[str]] = {}
        for tid, key in conn.execute("SELECT thread_id, key FROM messages"):
            groups.setdefault(tid, set()).add(key)
        facts = {}
        for row in conn.execute(
                "SELECT t.id, t.message_count, t.first_at, t.last_at, t.waiting_since, "
                "t.last_sender, t.automated, t.dirty, s.state FROM threads t "
                "LEFT JOIN thread_state s ON s.thread_id = t.id"):
            facts[frozenset(groups.get(row[0], ()))] = row[1:]
        folders = {r[0]: r[1:] for r in conn.execute(
            "SELECT folder, uidvalidity, last_uid, server_count FROM folders")}
    finally:
        conn.close()
    return {
        "locations": locations,
        "keys": sorted(keys),
        "partition": {frozenset(g) for g in groups.values()},
        "threads": facts,
        "folders": folders,
    }


def assert_sound(db_path: Path | str) -> None:
    """The database is intact and its sync state never runs ahead of what it stored.

    ``folders.last_uid`` is the resume point: every UID at or below it must be stored, or a
    resumed sync would skip (lose) the missing ones.  The corpora here have UIDs 1..N.
    """
    conn = connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "folders" not in tables:
            return  # killed before the first migration committed
        for folder, last_uid in conn.execute("SELECT folder, last_uid FROM folders"):
            stored = {r[0] for r in conn.execute(
                "SELECT uid FROM locations WHERE folder = ?", [folder])}
            missing = set(range(1, (last_uid or 0) + 1)) - stored
            assert not missing, f"{folder}: last_uid {last_uid} but UIDs {sorted(missing)[:5]}"
        orphans = conn.execute(
            "SELECT COUNT(*) FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM locations l WHERE l.message = m.id)").fetchone()[0]
        assert orphans == 0, "messages stored without a location"
        unthreaded = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE thread_id IS NULL").fetchone()[0]
        assert unthreaded == 0
        doubled = conn.execute(
            "SELECT COUNT(*) FROM (SELECT key FROM messages GROUP BY key HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert doubled == 0
    finally:
        conn.close()
