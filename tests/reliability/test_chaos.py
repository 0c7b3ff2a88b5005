"""A chaos soak: `triage run` 200 times against random faults and kills while mail arrives.

Real parts only: the session's Dovecot behind a FaultProxy (connections cut at random byte
offsets, stalled, refused), the test SMTP server behind a second one, and every `triage run`
a process of its own, SIGKILLed or SIGTERMed at random moments.  Between runs a direct
(unproxied) IMAP client changes the mailbox as customers and teammates would: new
conversations, follow-ups (some without threading headers), teammates' replies in Sent,
flag changes, moves between INBOX and Archive, expunges.  Each run's `--now` is 10 to 60
minutes after the last (now and then the machine is "off" for hours), so the daily report
falls due on several simulated days.

Checked after every run (`Soak.check`): the database is sound against the server's UIDs; a
run that ended by itself ended in a documented way; one that exited 0 left the database
level with the server; one that no fault and no signal touched exited 0 and said nothing.
At the end, one clean `triage sync` into the soaked database must give what a clean sync of
the final mailbox into a fresh database gives (`final_checks`), and what the SMTP server received
must show no acknowledgement delivered twice and the report once per simulated day
(`check_acks`, `check_reports`).  A soak reports every violation it meets, not only the
first: each is noted with its run and the test fails at the end with all of them.

Seeded (`SEED`, or CHAOS_SEED in the environment to try another); bounded: the loop stops
itself after `BUDGET` seconds, however many runs it reached.  The figures are printed
(`-s`) and recorded in tests/reliability/README.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import functools
import itertools
import json
import os
import random
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from support.dovecot import Account
from support.faultproxy import (
    PASSWORD_VAR,
    Cut,
    Fault,
    FaultProxy,
    Pass,
    Refuse,
    Stall,
    connect,
    snapshot,
    via,
)
from support.mailfactory import NOW, mail, write_config
from support.smtp import ReceivedMessage, SMTPServer

SEED = int(os.environ.get("CHAOS_SEED", "20261124"))
RUNS = 200
BUDGET = 120.0  # seconds for the run loop; it stops itself after, whatever it reached
RUN_TIMEOUT = 30.0  # a run that takes longer than this is hung: a failure
KILL_RATE = 0.3  # share of runs sent a signal at a random moment
BACKOFF_SCALE = 0.05  # sync's 2 s / 4 s retry pauses become 0.1 s / 0.2 s (ZYGOTE)

SMTP_PASSWORD_VAR = "TEST_SMTP_PASSWORD"
TEAM = "support@example.com"
REPORT_TO = "lead@example.com"
ACK_TEMPLATE = "sorry"
REPORT_AT = dt.time(8)  # UTC (report.timezone's default)
PER_SENDER = dt.timedelta(hours=24)  # auto_ack.per_sender's default
TRIAGED = ("INBOX", "Archive")  # imap.folders; Sent is synced too, as the sent folder
FOLDERS = (*TRIAGED, "Sent")
TOPICS = ("export fails", "cannot log in", "invoice wrong", "app crashes", "sync is slow")

# `triage` without Python's start-up (0.4 s of CPU, most of a run here): a process that has
# imported what a run needs forks one child per command.  Each child is a process of its
# own running the real CLI -- its own pid, signals, exit status and output; only the imports
# happened before the fork.  The one change to the product: sync's retry pauses are scaled
# down, as the clock (--now) is, or 200 runs would sleep through most of their minutes.
ZYGOTE = f"""
import json, os, sys, time
import mailtriage.cli.run, mailtriage.cli.sync, mailtriage.compose, mailtriage.reportmail
import mailtriage.sync
from mailtriage.cli import cli
mailtriage.sync.sync.__kwdefaults__["sleep"] = lambda s: time.sleep(s * {BACKOFF_SCALE})

def child(argv, output):
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sys.argv = ["triage", *argv]
    cli.main(args=argv, prog_name="triage")  # exits (or raises) as `triage` would
    sys.exit(0)

print("ready", flush=True)
for line in iter(sys.stdin.readline, ""):
    pid = os.fork()
    if pid == 0:
        child(*json.loads(line))
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""

Flags = dict[str, dict[int, frozenset[str]]]  # folder -> UID -> flags
T = TypeVar("T")


# -- the mailbox, changed from outside ------------------------------------------------------


@dataclass
class Conversation:
    """One customer's case, as the mailbox builder remembers it: the ids to reply to."""

    subject: str
    customer: str  # "Name <address>"
    ids: list[str] = field(default_factory=list)


