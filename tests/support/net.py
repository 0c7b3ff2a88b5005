"""Localhost plumbing shared by every test server: free ports, readiness, the default login."""

from __future__ import annotations

import socket
import time

LOCALHOST = "127.0.0.1"
# The account both test servers accept unless told otherwise.
DEFAULT_USER = "support@example.com"
DEFAULT_PASSWORD = "s3cret-pass"


def bind_ephemeral(host: str = LOCALHOST, *, reuse_addr: bool = False) -> socket.socket:
    """A TCP socket bound to a port the kernel picked on `host`; the caller closes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


def listen_ephemeral(
    host: str = LOCALHOST,
    backlog: int = 16,
    timeout: float | None = None,
    *,
    reuse_addr: bool = False,
) -> socket.socket:
    """A listening socket on a free port: no gap in which another process could take the port."""
    sock = bind_ephemeral(host, reuse_addr=reuse_addr)
    try:
        sock.listen(backlog)
        if timeout is not None:
            sock.settimeout(timeout)
    except OSError:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    """The port a bound socket got."""
    return int(sock.getsockname()[1])


def free_port(host: str = LOCALHOST) -> int:
    """Ask the kernel for an unused TCP port, so parallel runs never fight over fixed ports."""
    with bind_ephemeral(host) as sock:
        return port_of(sock)


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
