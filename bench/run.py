#!/usr/bin/env python3
"""mailtriage sync benchmark against a real Dovecot filled with a realistic mailbox.

    python bench/run.py                      # 10,000 messages (~2-3 minutes)
    python bench/run.py --count 100000       # the full run
    python bench/run.py --json out.json --keep --profile

One Dovecot (tests/support/dovecot.py) is filled once, straight into its Maildir, by
bench/generate.py; then, in order: the wire floor (raw socket, same FETCH commands as the sync),
the library floor (imapclient, same commands), the peer (mbsync + notmuch new), and the triage
processes (initial sync, no-op sync, incremental sync, overdue --json, report). See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for _p in (str(ROOT), str(ROOT / "tests"), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import imapclient  # noqa: E402
from generate import NOW, generate  # noqa: E402
from searchbench import TARGET_S as SEARCH_TARGET_S  # noqa: E402
from searchbench import measure_search  # noqa: E402
from searchbench import note as search_note  # noqa: E402

from mailtriage.parse import BODY_PREFIX_BYTES, HEADER_FIELDS  # noqa: E402

from support.dovecot import Dovecot  # noqa: E402
from support.mailfactory import write_config  # noqa: E402

BATCH = 500  # account.batch_size default: UIDs per FETCH, as the sync sends them
FOLDERS = ("INBOX", "Sent")
PASSWORD_ENV = "TEST_IMAP_PASSWORD"  # what mailfactory.write_config names in password_env
NOW_ISO = NOW.isoformat()
PYTHON_FLOOR_ARGV = [sys.executable, "-c", "pass"]  # the interpreter every triage row starts

TARGETS = {  # issue #15 ("Performance, round two"); measured and reported, never asserted
    "initial_library": 1.2,  # initial sync <= 1.2x the library floor
    "initial_wire": 5.0,     # initial sync <= 5x the wire floor
    "cpu_us": 120.0,         # CPU (user + sys) of all triage processes per message
    "noop": 0.25,            # interpreter start included
    "incremental": 0.4,
    "overdue": 0.3,
    "report": 0.3,
    "rss_mb": 100.0,
}


# ------------------------------------------------------------------------------------------
# What the sync sends
# ------------------------------------------------------------------------------------------


def fetch_items(condstore: bool) -> list[str]:
    """The FETCH items of IMAPSession.fetch (no rules with extra headers, not Gmail)."""
    names = " ".join(f.upper() for f in HEADER_FIELDS)
    items = [f"BODY.PEEK[HEADER.FIELDS ({names})]", f"BODY.PEEK[TEXT]<0.{BODY_PREFIX_BYTES}>",
             "INTERNALDATE", "FLAGS", "RFC822.SIZE"]
    if condstore:
        items.append("MODSEQ")
    return items


def batches(items: Sequence[int], n: int = BATCH) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# ------------------------------------------------------------------------------------------
# Wire floor: a raw socket client that reads responses without parsing them
# ------------------------------------------------------------------------------------------


class RawIMAP:
    """Plain-TCP IMAP: send a tagged command, skip bytes until its tagged completion.

    Literals (``{n}`` at the end of a line) are skipped by count, so a line inside a message
    that looks like ``w5 OK`` cannot end a response early.
    """

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()
        self.pos = 0
        self.received = 0
        self.tags = 0
        self._read(None)  # the greeting

    def _fill(self) -> None:
        cut = min(self.pos, len(self.buf))
        if cut:
            del self.buf[:cut]
            self.pos -= cut
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("server closed the connection")
        self.received += len(data)
        self.buf += data

    def _read(self, tag: bytes | None, collect: bool = False) -> tuple[bytes, list[bytes]]:
        lines: list[bytes] = []
        fresh = True  # at the start of a response (not after a literal)
        buf = self.buf
        while True:
            while self.pos > len(self.buf):  # inside a literal we are skipping
                self._fill()
                buf = self.buf
            end = buf.find(b"\r\n", self.pos)
            if end < 0:
                self._fill()
                buf = self.buf
                continue
            start = self.pos
            self.pos = end + 2
            if end > start and buf[end - 1] == 0x7D:  # "}": a literal follows
                brace = buf.rfind(b"{", start, end)
                self.pos += int(bytes(buf[brace + 1 : end - 1]).rstrip(b"+"))
                fresh = False
                continue
            if tag is None:
                return bytes(buf[start:end]), lines
            if fresh and buf.startswith(tag, start):
                line = bytes(buf[start:end])
                if not line[len(tag) :].startswith(b"OK"):
                    raise RuntimeError(f"IMAP command failed: {line[:200]!r}")
                return line, lines
            if collect:
                lines.append(bytes(buf[start:end]))
            fresh = True

    def command(self, text: str, collect: bool = False) -> tuple[bytes, list[bytes]]:
        self.tags += 1
        tag = f"w{self.tags}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        return self._read(tag + b" ", collect)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.command("LOGOUT")
        self.sock.close()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wire_floor(host: str, port: int, user: str, password: str) -> dict[str, Any]:
    t0, cpu0 = time.perf_counter(), time.process_time()
    c = RawIMAP(host, port)
    c.command(f"LOGIN {_quote(user)} {_quote(password)}")
    _, caps = c.command("CAPABILITY", collect=True)
    condstore = any(b" CONDSTORE" in line for line in caps)
    if condstore:
        c.command("ENABLE CONDSTORE")
    items = " ".join(fetch_items(condstore))
    messages = 0
    for folder in FOLDERS:
        c.command(f"EXAMINE {_quote(folder)}")
        _, lines = c.command("UID SEARCH ALL", collect=True)
        uids = sorted(int(u) for line in lines if line.startswith(b"* SEARCH")
                      for u in line.split()[2:] if u.isdigit())
        for batch in batches(uids):
            c.command(f"UID FETCH {','.join(map(str, batch))} ({items})")
        messages += len(uids)
    c.close()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
            "messages": messages, "bytes": c.received}


# ------------------------------------------------------------------------------------------
# Library floor: imapclient, same commands, results thrown away
# ------------------------------------------------------------------------------------------


def library_floor(host: str, port: int, user: str, password: str) -> dict[str, Any]:
    t0, cpu0 = time.perf_counter(), time.process_time()
    c = imapclient.IMAPClient(host, port=port, ssl=False, timeout=120)
    c.normalise_times = False  # as IMAPSession does
    c.login(user, password)
    condstore = b"CONDSTORE" in c.capabilities()
    if condstore:
        c.enable("CONDSTORE")
    items = fetch_items(condstore)
    messages = 0
    for folder in FOLDERS:
        c.select_folder(folder, readonly=True)
        uids = sorted(c.search(["ALL"]))
        for batch in batches(uids):
            c.fetch(list(batch), items)  # a list of ints: imapclient 4.1 rejects range strings
        messages += len(uids)
    c.logout()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
            "messages": messages}


# ------------------------------------------------------------------------------------------
# Child processes: wall time and the child's own peak RSS (os.wait4)
# ------------------------------------------------------------------------------------------


TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_child(argv: Sequence[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> dict[str, Any]:
    """Run a command; its wall time, its CPU time and its own peak RSS.

    CPU is user + sys from ``wait4``: on Linux that includes the children the command
    waited for (the sync's parse worker), so it is the whole process tree's.

    Linux carries the parent's RSS high-water mark over fork+exec into the child's
    ``ru_maxrss``, so ``wait4`` from this (large) process overstates a small child. GNU time
    is a small parent: its report (``%M``) is the child's own peak. Without it, ``wait4``.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        cmd = [TIME_BIN, "-f", "%M", "-o", rss.name, *argv] if TIME_BIN else list(argv)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        rss_kb = usage.ru_maxrss  # KiB on Linux
        if TIME_BIN:
            with contextlib.suppress(ValueError, IndexError):
                rss_kb = int(rss.read().split()[-1])
    return {
        "argv": [str(a) for a in argv], "seconds": seconds, "rc": proc.returncode,
        "cpu_seconds": usage.ru_utime + usage.ru_stime, "rss_mb": rss_kb / 1024,
        "stdout": stdout.decode(errors="replace"), "stderr": stderr.decode(errors="replace"),
    }


def triage_argv() -> list[str]:
    script = Path(sys.executable).with_name("triage")  # the console script, not a pyenv shim
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from mailtriage.cli import cli; cli()"]


# ------------------------------------------------------------------------------------------
# The peer: mbsync + notmuch new
# ------------------------------------------------------------------------------------------


MBSYNCRC = """\
FSync no

IMAPAccount bench
Host {host}
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel bench
Far :bench-far:
Near :bench-near:
Patterns INBOX Sent
Sync Pull
Create Near
SyncState {state}/
"""

NOTMUCH_CONFIG = """\
[database]
path={maildir}

[user]
name=Support
primary_email=support@example.com

[new]
tags=unread;inbox;
ignore=.uidvalidity;.mbsyncstate;.mbsyncstate.journal;.mbsyncstate.new;.mbsyncstate.lock

[maildir]
synchronize_flags=true
"""


def peer(work: Path, host: str, port: int, user: str, password: str) -> dict[str, Any]:
    mbsync, notmuch = shutil.which("mbsync"), shutil.which("notmuch")
    if not mbsync or not notmuch:
        missing = " and ".join(n for n, b in (("mbsync", mbsync), ("notmuch", notmuch)) if not b)
        return {"skipped": f"{missing} not installed (apt-get install isync notmuch)"}
    directory = work / "peer"
    maildir, state = directory / "mail", directory / "state"
    maildir.mkdir(parents=True)
    state.mkdir()
    rc = directory / "mbsyncrc"
    rc.write_text(MBSYNCRC.format(host=host, port=port, user=user, password=password,
                                  maildir=maildir, state=state))
    rc.chmod(0o600)
    nm_config = directory / "notmuch-config"
    nm_config.write_text(NOTMUCH_CONFIG.format(maildir=maildir))
    env = dict(os.environ, NOTMUCH_CONFIG=str(nm_config))
    sync = run_child([mbsync, "-c", str(rc), "-q", "-a"], env=env)
    if sync["rc"] != 0:
        return {"skipped": f"mbsync failed ({sync['rc']}): {sync['stderr'].strip()[-300:]}"}
    files = sum(1 for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    index = run_child([notmuch, "new", "--quiet"], env=env)
    if index["rc"] != 0:
        return {"skipped": f"notmuch new failed ({index['rc']}): {index['stderr'][-300:]}"}
    threads = run_child([notmuch, "count", "--output=threads", "*"], env=env)
    return {"mbsync": sync, "notmuch": index, "files": files,
            "notmuch_threads": int(threads["stdout"].strip() or 0)}


# ------------------------------------------------------------------------------------------
# Filling the server and changing it
# ------------------------------------------------------------------------------------------


def fill(server: Dovecot, count: int, seed: int) -> dict[str, Any]:
    account = server.account()
    t0 = time.perf_counter()
    per_folder: dict[str, int] = {}
    threads: set[int] = set()
    size = 0
    for msg in generate(count, seed=seed):
        account.deliver_maildir(msg.folder, [msg.raw], flags=msg.flags, internaldate=msg.date)
        per_folder[msg.folder] = per_folder.get(msg.folder, 0) + 1
        threads.add(msg.thread)
        size += len(msg.raw)
    return {"seconds": time.perf_counter() - t0, "folders": per_folder,
            "threads": len(threads), "mbytes": size / 1e6}


def change_mailbox(server: Dovecot, new: int = 10, flagged: int = 10) -> dict[str, Any]:
    """APPEND ``new`` customer messages (half replies to existing threads) and STORE a flag."""
    client = server.client()
    try:
        client.select_folder("INBOX")
        uids = sorted(client.search(["ALL"]))
        parents = client.fetch(uids[-new // 2 :], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)]"])
        when = NOW - dt.timedelta(minutes=30)
        for i in range(new):
            headers = [
                "From: New Customer <new.customer@customer.test>",
                "To: Example Support <support@example.com>",
                f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
                f"Message-ID: <bench-incremental-{i}@customer.test>",
            ]
            subject = f"Incremental test {i}"
            if i < len(parents):
                raw = next(v for k, v in parents[uids[-new // 2 + i]].items()
                           if k.startswith(b"BODY["))
                fields = _fields(raw)
                parent = fields.get("message-id", "")
                subject = "Re: " + fields.get("subject", subject)
                headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
            headers += [f"Subject: {subject}", "Content-Type: text/plain; charset=utf-8"]
            body = "\r\n".join(headers) + "\r\n\r\nAny news on this? Thanks.\r\n"
            client.append("INBOX", body.encode(), msg_time=when)
        targets = uids[:flagged]
        client.add_flags(targets, [b"\\Flagged"])
    finally:
        client.logout()
    return {"appended": new, "flagged": len(targets)}


def _fields(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.decode(errors="replace").replace("\r\n ", " ").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------


def close_idle(db_path: Path, days: int) -> int:
    """Close threads with no activity for ``days`` (as `triage close` would, with history)."""
    import datetime as dt

    from mailtriage.states import set_state
    from mailtriage.store import iso, open_db

    now = dt.datetime.fromisoformat(NOW_ISO)
    db = open_db(db_path)
    ids = [r[0] for r in db.execute(
        "SELECT t.id FROM threads t JOIN thread_state s ON s.thread_id = t.id "
        "WHERE s.state != 'closed' AND t.last_at < ?", [iso(now - dt.timedelta(days=days))])]
    with db.atomic():
        for tid in ids:
            set_state(db, tid, "closed", iso(now), "cli")
    db.close()
    return len(ids)


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = dict(min(runs, key=lambda r: r["seconds"]))
    chosen["all_seconds"] = [round(r["seconds"], 4) for r in runs]
    return chosen


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr \
            else "?"

    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": mem,
        "os": platform.platform(), "python": platform.python_version(),
        "imapclient": imapclient.__version__, "sqlite": sqlite3.sqlite_version,
        "dovecot": version(["/usr/sbin/dovecot", "--version"]),
        "mbsync": version(["mbsync", "--version"]),
        "notmuch": version(["notmuch", "--version"]),
    }


def row(name: str, seconds: float | None, *, messages: int | None = None,
        rss_mb: float | None = None, cpu: float | None = None, target: str = "",
        passed: bool | None = None, note: str = "", **extra: Any) -> dict[str, Any]:
    """One line of the table; ``cpu`` is user + sys seconds (per message too, given
    ``messages``)."""
    return {"name": name, "seconds": seconds, "cpu_seconds": cpu,
            "messages_per_s": (messages / seconds) if messages and seconds else None,
            "cpu_us_per_message": cpu / messages * 1e6 if messages and cpu else None,
            "rss_mb": rss_mb, "target": target, "passed": passed, "note": note, **extra}


def run_row(name: str, run: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A row for one measured process: its wall and CPU seconds and its peak RSS."""
    return row(name, run["seconds"], rss_mb=run.get("rss_mb"), cpu=run.get("cpu_seconds"),
               **kw)


def print_table(rows: list[dict[str, Any]], count: int) -> None:
    head = (f"{'measurement':<34} {'wall s':>8} {'CPU s':>7} {'CPU us/msg':>10} {'msgs/s':>9} "
            f"{'x wire':>7} {'x lib':>6} {'RSS MB':>7}  {'target':<26} result")
    print(f"\nmailtriage benchmark, {count:,} messages")
    print(head)
    print("-" * len(head))
    def num(r: dict[str, Any], key: str, fmt: str) -> str:
        value = r.get(key)
        return format(value, fmt) if isinstance(value, int | float) else "-"

    for r in rows:
        result = {True: "PASS", False: "FAIL", None: ""}[r["passed"]]
        print(f"{r['name']:<34} {num(r, 'seconds', '.3f'):>8} {num(r, 'cpu_seconds', '.2f'):>7} "
              f"{num(r, 'cpu_us_per_message', '.0f'):>10} {num(r, 'messages_per_s', ',.0f'):>9} "
              f"{num(r, 'x_wire', '.2f'):>7} {num(r, 'x_library', '.2f'):>6} "
              f"{num(r, 'rss_mb', '.0f'):>7}  {r['target']:<26} {result}")
        if r["note"]:
            print(f"{'':<4}{r['note']}")


# ------------------------------------------------------------------------------------------
# The steps of main()
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The command line, resolved: --repeat and --json have their defaults filled in."""

    count: int
    seed: int
    repeat: int
    json_path: Path
    keep: bool
    no_peer: bool
    profile: bool


class Login(NamedTuple):
    """Where and as whom the floors and the peer connect (the argument order of wire_floor)."""

    host: str
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class Floors:
    """What the triage sync is compared against: best wire and library runs, and the peer."""

    wire: dict[str, Any]
    library: dict[str, Any]
    peer: dict[str, Any]


@dataclass(frozen=True)
class Triage:
    """The triage command line for this run, so each measurement is ``triage("sync")``."""

    base: list[str]
    env: dict[str, str]
    config_dir: Path
    db_path: Path

    def __call__(self, *cmd: str, check: bool = True) -> dict[str, Any]:
        res = run_child([*self.base, *cmd], env=self.env, cwd=self.config_dir)
        if check and res["rc"] != 0:
            raise RuntimeError(f"triage {' '.join(cmd)} failed ({res['rc']}): "
                               f"{res['stderr'][-2000:]}")
        return res


@dataclass(frozen=True)
class InitialSync:
    """The initial syncs: the best run (with the peak RSS of all runs) and what they stored."""

    best: dict[str, Any]
    runs: list[dict[str, Any]]
    stored: int
    threads: int


@dataclass(frozen=True)
class Tidy:
    """Overdue and report again after closing the threads that went quiet."""

    closed: int
    overdue: dict[str, Any]
    count: int
    report: dict[str, Any] | None


@dataclass(frozen=True)
class TriageRuns:
    """Every triage process the run measured, in the order it ran them."""

    python: dict[str, Any]
    startup: dict[str, Any]
    sync_help: dict[str, Any]
    initial: InitialSync
    noop: dict[str, Any]
    changes: dict[str, Any]
    incremental: dict[str, Any]
    overdue: dict[str, Any]
    overdue_count: int | None
    report: dict[str, Any] | None
    search: dict[str, Any]
    search_cli: dict[str, Any]
    tidy: Tidy


def parse_args(argv: Sequence[str] | None) -> Options:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000, help="messages (default 10,000)")
    ap.add_argument("--json", type=Path, help="results file (default bench/results-COUNT.json)")
    ap.add_argument("--keep", action="store_true",
                    help="leave Dovecot running and keep the temp dirs (prints where)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of the floors and of the initial sync, best one counts "
                         "(default 3 up to 20,000 messages, else 1)")
    ap.add_argument("--no-peer", action="store_true", help="skip mbsync + notmuch")
    ap.add_argument("--profile", action="store_true",
                    help="finally, one more initial sync into a fresh db, profiled (py-spy if "
                         "on the PATH: all threads; else cProfile: main thread only)")
    args = ap.parse_args(argv)
    return Options(
        count=args.count, seed=args.seed,
        repeat=args.repeat or (3 if args.count <= 20_000 else 1),
        json_path=args.json or BENCH / f"results-{args.count}.json",
        keep=args.keep, no_peer=args.no_peer, profile=args.profile,
    )


def step(text: str) -> None:
    """Progress on stderr; flushed when stderr is not a terminal, so a CI log keeps up."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr,
          flush=not sys.stderr.isatty())


def remove_db(db_path: Path) -> None:
    """Delete the triage database and its WAL files, so the next sync is an initial one."""
    for suffix in ("", "-wal", "-shm", ".id"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def fill_and_warm(server: Dovecot, login: Login, count: int,
                  seed: int) -> tuple[dict[str, Any], float]:
    """Fill the Maildir, then fetch everything once: Dovecot indexes and caches on the first
    fetch, and no measured run should pay for that. Returns the fill stats and warm-up time."""
    step(f"filling Dovecot with {count:,} messages")
    filled = fill(server, count, seed)
    step(f"  {filled['folders']} in {filled['seconds']:.1f} s; "
         "warming up (Dovecot indexes and caches on the first fetch)")
    t0 = time.perf_counter()
    warm = wire_floor(*login)
    warmup_seconds = time.perf_counter() - t0
    if warm["messages"] != count:
        raise RuntimeError(f"server holds {warm['messages']} messages, not {count}")
    return filled, warmup_seconds


def measure_floors(work: Path, login: Login, repeat: int, no_peer: bool) -> Floors:
    """The wire and library floors (best of ``repeat``) and, unless --no-peer, the peer."""
    step(f"wire floor and library floor ({repeat}x each)")
    wire = best([wire_floor(*login) for _ in range(repeat)])
    library = best([library_floor(*login) for _ in range(repeat)])
    peer_result: dict[str, Any] = {"skipped": "--no-peer"}
    if not no_peer:
        step("peer: mbsync + notmuch new")
        peer_result = peer(work, *login)
    return Floors(wire=wire, library=library, peer=peer_result)


def setup_triage(work: Path, server: Dovecot, password: str) -> Triage:
    """A config for the account (SLA 24h) and the command line every triage run shares."""
    config_dir = work / "triage"
    config_dir.mkdir()
    config = write_config(config_dir, server.account(), sla={"default": "24h"})
    return Triage(
        base=[*triage_argv(), "--config", str(config), "--now", NOW_ISO],
        env=dict(os.environ, **{PASSWORD_ENV: password}),
        config_dir=config_dir,
        db_path=config_dir / "state.db",
    )


def measure_initial(triage: Triage, repeat: int) -> InitialSync:
    """Initial sync ``repeat`` times, each into a fresh db; the best counts, RSS is the peak."""
    step(f"triage sync, initial ({repeat}x, a fresh database each time)")
    runs = []
    for _ in range(repeat):
        remove_db(triage.db_path)
        runs.append(triage("sync"))
    initial = best(runs)
    initial["rss_mb"] = max(r["rss_mb"] for r in runs)
    with sqlite3.connect(triage.db_path) as con:
        stored = con.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        threads = con.execute("SELECT COUNT(*) FROM threads").fetchone()[0]
    return InitialSync(best=initial, runs=runs, stored=stored, threads=threads)


def measure_tidy(triage: Triage, has_report: bool) -> Tidy:
    """Overdue and report on a worked inbox.

    The generator never closes a conversation, so the first overdue/report rows are the worst
    case (most threads overdue). A team working its inbox closes what went quiet.
    """
    step("closing threads idle for 30 days, then overdue and report again")
    closed = close_idle(triage.db_path, days=30)
    overdue = triage("overdue", "--json")
    count = len(json.loads(overdue["stdout"]))
    report = triage("report") if has_report else None
    return Tidy(closed=closed, overdue=overdue, count=count, report=report)


def measure_triage(triage: Triage, server: Dovecot, repeat: int) -> TriageRuns:
    """The triage processes in order: each sync starts from the state the previous one left."""
    step("python start-up, triage startup (--help, sync --help)")
    python = best([run_child(PYTHON_FLOOR_ARGV, env=triage.env) for _ in range(3)])
    startup = best([triage("--help") for _ in range(3)])
    sync_help = best([triage("sync", "--help") for _ in range(3)])
    initial = measure_initial(triage, repeat)
    step("triage sync, no-op")
    noop = triage("sync")
    step("changing the mailbox: 10 APPENDs, 10 STORE +FLAGS")
    changes = change_mailbox(server)
    step("triage sync, incremental")
    incremental = triage("sync")
    step("triage overdue --json, triage report")
    overdue = triage("overdue", "--json")
    try:
        overdue_count: int | None = len(json.loads(overdue["stdout"]))
    except (ValueError, TypeError):
        overdue_count = None
    has_report = triage("report", "--help", check=False)["rc"] == 0
    report = triage("report") if has_report else None
    step("search: in-process queries, then triage search --json as a process")
    search = measure_search(triage.db_path, dt.datetime.fromisoformat(NOW_ISO))
    search_cli = best([triage("search", "--json", "password", "reset") for _ in range(3)])
    return TriageRuns(python=python, startup=startup, sync_help=sync_help, initial=initial,
                      noop=noop, changes=changes,
                      incremental=incremental, overdue=overdue, overdue_count=overdue_count,
                      report=report, search=search, search_cli=search_cli,
                      tidy=measure_tidy(triage, has_report))


def floor_rows(floors: Floors, n: int) -> list[dict[str, Any]]:
    """The wire and library floors, then the peer (one skipped row, or three)."""
    wire, library, peer_result = floors.wire, floors.library, floors.peer
    wire_s, lib_s = wire["seconds"], library["seconds"]
    rows = [
        row("wire floor (raw socket)", wire_s, messages=n, cpu=wire.get("cpu_seconds"),
            note=f"{wire['bytes'] / 1e6:.1f} MB read; best of {wire['all_seconds']}"),
        row("library floor (imapclient)", lib_s, messages=n, x_wire=lib_s / wire_s,
            cpu=library.get("cpu_seconds"), note=f"best of {library['all_seconds']}"),
    ]
    if "skipped" in peer_result:
        rows.append(row("peer: mbsync + notmuch new", None, note="skipped: "
                        + peer_result["skipped"]))
        return rows
    ms, nm = peer_result["mbsync"], peer_result["notmuch"]
    rows += [
        row("peer: mbsync (whole messages)", ms["seconds"], messages=n,
            rss_mb=ms["rss_mb"], cpu=ms.get("cpu_seconds"), x_wire=ms["seconds"] / wire_s,
            x_library=ms["seconds"] / lib_s,
            note=f"{peer_result['files']} files mirrored"),
        row("peer: notmuch new", nm["seconds"], messages=n, rss_mb=nm["rss_mb"],
            cpu=nm.get("cpu_seconds"),
            note=f"{peer_result['notmuch_threads']} threads"),
        row("peer: mbsync + notmuch new", ms["seconds"] + nm["seconds"], messages=n,
            x_wire=(ms["seconds"] + nm["seconds"]) / wire_s,
            x_library=(ms["seconds"] + nm["seconds"]) / lib_s),
    ]
    return rows


def initial_row(initial: InitialSync, n: int, wire_s: float, lib_s: float) -> dict[str, Any]:
    """The headline row: the initial sync against both floors, each with its own target."""
    run = initial.best
    init_s = run["seconds"]
    x_lib, x_wire = init_s / lib_s, init_s / wire_s
    lib_ok, wire_ok = x_lib <= TARGETS["initial_library"], x_wire <= TARGETS["initial_wire"]
    cpu_us = run["cpu_seconds"] / n * 1e6
    cpu_ok = cpu_us <= TARGETS["cpu_us"]
    last_line = run["stderr"].strip().splitlines()[-1] if run["stderr"] else ""
    verdict = {True: "PASS", False: "FAIL"}
    return row("triage sync: initial", init_s, messages=n, rss_mb=run["rss_mb"],
               cpu=run["cpu_seconds"], x_wire=x_wire, x_library=x_lib,
               target=f"<= {TARGETS['initial_library']}x lib, <= {TARGETS['initial_wire']:g}x "
                      f"wire, <= {TARGETS['cpu_us']:.0f} us",
               passed=lib_ok and wire_ok and cpu_ok,
               note=f"{initial.threads} threads; best of {run['all_seconds']}; "
                    f"x lib {verdict[lib_ok]}, x wire {verdict[wire_ok]}, "
                    f"CPU/msg {verdict[cpu_ok]}; {last_line}")


def triage_rows(runs: TriageRuns, n: int, wire_s: float, lib_s: float) -> list[dict[str, Any]]:
    """One row per triage process; the report rows only if this checkout has `triage report`."""
    startup, noop, incremental = runs.startup, runs.noop, runs.incremental
    overdue, report, tidy = runs.overdue, runs.report, runs.tidy
    python = runs.python
    rows = [
        run_row("python start-up (floor)", python,
                note=f"{' '.join(PYTHON_FLOOR_ARGV)}: the interpreter alone; best of "
                     f"{python['all_seconds']}"),
        run_row("triage startup (--help)", startup,
                note="interpreter + imports: part of every triage row below"),
        run_row("triage sync --help", runs.sync_help,
                note="what the sync command imports, without a config or the network"),
        initial_row(runs.initial, n, wire_s, lib_s),
        run_row("triage sync: no-op", noop, target=f"<= {TARGETS['noop']} s",
                passed=noop["seconds"] <= TARGETS["noop"],
                note=f"{noop['seconds'] - python['seconds']:.3f} s above the interpreter; "
                     + noop["stderr"].strip()[-200:]),
        run_row("triage sync: incremental (10+10)", incremental,
                target=f"<= {TARGETS['incremental']} s",
                passed=incremental["seconds"] <= TARGETS["incremental"],
                note=incremental["stderr"].strip()[-200:]),
        run_row("triage overdue --json", overdue, target=f"<= {TARGETS['overdue']} s",
                passed=overdue["seconds"] <= TARGETS["overdue"],
                note=f"{runs.overdue_count} overdue threads"),
        run_row("triage overdue --json, tidy inbox", tidy.overdue,
                target=f"<= {TARGETS['overdue']} s",
                passed=tidy.overdue["seconds"] <= TARGETS["overdue"],
                note=f"{tidy.closed} threads idle 30+ days closed; {tidy.count} overdue threads"),
    ]
    rows += [
        row("search (in-process, worst query)", runs.search["seconds"],
            target=f"< {SEARCH_TARGET_S * 1000:.0f} ms",
            passed=runs.search["seconds"] < SEARCH_TARGET_S, note=search_note(runs.search)),
        run_row("triage search --json (process)", runs.search_cli,
                note="'password reset', limit 20; includes the start-up row's time"),
    ]
    if tidy.report is not None:
        rows.append(run_row("triage report, tidy inbox", tidy.report,
                            target=f"<= {TARGETS['report']} s",
                            passed=tidy.report["seconds"] <= TARGETS["report"]))
    if report is None:
        rows.append(row("triage report", None, note="skipped: `triage report` is not "
                        "registered in this checkout"))
    else:
        rows.append(run_row("triage report", report, target=f"<= {TARGETS['report']} s",
                            passed=report["seconds"] <= TARGETS["report"],
                            note=f"{len(report['stdout'].splitlines())} lines of text"))
    return rows


def peak_rss_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The memory target is on the largest triage process, whichever row it was."""
    triage_rss = [r["rss_mb"] for r in rows
                  if r["name"].startswith("triage") and r["rss_mb"] is not None]
    return row("peak RSS of any triage process", None, rss_mb=max(triage_rss),
               target=f"<= {TARGETS['rss_mb']:.0f} MB",
               passed=max(triage_rss) <= TARGETS["rss_mb"])


def build_rows(floors: Floors, runs: TriageRuns, n: int) -> list[dict[str, Any]]:
    """All result rows in table order, each with both ratio columns (None where not a ratio)."""
    wire_s, lib_s = floors.wire["seconds"], floors.library["seconds"]
    rows = floor_rows(floors, n) + triage_rows(runs, n, wire_s, lib_s)
    rows.append(peak_rss_row(rows))
    for r in rows:
        r.setdefault("x_wire", None)
        r.setdefault("x_library", None)
    return rows


def _without_stdout(res: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run without its stdout: overdue's JSON and report's text would swamp the file."""
    return None if res is None else {k: v for k, v in res.items() if k != "stdout"}


def raw_results(floors: Floors, runs: TriageRuns) -> dict[str, Any]:
    """Every measured run as it came back, for looking into a number in the table."""
    return {
        "wire": floors.wire, "library": floors.library, "python": runs.python,
        "startup": runs.startup, "sync_help": runs.sync_help,
        "initial": runs.initial.runs, "noop": runs.noop, "incremental": runs.incremental,
        "report": _without_stdout(runs.report), "overdue": _without_stdout(runs.overdue),
        "search": runs.search, "search_cli": _without_stdout(runs.search_cli),
        "peer": floors.peer,
    }


def publish(results: dict[str, Any], json_path: Path) -> None:
    """The table and a summary line on stdout, everything in the JSON file."""
    print_table(results["rows"], results["count"])
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"\nfill {results['fill']['seconds']:.1f} s "
          f"({results['fill']['mbytes']:.0f} MB, {results['fill']['threads']} threads), "
          f"warm-up {results['warmup_seconds']:.1f} s; "
          f"{results['machine']['cores']} cores, {results['machine']['cpu']}")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results written to {json_path}")


def compile_package() -> None:
    """Byte-compile the mailtriage being measured, as an installed package would be: with
    PYTHONDONTWRITEBYTECODE set (this machine's default) an editable checkout is otherwise
    compiled from source by every triage process, ~0.1 s of each short command."""
    import compileall

    import mailtriage

    compileall.compile_dir(Path(mailtriage.__file__).parent, quiet=1)


def run_benchmark(server: Dovecot, work: Path, opts: Options, results: dict[str, Any]) -> None:
    """Everything between starting Dovecot and stopping it, filling ``results`` as it goes."""
    compile_package()
    login = Login(server.host, server.port, server.username, server.password)
    filled, warmup_seconds = fill_and_warm(server, login, opts.count, opts.seed)
    results["fill"] = filled
    results["warmup_seconds"] = warmup_seconds
    floors = measure_floors(work, login, opts.repeat, opts.no_peer)
    triage = setup_triage(work, server, login.password)
    runs = measure_triage(triage, server, opts.repeat)
    notes = []
    if runs.initial.stored != opts.count:
        notes.append(f"triage stored {runs.initial.stored} messages, "
                     f"the server holds {opts.count}")
    results["changes"] = runs.changes
    results["rows"] = build_rows(floors, runs, opts.count)
    results["notes"] = notes
    results["db_threads"] = runs.initial.threads
    results["raw"] = raw_results(floors, runs)
    publish(results, opts.json_path)
    if opts.profile:
        step("profiling one more initial sync (cProfile)")
        profile_sync(triage.base, triage.env, triage.config_dir, triage.db_path)


def cleanup(server: Dovecot, work: Path, keep: bool) -> None:
    """Stop Dovecot and remove the temp dirs, or with --keep leave both and say where."""
    if keep:
        import atexit

        atexit.unregister(server.stop)
        pid = server._proc.pid if server._proc else "?"
        print(f"kept: Dovecot pid {pid} on {server.host}:{server.port} in {server.directory} "
              f"(stop: kill {pid}); work dir {work}", file=sys.stderr)
    else:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if not Dovecot.available():
        print("Dovecot is not installed (apt-get install dovecot-imapd)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="mailtriage-bench-"))
    server = Dovecot()
    results: dict[str, Any] = {"count": opts.count, "seed": opts.seed, "batch_size": BATCH,
                               "repeat": opts.repeat, "now": NOW_ISO, "machine": machine(),
                               "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    try:
        server.start()
        run_benchmark(server, work, opts, results)
    finally:
        cleanup(server, work, opts.keep)
    return 0


def profile_sync(base: list[str], env: dict[str, str], config_dir: Path, db_path: Path) -> None:
    """One more initial sync into a fresh db, profiled: py-spy (all threads) if installed.

    cProfile sees only the main thread, and the sync fetches and parses on a second one.
    """
    remove_db(db_path)
    out_dir = BENCH / ".work"
    out_dir.mkdir(exist_ok=True)
    pyspy = shutil.which("py-spy")
    if pyspy:
        out = out_dir / "sync.pyspy.txt"
        argv = [pyspy, "record", "-r", "250", "-f", "raw", "--threads", "--idle", "-o", str(out),
                "--", *base, "sync"]
        res = run_child(argv, env=env, cwd=config_dir)
        print(f"\nprofiled initial sync (py-spy, 250 Hz): {res['seconds']:.2f} s "
              f"(rc {res['rc']}); collapsed stacks in {out}")
        summarize_collapsed(out)
        return
    import pstats

    out = out_dir / "sync.prof"
    argv = [base[0], "-m", "cProfile", "-o", str(out), *base[1:], "sync"]
    if base[1] == "-c":
        argv = [base[0], "-m", "cProfile", "-o", str(out), "-m", "mailtriage.cli", *base[3:],
                "sync"]
    res = run_child(argv, env=env, cwd=config_dir)
    print(f"\nprofiled initial sync (cProfile, main thread only): {res['seconds']:.2f} s "
          f"(rc {res['rc']}); {out}")
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


def summarize_collapsed(path: Path, top: int = 15) -> None:
    """Per thread: samples, the hottest leaf frames, and the hottest mailtriage frames."""
    from collections import Counter, defaultdict

    leaf: defaultdict[str, Counter[str]] = defaultdict(Counter)
    ours: defaultdict[str, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(":")[-1].strip() or frames[0]
        total[thread] += int(count)
        leaf[thread][frames[-1]] += int(count)
        for frame in set(frames[1:]):
            if "scripts/" in frame or "mailtriage" in frame:
                ours[thread][frame] += int(count)
    for thread, samples in total.most_common():
        print(f"\n== thread {thread}: {samples} samples ({samples / 250:.1f} s)")
        print("   self (leaf frames):")
        for frame, n in leaf[thread].most_common(top):
            print(f"   {n:6d} {100 * n / samples:5.1f}%  {frame[:110]}")
        print("   inclusive (mailtriage frames):")
        for frame, n in ours[thread].most_common(top):
            print(f"   {n:6d} {100 * n / samples:5.1f}%  {frame[:110]}")


if __name__ == "__main__":
    sys.exit(main())