def address(person: str) -> str:
    """The address in "Name <address>"."""
    return person.rpartition("<")[2].rstrip(">")


class Churn:
    """What happens to the mailbox between two runs, through a direct IMAP connection.

    Conversations never reference each other, so no two threads ever merge and "one
    acknowledgement per thread" can be checked on the outbox's thread ids.
    """

    def __init__(self, account: Account, rng: random.Random) -> None:
        self.imap = account.client()
        if not self.imap.folder_exists("Archive"):
            self.imap.create_folder("Archive")
        self.rng = rng
        self.conversations: list[Conversation] = []
        self.done: Counter[str] = Counter()
        self.serial = itertools.count(1)
        self.expunged: set[str] = set()  # Message-IDs: the product keeps their rows
        self.moved: set[str] = set()  # between two folders' syncs, briefly nowhere

    def close(self) -> None:
        self.imap.logout()

    def backlog(self, until: dt.datetime, count: int = 24) -> None:
        """``count`` conversations over the 4 days before ``until``: some answered, some
        followed up, the newest inside auto_ack's 3-day window."""
        for n in range(count):
            at = until - dt.timedelta(hours=96 * (count - n) / count)
            self.customer_mail(at, new=True)
            if self.rng.random() < 0.5:
                self.team_reply(at + dt.timedelta(hours=1))
            if self.rng.random() < 0.3:
                self.customer_mail(at + dt.timedelta(hours=2), new=False)

    def between(self, start: dt.datetime, end: dt.datetime) -> None:
        """Between two runs' clocks: 0-3 customer mails, maybe a teammate's reply, maybe a
        flag change, a move and an expunge of random messages in INBOX and Archive."""
        rng = self.rng
        moments = sorted(start + (end - start) * rng.random()
                         for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 3))))
        for at in moments:
            self.customer_mail(at, new=rng.random() < 0.45)
        if rng.random() < 0.15:
            self.team_reply(end - (end - start) * rng.random())
        for action, rate in ((self.flag_change, 0.35), (self.move, 0.2), (self.expunge, 0.12)):
            if rng.random() < rate:
                action()

    def customer_mail(self, at: dt.datetime, *, new: bool) -> None:
        """A new conversation, or a follow-up in a recent one (15% without threading
        headers: they join by subject)."""
        n = next(self.serial)
        if new or not self.conversations:
            k = self.rng.randrange(40)
            conv = Conversation(f"Case {n}: {self.rng.choice(TOPICS)}",
                                f"Customer {k} <c{k}@cust{k % 7}.test>")
            self.conversations.append(conv)
            raw = mail(subject=conv.subject, frm=conv.customer, msgid=f"c{n}@cust.test",
                       date=at, body=f"message {n}\n" + "details " * 30)
            self.done["new conversations"] += 1
        else:
            conv = self.rng.choice(self.conversations[-30:])
            bare = self.rng.random() < 0.15
            raw = mail(subject=f"Re: {conv.subject}", frm=conv.customer, msgid=f"c{n}@cust.test",
                       date=at, in_reply_to=None if bare else conv.ids[-1],
                       references=None if bare else conv.ids[-8:],
                       body=f"follow-up {n}\n" + "more " * 30)
            self.done["follow-ups without threading headers" if bare else "follow-ups"] += 1
        conv.ids.append(f"c{n}@cust.test")
        self.imap.append("INBOX", raw, msg_time=at)

    def team_reply(self, at: dt.datetime) -> None:
        """A teammate answers a recent conversation (her copy in Sent)."""
        if not self.conversations:
            return
        conv = self.rng.choice(self.conversations[-30:])
        n = next(self.serial)
        raw = mail(subject=f"Re: {conv.subject}", frm=f"Support <{TEAM}>",
                   to=address(conv.customer), msgid=f"r{n}@example.com", date=at,
                   in_reply_to=conv.ids[-1], references=conv.ids[-8:], body="We are on it.\n")
        conv.ids.append(f"r{n}@example.com")
        self.imap.append("Sent", raw, flags=[b"\\Seen"], msg_time=at)
        self.done["team replies"] += 1

    def _pick(self) -> tuple[str, int] | None:
        folder = self.rng.choice(TRIAGED)
        self.imap.select_folder(folder)
        uids = sorted(self.imap.search("ALL"))
        return (folder, self.rng.choice(uids)) if uids else None

    def _message_id(self, uid: int) -> str:
        key = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
        header = self.imap.fetch([uid], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])[uid][key]
        return str(email.message_from_bytes(header)["Message-ID"]).strip().strip("<>")

    def flag_change(self) -> None:
        picked = self._pick()
        if picked:
            flag = self.rng.choice((b"\\Seen", b"\\Flagged", b"\\Answered"))
            if self.rng.random() < 0.6:
                self.imap.add_flags([picked[1]], [flag])
            else:
                self.imap.remove_flags([picked[1]], [flag])
            self.done["flag changes"] += 1

    def move(self) -> None:
        picked = self._pick()
        if picked:
            folder, uid = picked
            self.moved.add(self._message_id(uid))
            self.imap.move([uid], TRIAGED[1 - TRIAGED.index(folder)])
            self.done["moves"] += 1

    def expunge(self) -> None:
        picked = self._pick()
        if picked:
            self.expunged.add(self._message_id(picked[1]))
            self.imap.delete_messages([picked[1]])
            self.imap.uid_expunge([picked[1]])
            self.done["expunges"] += 1

    def uidnext(self) -> dict[str, int]:
        return {folder: self.imap.folder_status(folder, [b"UIDNEXT"])[b"UIDNEXT"]
                for folder in FOLDERS}

    def server_flags(self) -> Flags:
        """Every message on the server: folder -> UID -> flags (not \\Recent: it belongs to
        the session that saw the message first, this one, not to the message)."""
        out: Flags = {}
        for folder in FOLDERS:
            self.imap.select_folder(folder, readonly=True)
            uids = self.imap.search("ALL")
            fetched = self.imap.fetch(uids, ["FLAGS"]) if uids else {}
            out[folder] = {uid: frozenset(f.decode() for f in data[b"FLAGS"]) - {"\\Recent"}
                           for uid, data in fetched.items()}
        return out


