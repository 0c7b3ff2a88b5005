"""The parse worker: a process of its own that turns message bytes into ParsedMessages.

It is a fresh interpreter (``python -m mailtriage.parseworker``), not a fork, started with an
environment that holds only the module search path (and a flag saying it is the worker):
the process that parses what strangers
wrote never holds a password, neither in its environment nor in memory copied from ours.
For the same reason its answers come back as JSON, never as pickles, which could run code in
the process that does hold the secrets.  Requests (lists of ``(header, body)`` bytes from us)
are pickles; answers come in the order asked.  A thread keeps reading requests while a batch
is parsed, so neither side can block the other on a full pipe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from . import WORKER_VARIABLE
from .parse import ParsedMessage, parse_message

FIELDS = [f.name for f in dataclasses.fields(ParsedMessage)]
DATE = FIELDS.index("date")
Request = Sequence[tuple[bytes, bytes | None]]


def _row(message: ParsedMessage) -> list[Any]:
    row = [getattr(message, name) for name in FIELDS]
    if message.date is not None:
        row[DATE] = message.date.isoformat()
    return row


def _message(row: list[Any]) -> ParsedMessage:
    if not isinstance(row, list) or len(row) != len(FIELDS):
        raise ValueError("the parse worker sent something that is not a message")
    if row[DATE] is not None:
        row[DATE] = dt.datetime.fromisoformat(row[DATE])
    return ParsedMessage(*row)


def encode_answer(messages: list[ParsedMessage]) -> bytes:
    return json.dumps([_row(m) for m in messages], separators=(",", ":")).encode() + b"\n"


def decode_answer(line: bytes) -> list[ParsedMessage]:
    return [_message(row) for row in json.loads(line)]


class ParseWorker:
    """The parent's side: ``submit`` a batch, ``answer`` the oldest one not yet answered."""

    def __init__(self) -> None:
        search_path = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailtriage.parseworker"],
            env={"PYTHONPATH": search_path, WORKER_VARIABLE: "1"},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)

    def submit(self, batch: Request) -> None:
        assert self.proc.stdin is not None
        pickle.dump(list(batch), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def answer(self) -> list[ParsedMessage]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the parse worker stopped (status {self.proc.poll()})")
        return decode_answer(line)

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _read_requests(stdin: IO[bytes], requests: queue.Queue[Request | None]) -> None:
    try:
        while True:
            requests.put(pickle.load(stdin))
    except EOFError:
        pass
    finally:
        requests.put(None)


def main() -> None:
    requests: queue.Queue[Request | None] = queue.Queue()
    threading.Thread(target=_read_requests, args=(sys.stdin.buffer, requests),
                     daemon=True).start()
    out = sys.stdout.buffer
    try:
        while (batch := requests.get()) is not None:
            out.write(encode_answer([parse_message(header, body) for header, body in batch]))
            out.flush()
    except BrokenPipeError:  # the sync stopped (killed, or failed): so do we, quietly
        pass
    # Not a normal interpreter exit: the reader thread may still be blocked in a read of
    # stdin, and finalising then aborts with "Fatal Python error: _enter_buffered_busy"
    # on the stderr we share with the sync (the chaos soak, seed 12, met it).
    os._exit(0)


if __name__ == "__main__":
    main()
