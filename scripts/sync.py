"""Sync: bring ``state.db`` level with the mailbox, doing work in proportion to what changed.

Per folder: a STATUS call (milliseconds) decides whether anything changed at all.
If so, the folder is EXAMINEd; flags changed since the stored HIGHESTMODSEQ are
refreshed (CONDSTORE), UIDs above the stored last UID are fetched in batches, and
expunges are found by comparing counts (and, only on a mismatch, a UID SEARCH).
Each batch is one transaction that also advances ``folders.last_uid``, so a sync
killed anywhere resumes exactly where it stopped.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import json
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils
from imapclient.exceptions import IMAPClientError

from . import bounces, outbox, parse, triage
from .config import AccountConfig, Config
from .dsn import parse_delivery_report
from .imap import AuthError, Fetched, IMAPSession, SyncError, describe_error
from .local import LocalSession
from .store import chunks, iso, query_in, query_rows
from .threader import NewMessage, assign_threads, link_set

log = logging.getLogger(__name__)
# Its own logger so `triage run`, silent otherwise, still says this once per run.
security_log = logging.getLogger("mailtriage.security")

Session = IMAPSession | LocalSession
# progress(folder, done, total): called before the first and after every batch
Progress = Callable[[str, int, int], None]


@dataclass
class FolderResult:
    account: str
    folder: str
    new: int = 0
    flags_changed: int = 0
    expunged: int = 0
    uidvalidity_changed: bool = False
    unchanged: bool = False
    parse_errors: int = 0
    bounces: int = 0


@dataclass
class SyncResult:
    folders: list[FolderResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refresh: triage.RefreshResult | None = None

    @property
    def new(self) -> int:
        return sum(f.new for f in self.folders)

    def summary(self) -> str:
        parts = [f"{self.new} new message{'s' if self.new != 1 else ''}"]
        flags = sum(f.flags_changed for f in self.folders)
        gone = sum(f.expunged for f in self.folders)
        bad = sum(f.parse_errors for f in self.folders)
        if flags:
            parts.append(f"{flags} flag changes")
        if gone:
            parts.append(f"{gone} removed")
        if bad:
            parts.append(f"{bad} unparseable (recorded)")
        if any(f.uidvalidity_changed for f in self.folders):
            parts.append("UIDVALIDITY changed: folder re-mapped")
        folders = len(self.folders)
        return f"synced {folders} folder{'s' if folders != 1 else ''}: " + ", ".join(parts)


def extra_headers(config: Config) -> list[str]:
    """Header fields that rules ask for beyond the standard set."""
    names: set[str] = set()
    for rule in config.rules:
        names.update(rule.extra_headers)
    known = {h.lower() for h in parse.HEADER_FIELDS}
    return sorted(n for n in names if n.lower() not in known)


def open_session(account: AccountConfig, config: Config) -> Session:
    if account.source in ("maildir", "mbox"):
        return LocalSession(account, extra_headers(config))
    return IMAPSession(account, extra_headers(config))


def sync(
    db: sqlite_utils.Database,
    config: Config,
    now: dt.datetime,
    *,
    full: bool = False,
    accounts: Sequence[str] | None = None,
    progress: Progress | None = None,
    session_factory: Callable[[AccountConfig, Config], Session] = open_session,
    retries: int = 2,
    sleep: Callable[[float], None] = time.sleep,
    refresh: bool = True,
) -> SyncResult:
    """Sync every (or the named) account, then bring threads and states up to date.

    A transient failure reconnects and resumes (bounded, with backoff); an
    authentication failure is raised at once: retrying would lock the account.
    """
    result = SyncResult()
    for account in config.accounts:
        if accounts and account.name not in accounts:
            continue
        if account.source == "imap" and account.security == "none" and not account.is_loopback:
            security_log.warning(
                "%s.security: none: the password and mail cross the network to %s in clear "
                "text (allow_insecure: true)", account.key_prefix, account.host)
        attempt = 0
        partial: dict[str, FolderResult] = {}  # kept across retries, so counts add up
        while True:
            done = {f.folder for f in result.folders if f.account == account.name}
            try:
                with session_factory(account, config) as session:
                    for folder, role in session.resolve_folders().items():
                        if folder in done:
                            continue
                        res = partial.setdefault(folder, FolderResult(account.name, folder))
                        sync_folder(db, config, session, account.name, folder, now,
                                    full=full, progress=progress, res=res, role=role)
                        result.folders.append(res)
                break
            except AuthError:
                raise
            except SyncError as exc:
                attempt += 1
                if attempt > retries:
                    raise
                log.warning("%s: %s; retrying (%d of %d)", account.name, exc, attempt, retries)
                sleep(min(30.0, 2.0 ** attempt))
            except (OSError, EOFError, IMAPClientError) as exc:
                # IMAPClientError: a connection cut mid-response surfaces as imaplib's
                # abort ("socket error: EOF"), not as an OSError.
                attempt += 1
                why = describe_error(exc)
                if attempt > retries:
                    raise SyncError(f"{account.name}: connection lost: {why}") from None
                log.warning("%s: connection lost (%s); retrying", account.name, why)
                sleep(min(30.0, 2.0 ** attempt))
    if refresh:  # a caller syncing account by account refreshes once at the end
        result.refresh = triage.refresh(db, config, now)
    return result


def _folder_row(db: sqlite_utils.Database, account: str, folder: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM folders WHERE account = ? AND folder = ?",
                         [account, folder]))
    return rows[0] if rows else None


def sync_folder(
    db: sqlite_utils.Database,
    config: Config,
    session: Session,
    account: str,
    folder: str,
    now: dt.datetime,
    *,
    full: bool = False,
    progress: Progress | None = None,
    res: FolderResult | None = None,
    role: str | None = None,
) -> FolderResult:
    """Bring one folder level with the server; counts accumulate in ``res``.

    ``role`` is ``sent`` or ``drafts`` for those folders: what is in Sent was sent by us,
    what is only in Drafts was never sent and answers nothing.
    """
    res = res or FolderResult(account, folder)
    row = _folder_row(db, account, folder)
    if row and not full and session.kind == "imap":
        st = session.status(folder)
        if (st.uidvalidity == row["uidvalidity"] and st.uidnext <= (row["last_uid"] or 0) + 1
                and st.messages == row["server_count"]
                and st.highestmodseq == row["highestmodseq"]):
            db.table("folders").update((account, folder),
                                       {"synced_at": iso(now), "last_error": None})
            res.unchanged = True
            return res

    known = (row["uidvalidity"], row["highestmodseq"]) if row else None
    info = session.examine(folder, qresync=known if not full else None)
    validity = info.uidvalidity
    last_uid = 0
    if row and row["uidvalidity"] == validity and not full:
        last_uid = row["last_uid"] or 0
    elif row and row["uidvalidity"] not in (None, validity):
        res.uidvalidity_changed = True
        log.warning("%s/%s: UIDVALIDITY changed %s -> %s; re-mapping", account, folder,
                    row["uidvalidity"], validity)

    stored_uids = {r[0] for r in db.execute(
        "SELECT uid FROM locations WHERE account = ? AND folder = ? AND uidvalidity = ?",
        [account, folder, validity])} if (session.kind == "local" or full) else None

    # 1. flags of messages we already have
    if session.kind == "imap" and row and not res.uidvalidity_changed:
        if session.condstore and row["highestmodseq"] and info.highestmodseq \
                and info.highestmodseq > row["highestmodseq"]:
            changed = session.changed_flags(row["highestmodseq"])
            res.flags_changed = _update_flags(db, account, folder, validity,
                                              {u: v for u, v in changed.items() if u <= last_uid})
    elif session.kind == "local" and stored_uids:
        current = session.flags()
        res.flags_changed = _update_flags(
            db, account, folder, validity,
            {u: (f, None) for u, f in current.items() if u in stored_uids}, only_if_changed=True)

    # 2. new messages, in batches, one transaction each
    if session.kind == "imap":
        new_uids = session.uids_above(last_uid)
        if stored_uids:
            new_uids = [u for u in new_uids if u not in stored_uids]
    else:
        new_uids = sorted(set(session.all_uids()) - (stored_uids or set()))
    batch_size = session.account.batch_size
    done = 0
    if progress and new_uids:
        progress(folder, 0, len(new_uids))
    for batch, parsed in prefetch(session, list(chunks(new_uids, batch_size))):
        with db.atomic():
            n, errors = store_batch(db, config, account, folder, validity, parsed, now,
                                    role=role)
            _save_folder(db, account, folder, validity,
                         last_uid=max(batch) if session.kind == "imap" else 0)
        res.new += n
        res.parse_errors += errors
        done += len(batch)
        if progress:
            progress(folder, done, len(new_uids))

    # 3. delivery reports among the new mail: read more of them, find whose mail bounced
    if role not in ("sent", "drafts"):
        res.bounces = _read_reports(db, session, account, folder, validity)

    # 4. expunges (and, after a UIDVALIDITY change, the old mapping)
    with db.atomic():
        # Rows of an older UIDVALIDITY are stale mappings, also after a killed re-map.
        db.execute(
            "DELETE FROM locations WHERE account = ? AND folder = ? AND uidvalidity != ?",
            [account, folder, validity])
        if res.uidvalidity_changed:
            db.execute("UPDATE folders SET uidvalidity_changed_at = ? "
                       "WHERE account = ? AND folder = ?", [iso(now), account, folder])
        if session.vanished:  # QRESYNC told us exactly what was expunged
            res.expunged = _forget(db, account, folder, validity,
                                   [u for u in session.vanished if u <= last_uid])
        count = db.execute(
            "SELECT COUNT(*) FROM locations WHERE account = ? AND folder = ? AND uidvalidity = ?",
            [account, folder, validity]).fetchone()[0]
        if count != info.messages or session.kind == "local":
            present = set(session.all_uids())
            gone = [r[0] for r in db.execute(
                "SELECT uid FROM locations WHERE account = ? AND folder = ? AND uidvalidity = ?",
                [account, folder, validity]) if r[0] not in present]
            res.expunged += _forget(db, account, folder, validity, gone)
            server_count = len(present)
        else:
            server_count = info.messages
        final_uid = max([last_uid, *new_uids]) if session.kind == "imap" else 0
        db.table("folders").upsert(
            {"account": account, "folder": folder, "uidvalidity": validity,
             "last_uid": final_uid, "highestmodseq": info.highestmodseq,
             "uidnext": info.uidnext, "server_count": server_count,
             "synced_at": iso(now), "last_error": None, "role": role},
            pk=("account", "folder"),
        )
    return res


def _parse_raw(items: list[tuple[bytes, bytes | None]]) -> list[parse.ParsedMessage]:
    return [parse.parse_message(header, body) for header, body in items]


class BatchParser:
    """Parses batches in a second process, so parsing gets a core of its own.

    Parsing is pure Python: on a thread it would only queue for the GIL behind the
    fetch and the SQLite writes.  The process is forked before the fetch thread
    starts and only ever sees message bytes; syncs of a single batch parse inline.
    """

    def __init__(self) -> None:
        self.pool: Any = None
        if "fork" in multiprocessing.get_all_start_methods():
            self.pool = multiprocessing.get_context("fork").Pool(1)

    def submit(self, fetched: list[Fetched]) -> Callable[[], Parsed]:
        if self.pool is None:
            parsed = parse_batch(fetched)
            return lambda: parsed
        pending = self.pool.apply_async(
            _parse_raw, ([(f.header_bytes, f.body_prefix) for f in fetched],))
        return lambda: list(zip(fetched, pending.get(), strict=True))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def prefetch(session: Session, batches: Sequence[Sequence[int]]
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
    handoff: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def work() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                handoff.put((batch, session.fetch(batch)))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(exc)
        else:
            handoff.put(None)

    worker = threading.Thread(target=work, name="mailtriage-fetch", daemon=True)
    worker.start()
    waiting: collections.deque[tuple[Sequence[int], Callable[[], Parsed]]] = \
        collections.deque()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, BaseException):
                while waiting:  # what was fetched before the failure is still stored
                    batch, result = waiting.popleft()
                    yield batch, result()
                raise item
            if item is not None:
                waiting.append((item[0], parser.submit(item[1])))
            while waiting and (len(waiting) > 1 or item is None):
                batch, result = waiting.popleft()
                yield batch, result()
            if item is None:
                return
    finally:
        stop.set()
        while worker.is_alive():  # unblock a put() so the thread can end
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        worker.join()
        parser.close()


def _read_reports(db: sqlite_utils.Database, session: Session, account: str, folder: str,
                  validity: int) -> int:
    """Messages stored as possible delivery reports (``dsn = 'pending'``) that are in this
    folder: fetch more of each and keep what it says (bounces.py links it to our mail once
    every folder is synced).  One we cannot read is cleared: it stays automated mail."""
    pending = list(db.execute(
        "SELECT l.uid, m.id FROM messages m JOIN locations l ON l.message = m.id "
        "WHERE m.dsn = 'pending' AND l.account = ? AND l.folder = ? AND l.uidvalidity = ?",
        [account, folder, validity]))
    found = 0
    for part in chunks(pending, 50):
        raws = session.fetch_report([uid for uid, _m in part])
        with db.atomic():
            for uid, message in part:
                report = parse_delivery_report(raws.get(uid, b""))
                found += report is not None
                db.execute("UPDATE messages SET dsn = ? WHERE id = ?",
                           [bounces.to_json(report) if report else None, message])
    return found


def _forget(db: sqlite_utils.Database, account: str, folder: str, validity: int,
            uids: Sequence[int]) -> int:
    """Drop the locations of expunged UIDs; their threads get recomputed. Returns how many."""
    removed = 0
    for part in chunks(list(uids)):
        marks = ",".join("?" * len(part))
        args = [account, folder, validity, *part]
        touched = [r[0] for r in db.execute(
            "SELECT DISTINCT m.thread_id FROM locations l JOIN messages m ON m.id = l.message "
            "WHERE l.account = ? AND l.folder = ? AND l.uidvalidity = ? "
            f"AND l.uid IN ({marks})", args)]
        removed += db.execute(
            "DELETE FROM locations WHERE account = ? AND folder = ? AND uidvalidity = ? "
            f"AND uid IN ({marks})", args).rowcount
        db.conn.executemany("UPDATE threads SET dirty = 1 WHERE id = ?",
                            [(t,) for t in touched if t])
    return removed


def _save_folder(db: sqlite_utils.Database, account: str, folder: str, validity: int,
                 last_uid: int) -> None:
    db.execute(
        "INSERT INTO folders (account, folder, uidvalidity, last_uid) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(account, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
        "last_uid = MAX(COALESCE(CASE WHEN folders.uidvalidity = excluded.uidvalidity "
        "THEN folders.last_uid END, 0), excluded.last_uid)",
        [account, folder, validity, last_uid],
    )


def _update_flags(
    db: sqlite_utils.Database, account: str, folder: str, validity: int,
    changes: dict[int, tuple[tuple[str, ...], int | None]], only_if_changed: bool = False,
) -> int:
    if not changes:
        return 0
    rows = [(" ".join(flags), modseq, account, folder, validity, uid)
            for uid, (flags, modseq) in changes.items()]
    where = " AND flags IS NOT ?" if only_if_changed else ""
    with db.atomic():
        before = db.conn.total_changes
        db.conn.executemany(
            "UPDATE locations SET flags = ?, modseq = COALESCE(?, modseq) WHERE account = ? "
            f"AND folder = ? AND uidvalidity = ? AND uid = ?{where}",
            [(*r, r[0]) for r in rows] if only_if_changed else rows,
        )
        return db.conn.total_changes - before


@functools.lru_cache(maxsize=4096)
def _address_list(addresses: tuple[str, ...]) -> str:
    return json.dumps(list(addresses))  # To/Cc repeat a lot: support@ is in most of them


def message_row(p: parse.ParsedMessage, f: Fetched, now: dt.datetime,
                seen_at: str | None = None, role: str | None = None) -> dict[str, Any]:
    arrived = f.internal_date or p.date or now
    return {
        "key": p.key,
        "message_id": p.message_id or p.display_id,
        "in_reply_to": p.in_reply_to,
        "refs": json.dumps(p.references) if p.references else None,
        "from_addr": p.from_addr,
        "from_name": p.from_name or None,
        "to_addrs": _address_list(tuple(p.to)),
        "cc_addrs": _address_list(tuple(p.cc)),
        "reply_to": p.reply_to,
        "reply_to_name": p.reply_to_name or None,
        "subject": p.subject,
        "subject_norm": parse.normalize_subject(p.subject),
        "date": iso(p.date),
        "arrived_at": iso(arrived),
        "size": f.size,
        "snippet": p.snippet,
        "auto_signals": json.dumps(p.auto_signals) if p.auto_signals else None,
        "headers": f.header_bytes,
        "parse_error": p.parse_error,
        "gm_thrid": f.gm_thrid,
        "template": p.template,
        "first_seen_at": seen_at or iso(now),
        "triaged": 0,
        "x_loop": json.dumps(p.x_loop) if p.x_loop else None,
        "original_id": p.original_id,
        "auth_results": json.dumps(p.auth_passes) if p.auth_passes else None,
        "from_sent": int(role == "sent"),
        "draft": int(role == "drafts"),
        "dsn": "pending" if p.may_be_bounce and role not in ("sent", "drafts") else None,
    }


Parsed = list[tuple[Fetched, parse.ParsedMessage]]


def _seen_outside_drafts(db: sqlite_utils.Database, message_ids: Sequence[int],
                         role: str | None) -> None:
    """A stored message found in another folder: no longer a draft only; in Sent, ours."""
    sent = int(role == "sent")
    changed = list(query_rows(
        db, "SELECT id, thread_id FROM messages WHERE id IN ({in}) "
            "AND (draft = 1 OR from_sent < ?)", message_ids, [sent]))
    db.conn.executemany("UPDATE messages SET draft = 0, from_sent = MAX(from_sent, ?) "
                        "WHERE id = ?", [(sent, m) for m, _t in changed])
    db.conn.executemany("UPDATE threads SET dirty = 1 WHERE id = ?", [(t,) for _m, t in changed])


def parse_batch(fetched: Iterable[Fetched]) -> Parsed:
    return [(f, parse.parse_message(f.header_bytes, f.body_prefix)) for f in fetched]


def store_batch(
    db: sqlite_utils.Database,
    config: Config,
    account: str,
    folder: str,
    validity: int,
    parsed: Sequence[tuple[Fetched, parse.ParsedMessage]],
    now: dt.datetime,
    role: str | None = None,
) -> tuple[int, int]:
    """Store one parsed batch (inside the caller's transaction); return (new, parse errors)."""
    seen_at = iso(now)
    keys = {p.key for _f, p in parsed}
    ids = {r["key"]: r["id"] for r in query_in(
        db, "SELECT id, key FROM messages WHERE key IN ({in})", keys)}
    next_id = (db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]) + 1
    rows: list[dict[str, Any]] = []
    refs: list[tuple[int, str]] = []
    to_thread: list[NewMessage] = []
    errors = 0
    known = set(ids.values())  # stored before: this is one more location of them
    for f, p in parsed:
        if p.key in ids:
            continue
        ids[p.key] = next_id
        row = message_row(p, f, now, seen_at, role)
        row["id"] = next_id
        rows.append(row)
        if p.parse_error:
            errors += 1
        links = link_set(p.message_id, p.in_reply_to, p.references)
        if p.original_id:  # the id we gave it, before Microsoft's SMTP rewrote it
            links.add(p.original_id)
        refs.extend((next_id, link) for link in links)
        people = set(p.to) | set(p.cc) | ({p.from_addr} if p.from_addr else set())
        to_thread.append(NewMessage(
            id=next_id, links=links,
            has_reply_headers=bool(p.in_reply_to or p.references),
            reply_subject=parse.is_reply_subject(p.subject),
            forward_subject=parse.is_forward_subject(p.subject), sender=p.from_addr,
            subject_norm=row["subject_norm"], participants=people,
            arrived_at=f.internal_date or p.date or now, gm_thrid=f.gm_thrid,
        ))
        next_id += 1
    if rows:
        # Thread first, so each row is written once, with its thread_id.
        thread_of = assign_threads(db, to_thread, config.team.is_us, now)
        for row in rows:
            row["thread_id"] = thread_of[row["id"]]
        columns = list(rows[0])
        db.conn.executemany(
            f"INSERT INTO messages ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [tuple(r[c] for c in columns) for r in rows],
        )
        db.conn.executemany(
            "INSERT OR IGNORE INTO message_refs (message, ref, thread_id) VALUES (?, ?, ?)",
            [(mid, ref, thread_of[mid]) for mid, ref in refs])
    if role == "sent" and rows:  # a provider files a copy only of mail it accepted
        outbox.arrived_copies(db, [i for r in rows for i in (r["message_id"], r["original_id"])
                                   if i], now)
    if known and role != "drafts":
        _seen_outside_drafts(db, [ids[p.key] for _f, p in parsed if ids[p.key] in known], role)
    db.conn.executemany(
        "INSERT OR REPLACE INTO locations (account, folder, uidvalidity, uid, message, flags, "
        "modseq, internal_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(account, folder, validity, f.uid, ids[p.key], " ".join(f.flags), f.modseq,
          iso(f.internal_date)) for f, p in parsed],
    )
    return len(rows), errors