# -- looking at a database ------------------------------------------------------------------


def stored_flags(db_path: Path) -> tuple[Flags, dict[str, int]]:
    """folder -> UID -> flags as stored, and each folder's resume point (last_uid)."""
    conn = connect(db_path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "folders" not in tables:
            return {}, {}
        flags: Flags = {}
        for folder, uid, text in conn.execute("SELECT folder, uid, flags FROM locations"):
            flags.setdefault(folder, {})[uid] = frozenset((text or "").split())
        last = {f: u or 0 for f, u in conn.execute("SELECT folder, last_uid FROM folders")}
        return flags, last
    finally:
        conn.close()


def up_to(flags: Flags, last: dict[str, int]) -> Flags:
    """Only the UIDs at or below each folder's resume point."""
    kept = {f: {u: v for u, v in by_uid.items() if u <= last.get(f, 0)}
            for f, by_uid in flags.items()}
    return {f: by_uid for f, by_uid in kept.items() if by_uid}


def assert_sound_against(db_path: Path, server: Flags, may_lack: set[str]) -> None:
    """``faultproxy.assert_sound`` for a mailbox whose UIDs have gaps (moves, expunges):
    intact, nothing doubled or unthreaded, every UID the server has at or below a folder's
    resume point stored (else a resumed sync would skip it), and no message without a
    location unless its Message-ID is in ``may_lack``: expunged (the product keeps the row:
    "a fact that it arrived", tests/test_sync_imap.py) or moved (gone from the folder
    synced first, not yet seen in the other one)."""
    if not db_path.exists():
        return
    conn = connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        if "folders" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}:
            return  # killed before the first migration committed
        problems = conn.execute(
            "SELECT (SELECT COUNT(*) FROM messages WHERE thread_id IS NULL), "
            "(SELECT COUNT(*) FROM (SELECT key FROM messages GROUP BY key HAVING COUNT(*) > 1))"
        ).fetchone()
        assert problems == (0, 0), "unthreaded, doubled messages"
        lacking = {r[0] for r in conn.execute(
            "SELECT message_id FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM locations l WHERE l.message = m.id)")}
    finally:
        conn.close()
    assert lacking <= may_lack, f"stored without a location: {sorted(lacking - may_lack)}"
    flags, last = stored_flags(db_path)
    for folder, resume in last.items():
        missing = {u for u in server.get(folder, {}) if u <= resume} - set(flags.get(folder, {}))
        assert not missing, f"{folder}: last_uid {resume} but UIDs {sorted(missing)[:5]} missing"


def expunged_keys(db_path: Path) -> set[str]:
    """Keys of the messages stored without a location."""
    conn = connect(db_path)
    try:
        return {r[0] for r in conn.execute(
            "SELECT key FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM locations l WHERE l.message = m.id)")}
    finally:
        conn.close()


def outbox(db_path: Path) -> list[sqlite3.Row]:
    conn = connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM outbox ORDER BY id").fetchall()
    finally:
        conn.close()


