"""The parse worker as a process: what it answers, and how it ends when the sync goes away."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

from mailtriage import WORKER_VARIABLE
from mailtriage.parse import parse_message
from mailtriage.parseworker import ParseWorker

from support.mailfactory import mail


def test_the_worker_answers_what_parse_message_would():
    raws = [mail(msgid=f"m{i}@cust.test", subject=f"Case {i}") for i in range(3)]
    batch = [(raw.partition(b"\r\n\r\n")[0] + b"\r\n\r\n", raw.partition(b"\r\n\r\n")[2])
             for raw in raws]
    worker = ParseWorker()
    try:
        worker.submit(batch[:2])
        worker.submit(batch[2:])
        answered = worker.answer() + worker.answer()
    finally:
        worker.close()
    assert answered == [parse_message(head, body) for head, body in batch]
    assert worker.proc.returncode == 0


def test_a_worker_whose_sync_stopped_reading_ends_quietly():
    """Its reader thread is still blocked on stdin when it stops: a normal interpreter exit
    then aborted with "Fatal Python error" on the stderr it shares with the sync, which cron
    mails (the chaos soak, seed 12)."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), WORKER_VARIABLE: "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mailtriage.parseworker"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the sync is gone: the answer meets a broken pipe
    pickle.dump([(b"Subject: x\r\n\r\n", b"hi")], proc.stdin)
    proc.stdin.flush()
    err = proc.stderr.read()
    try:
        assert proc.wait(timeout=30) == 0, err.decode()
        assert err == b""
    finally:
        proc.stdin.close()
