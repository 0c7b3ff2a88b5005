"""The fetch → parse → store pipeline of an initial or large sync.

Batch n+2 is fetched on a thread while a worker process parses n+1 and the main thread
stores n: each stage gets a core, and Python's GIL is shared by the two that are I/O.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from . import parse
from .mailstore import Parsed
from .parseworker import ParseWorker
from .source import Fetched, Source


class BatchParser:
    """Parses batches in a second process (parseworker.py), so parsing gets a core of its
    own: pure Python on a thread would only queue for the GIL behind the fetch and the
    SQLite writes.  Syncs of a single batch parse inline."""

    def __init__(self) -> None:
        self.worker = ParseWorker()
        self.submitted: collections.deque[list[Fetched]] = collections.deque()

    def submit(self, fetched: list[Fetched]) -> Callable[[], Parsed]:
        """Hand a batch over; the callable returns it parsed (call them in order)."""
        self.worker.submit([(f.header_bytes, f.body_prefix) for f in fetched])
        self.submitted.append(fetched)
        return self._next

    def _next(self) -> Parsed:
        return list(zip(self.submitted.popleft(), self.worker.answer(), strict=True))

    def close(self) -> None:
        self.worker.close()


class _Fetcher:
    """Fetches the batches in order on a thread of its own, two ahead at most."""

    def __init__(self, session: Source, batches: Sequence[Sequence[int]]):
        self.handoff: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, args=(session, batches),
                                       name="mailtriage-fetch", daemon=True)
        self.thread.start()

    def _work(self, session: Source, batches: Sequence[Sequence[int]]) -> None:
        try:
            for batch in batches:
                if self.stop.is_set():
                    return
                self.handoff.put((batch, session.fetch(batch)))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self.handoff.put(exc)
        else:
            self.handoff.put(None)

    def items(self) -> Iterator[tuple[Sequence[int], list[Fetched]] | BaseException]:
        """Each fetched batch, in order; a failure comes last, as a value."""
        while (item := self.handoff.get()) is not None:
            yield item
            if isinstance(item, BaseException):
                return

    def close(self) -> None:
        self.stop.set()
        while self.thread.is_alive():  # unblock a put() so the thread can end
            with contextlib.suppress(queue.Empty):
                self.handoff.get(timeout=0.1)
        self.thread.join()


def prefetch(session: Source, batches: Sequence[Sequence[int]]
             ) -> Iterator[tuple[Sequence[int], Parsed]]:
    """Fetch batch n+2 on a thread and parse n+1 in a process while batch n is stored.

    Errors from the fetching thread are re-raised here, after the batches before
    them were handed over (and committed) in order.
    """
    if len(batches) <= 1:
        for batch in batches:
            yield batch, parse_batch(session.fetch(batch))
        return
    parser = BatchParser()
    fetcher = _Fetcher(session, batches)
    pending: collections.deque[tuple[Sequence[int], Callable[[], Parsed]]] = \
        collections.deque()
    failure: BaseException | None = None
    try:
        for item in fetcher.items():
            if isinstance(item, BaseException):
                failure = item
                break
            pending.append((item[0], parser.submit(item[1])))
            if len(pending) > 1:
                batch, result = pending.popleft()
                yield batch, result()
        while pending:  # the last one, or what was fetched before a failure
            batch, result = pending.popleft()
            yield batch, result()
        if failure is not None:
            raise failure
    finally:
        fetcher.close()
        parser.close()


def parse_batch(fetched: Iterable[Fetched]) -> Parsed:
    return [(f, parse.parse_message(f.header_bytes, f.body_prefix)) for f in fetched]