def thread_aliases(db_path: Path) -> int:
    conn = connect(db_path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM thread_aliases").fetchone()[0])
    finally:
        conn.close()


# -- runs -----------------------------------------------------------------------------------


class _AckAtOnce:
    """A proxy's client socket that acknowledges what it reads at once (TCP_QUICKACK).

    imapclient writes a command and its CRLF as two segments; the client's kernel holds
    the CRLF until the first is acknowledged (Nagle), and the proxy's kernel delays that
    acknowledgement by 40 ms (nothing goes back until the server answers).  A server
    answering directly is not slowed; through a plain FaultProxy every SEARCH, FETCH and
    APPEND is, most of a run's time here.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class QuickProxy(FaultProxy):
    """A FaultProxy whose connections acknowledge at once (`_AckAtOnce`) and send at once
    (no Nagle): the same bytes and faults, without 40 ms waits.  The hook is the moment a
    connection's threads start."""

    def _spawn(self, target: object) -> None:
        conn = getattr(target, "__self__", None)
        if conn is not None and isinstance(getattr(conn, "client", None), socket.socket):
            for sock in (conn.client, conn.upstream):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.client = _AckAtOnce(conn.client)
        super()._spawn(target)


class Zygote:
    """The fork server (ZYGOTE): start a command, learn its pid, wait for its exit status."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0, env=dict(os.environ))
        assert self._answer(60) == "ready"

    def _answer(self, timeout: float) -> str | None:
        """The next line it says, or None if it says nothing for ``timeout`` seconds."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        return self.proc.stdout.readline().decode().strip() if ready else None

    def start(self, output: Path, *argv: str) -> int:
        """Fork `triage ARGV` (stdout and stderr to ``output``); its pid."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([list(argv), str(output)]).encode() + b"\n")
        pid = self._answer(10)
        assert pid, "the fork server did not answer"
        return int(pid)

    def outcome(self, timeout: float) -> int | None:
        """The command's exit status (negative: the signal that ended it), or None while it
        still runs after ``timeout`` seconds."""
        answer = self._answer(timeout)
        return None if answer is None else int(answer)

    def ended(self, pid: int) -> int:
        """The exit status; a command still running after RUN_TIMEOUT is hung: killed, and
        a failure."""
        code = self.outcome(RUN_TIMEOUT)
        if code is None:
            os.kill(pid, signal.SIGKILL)
            self.outcome(RUN_TIMEOUT)
            raise AssertionError(f"triage (pid {pid}) still running after {RUN_TIMEOUT}s")
        return code

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Run:
    """One `triage run`: its clock, its fate, what it printed."""

    now: dt.datetime
    returncode: int
    output: str
    touched: bool  # a fault fired or a signal arrived

    @property
    def killed(self) -> bool:
        return self.returncode < 0

    @property
    def report_done(self) -> bool:
        """The report for its day is out.  The run ended by itself and said nothing but
        "Error: sync ..." or "Error: auto_ack ...", so `run.run` reached `send_daily_report`,
        which found it sent, or sent it (``last_report_for`` is set only after the server's
        250), or would have said "Error: report: ..."."""
        return not self.killed and all(
            line.startswith(("Error: sync ", "Error: auto_ack"))
            for line in self.output.splitlines())


def report_day(at: dt.datetime) -> dt.date:
    """The report slot a moment falls in: the day whose 08:00 UTC is the latest passed."""
    return (at - dt.timedelta(hours=REPORT_AT.hour)).date()


def plan_faults(rng: random.Random, weights: list[int], max_offset: int) -> list[Fault]:
    """Faults for a run's next connections (``weights``: how often 0, 1, 2... of them): cuts
    and stalls at a random byte offset of what the server says, refusals."""
    faults: list[Fault] = []
    for _ in range(rng.choices(range(len(weights)), weights)[0]):
        kind = rng.choices(("cut", "stall", "refuse"), (6, 1.5, 2.5))[0]
        offset = rng.randint(0, max_offset)
        faults.append(Cut(offset) if kind == "cut" else Stall(offset) if kind == "stall"
                      else Refuse())
    return faults


def clocks(rng: random.Random, count: int) -> list[dt.datetime]:
    """Each run 10-60 simulated minutes after the last; 1 in 50 after 3-20 hours off."""
    out = [NOW]
    for _ in range(count - 1):
        hours = rng.uniform(3, 20) if rng.random() < 0.02 else rng.uniform(10, 60) / 60
        out.append(out[-1] + dt.timedelta(hours=hours))
    return out


class Soak:
    """The run loop: faults and a signal planned per run, the mailbox changed between runs,
    every run checked, everything counted, every violation noted."""

    def __init__(self, cfg: Path, imap: FaultProxy, smtp: FaultProxy, churn: Churn,
                 zygote: Zygote) -> None:
        self.cfg = cfg
        self.db_path = cfg.parent / "state.db"
        self.imap, self.smtp, self.churn, self.zygote = imap, smtp, churn, zygote
        self.faults = random.Random(SEED + 1)
        self.kills = random.Random(SEED + 2)
        self.tally: Counter[str] = Counter()
        self.runs: list[Run] = []
        self.problems: list[str] = []
        self.typical = 0.3  # seconds a run takes, learnt as it goes: where kills may land

    def noted(self, what: str, check: Callable[[], T]) -> T | None:
        """Run a check; a failure is noted (the soak goes on) and fails the test at the end."""
        try:
            return check()
        except AssertionError as exc:
            self.problems.append(f"{what}: {exc}")
            return None

    def loop(self, schedule: list[dt.datetime], budget: float) -> None:
        deadline = time.monotonic() + budget
        for i, now in enumerate(schedule):
            if i:
                self.churn.between(schedule[i - 1], now)
            run = self.one(now)
            self.noted(f"run {i} at {now:%Y-%m-%d %H:%M}", functools.partial(self.check, run))
            if time.monotonic() > deadline:
                break

    def one(self, now: dt.datetime) -> Run:
        """One `triage run` with this run's faults queued and, 3 times in 10, a signal after
        a random delay (up to 1.5 times what a run takes)."""
        self._arm()
        sig = self.kills.choice((signal.SIGKILL, signal.SIGTERM)) \
            if self.kills.random() < KILL_RATE else None
        delay = self.kills.uniform(0, 1.5 * self.typical)
        output = self.cfg.parent / "output"
        started = time.monotonic()
        pid = self.zygote.start(output, "--config", str(self.cfg), "--now", now.isoformat(),
                                "run")
        code = self.zygote.outcome(delay) if sig is not None else None
        if code is None and sig is not None:
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                os.kill(pid, sig)
                self.tally[f"{sig.name} sent"] += 1
        code = self.zygote.ended(pid) if code is None else code
        if code >= 0:
            self.typical = 0.8 * self.typical + 0.2 * (time.monotonic() - started)
        self.tally[f"runs ending {'by ' + signal.Signals(-code).name if code < 0 else code}"] += 1
        run = Run(now, code, output.read_text(errors="replace"),
                  touched=self._fired() > 0 or code < 0)
        self.runs.append(run)
        return run

    def _arm(self) -> None:
        """Forget the last run's connections and queue this run's faults."""
        self.imap.reset(Pass())
        self.smtp.reset(Pass())
        for name, proxy, weights, offset in (("imap", self.imap, [45, 35, 12, 8], 6000),
                                             ("smtp", self.smtp, [55, 30, 15], 400)):
            faults = plan_faults(self.faults, weights, offset)
            proxy.schedule(*faults)
            self.tally.update(f"{name} {type(f).__name__} scheduled" for f in faults)

    def _fired(self) -> int:
        fired = 0
        for name, proxy in (("imap", self.imap), ("smtp", self.smtp)):
            self.tally[f"{name} connections"] += proxy.accepted
            for rec in proxy.connections:
                if rec.faulted and not isinstance(rec.fault, Pass):
                    self.tally[f"{name} {type(rec.fault).__name__} fired"] += 1
                    fired += 1
        return fired

    def check(self, run: Run) -> None:
        """Sound after every run (a moved message may be between its two folders); a run that
        ended by itself exited 0 or 1 printing only one-line errors (`triage run` prints
        nothing when all is well); one no fault or signal touched exited 0, silent; one that
        exited 0 left the database level with the server: its flags at every stored UID,
        nothing missing at or below the resume points, nothing moved left nowhere."""
        server = self.churn.server_flags()
        assert_sound_against(self.db_path, server, self.churn.expunged | self.churn.moved)
        if run.killed:
            return
        assert run.returncode in (0, 1), (run.returncode, run.output)
        assert all(line.startswith("Error: ") for line in run.output.splitlines()), run.output
        if not run.touched:
            assert (run.returncode, run.output) == (0, ""), "untouched, yet: " + run.output
        if run.returncode == 0:
            flags, last = stored_flags(self.db_path)
            assert up_to(flags, last) == up_to(server, last), "not level with the server"
            assert_sound_against(self.db_path, server, self.churn.expunged)


# -- what the SMTP server received ----------------------------------------------------------


def sorted_out(received: list[ReceivedMessage]) -> tuple[list[EmailMessage],
                                                         list[EmailMessage], list[str]]:
    """(acknowledgements, reports, anything else by its Subject): an acknowledgement is the
    auto_ack template, marked auto-replied, sent to the address in its To; a report goes to
    report.to."""
    acks, reports, others = [], [], []
    for item in received:
        msg = email.message_from_bytes(item.raw, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        if item.rcpt_tos == [REPORT_TO]:
            reports.append(msg)
        elif (msg["X-Mailtriage-Template"], msg["Auto-Submitted"]) == (ACK_TEMPLATE,
                                                                       "auto-replied") \
                and item.rcpt_tos == [a.addr_spec for a in msg["To"].addresses]:
            acks.append(msg)
        else:
            others.append(str(msg["Subject"]))
    return acks, reports, others


def nothing(others: list[str]) -> None:
    assert others == [], "sent, yet neither an acknowledgement nor a report"


def check_acks(db_path: Path, acks: list[EmailMessage], tally: Counter[str]) -> None:
    """No acknowledgement delivered twice, none without its outbox row, and each row's state
    true to what the server has.

    "Sent twice" is one outbox message (its fixed Message-ID) delivered twice.  A row
    ``sent`` was delivered exactly once; ``failed`` never (the server certainly does not have
    it, so `triage run` may try the thread again); ``unknown`` -- or ``sending``, its
    process killed before anything settled it -- at most once: the 250 was lost or never
    awaited, and the row waits for a person instead of being sent again (counted both
    ways).  Beyond that: one per thread (threads never merge here: asserted) and one per
    address per ``auto_ack.per_sender``.
    """
    delivered = Counter(str(m["Message-ID"]).strip("<>") for m in acks)
    rows = [r for r in outbox(db_path) if r["kind"] == "reply"]
    allowed = {"sent": {1}, "failed": {0}, "unknown": {0, 1}, "sending": {0, 1}}
    wrong = []
    for row in rows:
        n = delivered.get(row["message_id"], 0)
        state = "unknown" if row["state"] == "sending" else row["state"]
        tally[f"acks {state}" + (f", {'delivered' if n else 'not delivered'}"
                                 if state == "unknown" else "")] += 1
        if n not in allowed.get(row["state"], set()) or row["auto"] != 1:
            wrong.append((row["id"], row["thread_id"], row["created_at"], row["state"],
                          row["error"], n))
    assert not wrong, ("outbox rows the server contradicts (id, thread, created, state, "
                       f"error, deliveries): {wrong}")
    doubled = {mid: n for mid, n in delivered.items() if n > 1}
    assert not doubled, f"delivered more than once: {doubled}"
    assert set(delivered) <= {r["message_id"] for r in rows}, "delivered without an outbox row"
    assert thread_aliases(db_path) == 0
    active = Counter(r["thread_id"] for r in rows if r["state"] != "failed")
    assert max(active.values(), default=0) <= 1, "two acknowledgements to one thread"
    check_per_sender(acks)


def check_per_sender(acks: list[EmailMessage]) -> None:
    """Delivered acknowledgements to one address are ``per_sender`` apart (their Date is
    the run's clock)."""
    by_address: dict[str, list[dt.datetime]] = {}
    for msg in acks:
        by_address.setdefault(str(msg["To"]), []).append(parsedate_to_datetime(msg["Date"]))
    close = {to: [f"{d:%m-%d %H:%M}" for d in sorted(dates)]
             for to, dates in by_address.items()
             if any(b - a < PER_SENDER for a, b in itertools.pairwise(sorted(dates)))}
    assert not close, f"acknowledged twice within {PER_SENDER}: {close}"


def check_reports(db_path: Path, reports: list[EmailMessage], runs: list[Run],
                  tally: Counter[str]) -> set[dt.date]:
    """The report at most once per simulated day, each outbox report row true to what the
    server has (as for acknowledgements), and a report for every day on which a run ended
    with the report done (`Run.report_done`) unless that day's row waits for a person
    (``unknown``: its 250 was lost, so it is not sent again); returns the days.

    A report's day is its slot (`report_day` of its Date, the run's clock): a catch-up
    report sent before 08:00 is yesterday's, as `run.report_slot` counts it, and as the
    row's ``report_for`` says.  The first run is at 12:00, after the first report time.
    """
    days = Counter(report_day(parsedate_to_datetime(m["Date"])) for m in reports)
    twice = sorted(d.isoformat() for d, n in days.items() if n > 1)
    assert not twice, f"the report went out more than once on {twice}"
    delivered = Counter(str(m["Message-ID"]).strip("<>") for m in reports)
    allowed = {"sent": {1}, "failed": {0}, "unknown": {0, 1}, "sending": {0, 1}}
    rows = [r for r in outbox(db_path) if r["kind"] == "report"]
    wrong = [(r["id"], r["report_for"], r["state"], r["error"], delivered[r["message_id"]])
             for r in rows if delivered[r["message_id"]] not in allowed.get(r["state"], set())]
    assert not wrong, ("report rows the server contradicts (id, day, state, error, "
                       f"deliveries): {wrong}")
    assert set(delivered) <= {r["message_id"] for r in rows}, "a report without its row"
    waiting = {dt.date.fromisoformat(r["report_for"]) for r in rows
               if r["state"] in ("unknown", "sending")}
    tally["reports waiting for a person (250 lost)"] = len(waiting)
    due = {report_day(run.now) for run in runs if run.report_done} - waiting
    assert due <= set(days), f"no report on {sorted(d.isoformat() for d in due - set(days))}"
    return set(days)


# -- the test -------------------------------------------------------------------------------


def configure(tmp_path: Path, account: Account, imap: FaultProxy, smtp: FaultProxy,
              smtp_server: SMTPServer) -> Path:
    """IMAP and SMTP through the proxies; acks after 15 minutes; the report at 08:00 UTC;
    1 s timeouts so stalls end quickly; small batches so kills land between them."""
    return write_config(
        tmp_path, via(imap, account),
        imap={"folders": list(TRIAGED), "sent_folder": "Sent", "timeout": 1, "batch_size": 10},
        smtp={"host": smtp.host, "port": smtp.port, "security": "none", "timeout": 1,
              "username": smtp_server.username, "password_env": SMTP_PASSWORD_VAR,
              "sent_copy": "append"},
        agent={"name": "Alex from Support", "address": TEAM},
        report={"to": [REPORT_TO], "at": REPORT_AT.strftime("%H:%M")},
        auto_ack={"template": ACK_TEMPLATE, "after": "15m"},
    )


def clean_sync(zygote: Zygote, cfg: Path, now: dt.datetime, *options: str) -> None:
    """A `triage sync` with no fault and no signal: it must succeed."""
    output = cfg.parent / "output"
    code = zygote.ended(zygote.start(output, "--config", str(cfg), "--now", now.isoformat(),
                                     *options, "sync"))
    text = output.read_text(errors="replace")
    assert code == 0 and text.startswith("synced "), (options, text)


def final_checks(soaked: Path, fresh: Path, server: Flags, expunged: set[str],
                 uidnext: dict[str, int]) -> dict[str, Callable[[], None]]:
    """The soaked database against a clean sync of the same mailbox, part by part.

    Identical: which message sits at which (folder, UID), the keys of the messages that
    are somewhere, their partition into threads, the facts of every thread, flags, and each
    folder's UIDVALIDITY and message count.  What may differ, by design: the soaked database
    keeps the rows of messages expunged after it stored them (``expunged``), so the facts of
    a thread holding one are not compared (it counted them); and its resume point
    (``last_uid``) may stand above the fresh one's, which is the highest UID still there,
    when the highest ones were moved or expunged -- but never at or past UIDNEXT.
    """
    a, b = snapshot(soaked), snapshot(fresh)
    gone = expunged_keys(soaked)
    return {
        "the soaked database is sound": functools.partial(
            assert_sound_against, soaked, server, expunged),
        "the fresh database is sound": functools.partial(
            assert_sound_against, fresh, server, set()),
        "the same messages": functools.partial(same_messages, a, b, gone),
        "the same threads": functools.partial(same_threads, a, b, gone),
        "the same flags": functools.partial(same_flags, soaked, fresh, server),
        "the same folders": functools.partial(same_folders, a["folders"], b["folders"],
                                              server, uidnext),
    }


def same_messages(a: dict[str, Any], b: dict[str, Any], gone: set[str]) -> None:
    missing = set(b["locations"].items()) - set(a["locations"].items())
    extra = set(a["locations"].items()) - set(b["locations"].items())
    assert not missing and not extra, f"(folder, UID): key lost {missing}, extra {extra}"
    assert sorted(set(a["keys"]) - gone) == b["keys"], "a message lost or doubled"


def same_threads(a: dict[str, Any], b: dict[str, Any], gone: set[str]) -> None:
    soaked = {g - gone for g in a["partition"]} - {frozenset()}
    assert soaked == b["partition"], (
        f"threads only in the soaked database: {sorted(map(sorted, soaked - b['partition']))}; "
        f"only in the fresh one: {sorted(map(sorted, b['partition'] - soaked))}")
    differ = {k: (v, b["threads"][k]) for k, v in a["threads"].items()
              if not k & gone and k in b["threads"] and v != b["threads"][k]}
    assert not differ, f"thread facts differ (soaked, fresh): {differ}"


def same_flags(soaked: Path, fresh: Path, server: Flags) -> None:
    assert stored_flags(soaked)[0] == stored_flags(fresh)[0] == {f: v for f, v in server.items()
                                                                if v}


def same_folders(a: dict[str, Any], b: dict[str, Any], server: Flags,
                 uidnext: dict[str, int]) -> None:
    assert a.keys() == b.keys()
    for folder, (validity, last_uid, count) in b.items():
        assert last_uid == max(server.get(folder, {0: None}), default=0), folder
        soaked_validity, soaked_last, soaked_count = a[folder]
        assert (soaked_validity, soaked_count) == (validity, count), folder
        assert last_uid <= soaked_last < uidnext.get(folder, soaked_last + 1), folder


def soak_then_sync(tmp_path: Path, account: Account, smtp_server: SMTPServer,
                   churn: Churn) -> Soak:
    """The run loop, then a clean sync into the soaked database and one into a fresh one."""
    schedule = clocks(random.Random(SEED + 3), RUNS)
    imap = QuickProxy(account.host, account.port)
    smtp = QuickProxy(smtp_server.host, smtp_server.port)
    zygote = Zygote()
    try:
        with imap, smtp:
            cfg = configure(tmp_path, account, imap, smtp, smtp_server)
            soak = Soak(cfg, imap, smtp, churn, zygote)
            soak.loop(schedule, BUDGET)
            imap.reset(Pass())
            end = soak.runs[-1].now
            clean_sync(zygote, cfg, end)
            clean_sync(zygote, cfg, end, "--db", str(tmp_path / "fresh.db"))
    finally:
        zygote.close()
    assert imap.alive_threads == smtp.alive_threads == 0, "fault proxy leaked threads"
    return soak


def test_chaos_soak(tmp_path, dovecot, smtp_server, monkeypatch):
    account = dovecot.add_user("chaos-soak@example.com", "chaos-pass-1")
    monkeypatch.setenv(PASSWORD_VAR, account.password)
    monkeypatch.setenv(SMTP_PASSWORD_VAR, smtp_server.password)
    started = time.monotonic()
    churn = Churn(account, random.Random(SEED))
    churn.backlog(NOW)
    soak = soak_then_sync(tmp_path, account, smtp_server, churn)
    took = time.monotonic() - started
    server, uidnext = churn.server_flags(), churn.uidnext()
    churn.close()
    for name, check in final_checks(soak.db_path, tmp_path / "fresh.db", server,
                                    churn.expunged, uidnext).items():
        soak.noted(f"at the end, {name}", check)
    gone = expunged_keys(soak.db_path)
    soak.tally["threads holding expunged mail"] = sum(
        1 for keys in snapshot(soak.db_path)["partition"] if keys & gone)
    acks, reports, others = sorted_out(smtp_server.messages)
    soak.noted("what was sent", functools.partial(check_acks, soak.db_path, acks, soak.tally))
    soak.noted("sent besides acknowledgements and reports", functools.partial(nothing, others))
    days = soak.noted("the reports", functools.partial(
        check_reports, soak.db_path, reports, soak.runs, soak.tally))
    print_figures(soak, churn, server, acks, reports, days or set(), took)
    if soak.problems:
        pytest.fail(f"{len(soak.problems)} problem(s), the first 20:\n\n" + "\n\n".join(
            problem[:2000] for problem in soak.problems[:20]), pytrace=False)


def print_figures(soak: Soak, churn: Churn, server: Flags, acks: list[EmailMessage],
                  reports: list[EmailMessage], days: set[dt.date], took: float) -> None:
    runs = soak.runs
    simulated = runs[-1].now - runs[0].now
    print(f"\nchaos soak: {len(runs)} runs in {took:.1f}s, {simulated} simulated "
          f"({runs[0].now:%Y-%m-%d %H:%M} to {runs[-1].now:%Y-%m-%d %H:%M})")
    for key, value in sorted((soak.tally + churn.done).items()):
        print(f"  {key}: {value}")
    print(f"  messages on the server at the end: {sum(len(v) for v in server.values())}")
    print(f"  acknowledgements delivered: {len(acks)}")
    print(f"  reports delivered: {len(reports)} for {len(days)} days")
