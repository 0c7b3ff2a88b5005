"""What the test mail servers run as a foreground master process have in common (Dovecot,
Cyrus): a temp dir, waiting until they listen, stopping the master, ``with`` support, and
reading the UID out of an APPEND answer.  Plain Python, no pytest."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from support.net import wait_for_port


class MasterProcess:
    """Base of a server class: subclasses set ``name``, define ``start`` and ``stop`` and
    say which ports mean "ready" (:meth:`ready_ports`)."""

    name = "the server"
    host = "127.0.0.1"
    directory: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def ready_ports(self) -> list[int]:
        raise NotImplementedError

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        """Whether the master came up listening on every ready port (False if it died)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if all(wait_for_port(self.host, port, 0.2) for port in self.ready_ports()):
                return True
        return False

    def _stop_master(self) -> None:
        """SIGTERM the master, which stops its children before exiting; kill it after 10 s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _dir(self) -> Path:
        if self.directory is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.directory

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def append_uid(response: Any) -> int | None:
    """The UID from an APPEND response's ``[APPENDUID <uidvalidity> <uid>]``."""
    text = response.decode(errors="replace") if isinstance(response, bytes) else ""
    if text.startswith("[APPENDUID"):
        with contextlib.suppress(IndexError, ValueError):
            return int(text.split("]")[0].split()[2])
    return None
