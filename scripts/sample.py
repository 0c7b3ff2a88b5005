"""A made-up support mailbox, so the tool can be tried and tested without an IMAP account.

``triage demo`` writes it to a Maildir and syncs from there; the tests use it as a workload
that holds every case the triage has to get right (overdue, waiting, auto-replies, bounces,
odd MIME, hostile subjects...).  Every case thread has a fixed subject (see
:data:`CASE_SUBJECTS`) so tests can find it; names, timings within a few minutes, filler
threads and Message-IDs come from ``random.Random(seed)``.  Nothing reads the clock or the
process state, so the same ``now`` and ``seed`` give byte-identical messages.

Standard library only: the demo must work on a bare install.
"""

from __future__ import annotations

import mailbox
import os
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from . import samplecases as talk
from . import samplemachines as machines
from .samplebuilder import MAILDIR_LETTERS, Builder, SampleMessage
from .samplecast import CASE_SUBJECTS

__all__ = [
    "CASE_SUBJECTS",
    "SampleMessage",
    "build_sample",
    "write_maildir",
    "write_mbox",
]


CASES = (talk.overdue, talk.open_case, talk.waiting, talk.teammate, talk.customer_again,
         talk.outlook, talk.subject_join, machines.auto_reply, machines.bounce,
         machines.newsletter, talk.follow_up, machines.html_only, machines.no_message_id,
         machines.injection, machines.attachment, machines.encodings, talk.filler)
"""Every case, in the order they draw from the random stream (the sample depends on it)."""


def build_sample(now: datetime, seed: int = 7) -> list[SampleMessage]:
    """The sample mailbox as of ``now`` (aware), oldest message first.

    Times are fixed relative to ``now`` (to the second), so tests can pin ``now`` and know
    exactly which threads are overdue under a 24h SLA.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("build_sample needs an aware datetime for now")
    b = Builder(now.astimezone(UTC).replace(microsecond=0), random.Random(seed))
    for case in CASES:
        case(b)
    return sorted(b.out, key=lambda m: m.date)


# ------------------------------------------------------------------------------------ writers


def _maildir_info(flags: Sequence[str]) -> str:
    return "2," + "".join(sorted(MAILDIR_LETTERS[f] for f in flags if f in MAILDIR_LETTERS))


def write_maildir(messages: list[SampleMessage], root: Path) -> None:
    """Write a Maildir++ tree (INBOX at ``root``, other folders at ``root/.Name``).

    Names depend only on each message's date and position, so writing the same sample twice
    replaces the files instead of duplicating them.  Files go through ``tmp/`` and are renamed
    into ``cur/``, as Maildir delivery requires, so a concurrent reader never sees half a file.
    """
    root = Path(root)
    for n, message in enumerate(messages, 1):
        if message.folder.upper() == "INBOX":
            folder = root
        else:
            folder = root / ("." + message.folder.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        if folder != root:
            (folder / "maildirfolder").touch()
        stamp = int(message.date.timestamp())
        name = f"{stamp}.{n}.sample:{_maildir_info(message.flags)}"
        tmp = folder / "tmp" / name.partition(":")[0]
        tmp.write_bytes(message.raw)
        target = folder / "cur" / name
        os.replace(tmp, target)
        os.utime(target, (stamp, stamp))
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def write_mbox(messages: list[SampleMessage], path: Path) -> None:
    """Write the INBOX messages to a fresh mbox file (replacing any old one).

    The From_ line and Status header come from each message, not the clock, so the file is
    as reproducible as the sample itself.
    """
    path = Path(path)
    path.unlink(missing_ok=True)
    box = mailbox.mbox(str(path), create=True)
    try:
        box.lock()
        for message in messages:
            if message.folder.upper() != "INBOX":
                continue
            entry = mailbox.mboxMessage(message.raw)
            entry.set_from("MAILER-DAEMON", message.date.astimezone(UTC).timetuple())
            status = ("R" if "\\Seen" in message.flags else "") + "O"
            status += "A" if "\\Answered" in message.flags else ""
            status += "F" if "\\Flagged" in message.flags else ""
            entry.set_flags(status)
            box.add(entry)
        box.flush()
    finally:
        box.unlock()
        box.close()
