"""A tiny, real SMTP server that misbehaves on purpose, for tests.

Why it exists: aiosmtpd (used by ``support.smtp.SMTPServer``) always answers after ``DATA``. Some
tests need a server that reads and keeps the whole message but never says so -- it drops the
connection instead of sending the final ``250``, or answers only after the client has given
up -- so the client cannot know whether the message was delivered. aiosmtpd cannot be made to
do that, so this module speaks just enough SMTP for :mod:`smtplib` over plain sockets (no TLS,
no AUTH), with one thread per connection, on 127.0.0.1 and a free port.

Modes (``FaultySMTP(mode=...)``):

* ``"ok"``: answers ``250 OK queued`` after the final dot.
* ``"close_after_data"``: reads the whole message through the final ``.``, records it in
  :attr:`FaultySMTP.received`, then closes the connection without any reply.
* ``"slow_reply"``: after the final dot waits ``reply_delay`` seconds (cut short by
  :meth:`FaultySMTP.stop`), then answers ``250 OK queued``.
* ``"cut_reply"``: after the final dot sends only the first ``cut_at`` bytes of
  ``250 OK queued`` (no line end), then closes: a reply broken off in transit.

``refuse`` lists RCPT TO addresses (case-insensitive) answered
``{refuse_code} 5.1.1 <addr>: Recipient address rejected``, in every mode.

Every socket has a timeout, so no thread can hang forever, and :meth:`FaultySMTP.stop` closes
every socket and joins every thread. Plain Python (standard library only), no pytest.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from support.net import LOCALHOST, listen_ephemeral, port_of

HOST = LOCALHOST
MODES = ("ok", "close_after_data", "slow_reply", "cut_reply")
SOCKET_TIMEOUT = 30.0  # no read or write on a connection blocks longer than this
ACCEPT_POLL = 0.05  # how often the accept loop checks for stop()
JOIN_TIMEOUT = 2.0
MAX_LINE = 65536
MAX_SIZE = 10_240_000

_server_ids = itertools.count(1)


@dataclass
class Received:
    """One message whose final ``.`` the server read completely."""

    mail_from: str
    rcpt_tos: list[str] = field(default_factory=list)
    raw: bytes = b""  # the message as sent, dot-stuffing undone, CRLF line ends


class _Closed(Exception):
    """The connection ended (EOF, QUIT, stop(), or a fault mode closing it)."""


def _address(arg: str) -> str:
    """``<a@b> SIZE=12`` -> ``a@b``; ``a@b`` -> ``a@b``; ``<>`` -> ``""``."""
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        return arg[1:end] if end != -1 else arg[1:]
    return arg.split(None, 1)[0] if arg else ""


class FaultySMTP:
    """Context manager: ``with FaultySMTP(mode="close_after_data") as server: ...``.

    The server listens as soon as it is created (``host``/``port`` are set); leaving the
    ``with`` block (or calling :meth:`stop`) shuts it down.
    """

    def __init__(
        self,
        mode: str = "ok",
        *,
        reply_delay: float = 0.0,
        refuse: Iterable[str] = (),
        refuse_code: int = 550,
        cut_at: int = 1,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.reply_delay = reply_delay
        self.refuse = {addr.lower() for addr in refuse}
        self.refuse_code = refuse_code
        self.cut_at = cut_at

        self.received: list[Received] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._name = f"FaultySMTP-{next(_server_ids)}"

        self._listener = listen_ephemeral(HOST, backlog=16, timeout=ACCEPT_POLL)
        self.host: str = HOST
        self.port: int = port_of(self._listener)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"{self._name}-accept", daemon=True
        )
        self._acceptor.start()

    # -- public API ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least ``count`` messages were received; return a copy of them.

        Raises :class:`TimeoutError` if that does not happen within ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(
                    f"{self._name}: {len(self.received)} message(s) after {timeout}s, "
                    f"wanted {count}"
                )
            return list(self.received)

    def stop(self) -> None:
        """Close the listening socket and every open connection; join every thread."""
        self._stopping.set()
        self._acceptor.join(JOIN_TIMEOUT)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            # shutdown() wakes a thread blocked in recv(); the thread closes its own socket.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        for conn in conns:
            conn.close()
        with self._changed:
            self._changed.notify_all()

    # -- internals ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(SOCKET_TIMEOUT)
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                self.connections += 1
                number = self.connections
                self._conns.add(conn)
                thread = threading.Thread(
                    target=self._serve,
                    args=(conn,),
                    name=f"{self._name}-conn-{number}",
                    daemon=True,
                )
                self._threads.append(thread)
                self._changed.notify_all()
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn.makefile("rb") as reader:
                _Session(self, conn, reader).run()
        except (_Closed, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _record(self, message: Received) -> None:
        with self._changed:
            self.received.append(message)
            self._changed.notify_all()


class _Session:
    """The SMTP dialogue on one connection."""

    def __init__(self, server: FaultySMTP, conn: socket.socket, reader: io.BufferedReader) -> None:
        self.server = server
        self.conn = conn
        self.reader = reader
        self.mail_from: str | None = None
        self.rcpt_tos: list[str] = []

    def send(self, line: str) -> None:
        self.conn.sendall(line.encode("utf-8", "replace") + b"\r\n")

    def readline(self) -> bytes:
        line = self.reader.readline(MAX_LINE)
        if not line or self.server._stopping.is_set():
            raise _Closed
        return line

    def reset(self) -> None:
        self.mail_from = None
        self.rcpt_tos = []

    def run(self) -> None:
        self.send(f"220 {HOST} FaultySMTP ready")
        while True:
            text = self.readline().decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.reset()
                self.send(f"250-{HOST} Hello {arg.strip() or 'there'}")
                self.send("250-8BITMIME")
                self.send(f"250 SIZE {MAX_SIZE}")
            elif verb == "HELO":
                self.reset()
                self.send(f"250 {HOST}")
            elif verb == "MAIL":
                self.mail(arg)
            elif verb == "RCPT":
                self.rcpt(arg)
            elif verb == "DATA":
                self.data()
            elif verb == "RSET":
                self.reset()
                self.send("250 OK")
            elif verb == "NOOP":
                self.send("250 OK")
            elif verb == "QUIT":
                self.send("221 Bye")
                raise _Closed
            else:
                self.send("502 5.5.2 Error: command not recognized")

    def mail(self, arg: str) -> None:
        if not arg.upper().startswith("FROM:"):
            self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
        elif self.mail_from is not None:
            self.send("503 5.5.1 Error: nested MAIL command")
        else:
            self.mail_from = _address(arg[5:])
            self.rcpt_tos = []
            self.send("250 OK")

    def rcpt(self, arg: str) -> None:
        if self.mail_from is None:
            self.send("503 5.5.1 Error: need MAIL command")
            return
        if not arg.upper().startswith("TO:"):
            self.send("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        addr = _address(arg[3:])
        if addr.lower() in self.server.refuse:
            self.send(f"{self.server.refuse_code} 5.1.1 <{addr}>: Recipient address rejected")
            return
        self.rcpt_tos.append(addr)
        self.send("250 OK")

    def data(self) -> None:
        if self.mail_from is None or not self.rcpt_tos:
            self.send("503 5.5.1 Error: need RCPT command")
            return
        self.send("354 End data with <CR><LF>.<CR><LF>")
        lines: list[bytes] = []
        at_line_start = True  # False while reading the rest of a line longer than MAX_LINE
        while True:
            line = self.readline()  # EOF before the final dot: nothing is recorded
            ended = line.endswith(b"\n")
            body = line[:-2] if line.endswith(b"\r\n") else line[:-1] if ended else line
            if at_line_start:
                if ended and body == b".":
                    break
                if body.startswith(b"."):
                    body = body[1:]
            lines.append(body + b"\r\n" if ended else body)
            at_line_start = ended
        server = self.server
        server._record(Received(self.mail_from, list(self.rcpt_tos), b"".join(lines)))
        self.reset()
        if server.mode == "close_after_data":
            raise _Closed  # _serve closes the socket; the client never gets a reply
        if server.mode == "slow_reply" and server._stopping.wait(server.reply_delay):
            raise _Closed
        if server.mode == "cut_reply":
            self.conn.sendall(b"250 OK queued"[:server.cut_at])
            raise _Closed
        self.send("250 OK queued")
