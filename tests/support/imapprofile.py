"""An IMAP proxy that makes the test Dovecot look like a less capable server.

A :class:`Profile` names the capabilities a real provider does not offer; the proxy takes
them out of every capability list (greeting, ``CAPABILITY``, the tagged answer to LOGIN)
and answers ``BAD`` itself to any command that uses one of them, as such a server would,
so a client that ignores what was advertised fails the test.  ``select_modseq`` adds a
``HIGHESTMODSEQ`` to SELECT/EXAMINE answers without CONDSTORE, as Yahoo does.

Line-based with IMAP literals passed through untouched (``{n}`` in either direction).
Every thread is joined by :meth:`ReducedIMAP.stop`.  Plain Python, no pytest.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Self

from support.net import listen_ephemeral, port_of

# What a command looks like when it uses an extension (matched on the command line).
USES = {
    "CONDSTORE": rb"CHANGEDSINCE|\bMODSEQ\b|HIGHESTMODSEQ|\(CONDSTORE\)",
    "QRESYNC": rb"QRESYNC|VANISHED",
    "ENABLE": rb"^\S+ ENABLE\b",
    "MOVE": rb"^\S+ (UID )?MOVE\b",
    "UIDPLUS": rb"^\S+ UID EXPUNGE\b",
    "ESEARCH": rb"\bRETURN \((?!SPECIAL)",
    "SPECIAL-USE": rb"SPECIAL-USE",
    "ID": rb"^\S+ ID\b",
    "NAMESPACE": rb"^\S+ NAMESPACE\b",
    "IDLE": rb"^\S+ IDLE\b",
    "UNSELECT": rb"^\S+ UNSELECT\b",
    "X-GM-EXT-1": rb"X-GM-",
    "LIST-STATUS": rb"RETURN \(.*STATUS",
}


@dataclass(frozen=True)
class Profile:
    name: str
    hide: frozenset[str] = frozenset()
    keep_only: frozenset[str] | None = None  # hide everything else (a bare server)
    select_modseq: bool = False

    def hidden(self, capability: str) -> bool:
        cap = capability.upper()
        if self.keep_only is not None:
            return cap not in self.keep_only and not cap.startswith("AUTH=")
        return cap in self.hide


PROFILES = {
    # Microsoft 365: IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT
    # CHILDREN IDLE NAMESPACE LITERAL+: no CONDSTORE, QRESYNC, ENABLE or SPECIAL-USE.
    "microsoft": Profile("microsoft", keep_only=frozenset({
        "IMAP4REV1", "SASL-IR", "UIDPLUS", "MOVE", "ID", "UNSELECT", "CHILDREN", "IDLE",
        "NAMESPACE", "LITERAL+"})),
    # Gmail without its X-GM extension (no local server has it): CONDSTORE, no QRESYNC,
    # no SPECIAL-USE (LIST still flags \Sent).
    "gmail": Profile("gmail", hide=frozenset({"QRESYNC", "SPECIAL-USE"})),
    # Yahoo: no CONDSTORE, yet a HIGHESTMODSEQ in every SELECT answer.
    "yahoo": Profile("yahoo", hide=frozenset({"CONDSTORE", "QRESYNC", "ENABLE"}),
                     select_modseq=True),
    # RFC 3501 and nothing else.
    "bare": Profile("bare", keep_only=frozenset({"IMAP4REV1"})),
}

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_CAPS = re.compile(rb"(CAPABILITY )([^\]\r\n]*)", re.IGNORECASE)


@dataclass
class Seen:
    """What the proxy did, for assertions."""

    refused: list[bytes] = field(default_factory=list)  # command lines answered BAD
    connections: int = 0


class _Link:
    def __init__(self, proxy: ReducedIMAP, client: socket.socket) -> None:
        self.proxy, self.client = proxy, client
        self.upstream = socket.create_connection(proxy.target, timeout=10)
        self.upstream.settimeout(None)
        self.to_client = threading.Lock()
        self.selecting: set[bytes] = set()  # tags of SELECT/EXAMINE commands in flight

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def send_client(self, data: bytes) -> None:
        with self.to_client:
            self.client.sendall(data)

    def client_side(self) -> None:
        profile, refusing = self.proxy.profile, self.proxy.refusing
        try:
            for line, literal in _segments(self.client):
                command = line.rstrip(b"\r\n")
                answer = next((a for p, a in self.proxy.answers if p.search(command)), None)
                if literal is None and answer is not None:
                    self.send_client(command.split(b" ", 1)[0] + b" " + answer + b"\r\n")
                    continue
                if literal is None and refusing and refusing.search(command.upper()):
                    self.proxy.seen.refused.append(command)
                    tag = command.split(b" ", 1)[0]
                    self.send_client(tag + b" BAD Command not supported by this server\r\n")
                    continue
                if profile.select_modseq and re.match(rb"^\S+ (SELECT|EXAMINE) ",
                                                      command.upper()):
                    self.selecting.add(command.split(b" ", 1)[0])
                self.upstream.sendall(line + (literal or b""))
        except OSError:
            pass
        self.close()

    def server_side(self) -> None:
        try:
            for line, literal in _segments(self.upstream):
                if literal is None and b"CAPABILITY" in line.upper():
                    line = _CAPS.sub(lambda m: m.group(1) + self._kept(m.group(2)), line)
                tag = line.split(b" ", 1)[0]
                if literal is None and tag in self.selecting:
                    self.selecting.discard(tag)
                    self.send_client(b"* OK [HIGHESTMODSEQ 4711] Highest\r\n")
                self.send_client(line + (literal or b""))
        except OSError:
            pass
        self.close()

    def _kept(self, caps: bytes) -> bytes:
        return b" ".join(c for c in caps.split(b" ")
                         if c and not self.proxy.profile.hidden(c.decode("ascii", "replace")))


def _segments(sock: socket.socket) -> Iterator[tuple[bytes, bytes | None]]:
    """(line, literal or None) as they arrive: a line ending in {n} brings n raw bytes."""
    buf = b""
    while True:
        end = buf.find(b"\r\n")
        if end < 0:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            continue
        line, buf = buf[:end + 2], buf[end + 2:]
        m = _LITERAL.search(line)
        if not m:
            yield line, None
            continue
        size = int(m.group(1))
        while len(buf) < size:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
        yield line, buf[:size]
        buf = buf[size:]


class ReducedIMAP:
    """A proxy on 127.0.0.1 in front of ``target`` that serves ``profile``."""

    def __init__(self, target_host: str, target_port: int, profile: Profile,
                 answers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        """``answers``: (command regex, answer) pairs the proxy gives itself, e.g.
        ``(rb"UID FETCH", b"NO [OVERQUOTA] ...")`` for a server that limits us."""
        self.target = (target_host, target_port)
        self.profile = profile
        self.answers = [(re.compile(p, re.IGNORECASE), a) for p, a in answers]
        hidden = [USES[c] for c in USES if profile.hidden(c)]
        self.refusing = re.compile(b"|".join(hidden)) if hidden else None
        self.seen = Seen()
        self.host, self.port = "127.0.0.1", 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._links: list[_Link] = []
        self._stopping = threading.Event()

    def start(self) -> Self:
        self._listener = listen_ephemeral(self.host, backlog=16, reuse_addr=True)
        self._listener.settimeout(0.05)
        self.port = port_of(self._listener)
        self._spawn(self._accept)
        return self

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self.seen.connections += 1
            link = _Link(self, client)
            self._links.append(link)
            self._spawn(link.client_side)
            self._spawn(link.server_side)

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        for link in self._links:
            link.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
