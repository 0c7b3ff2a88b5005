"""Sync: bring ``state.db`` level with the mailbox, doing work in proportion to what changed.

Per folder (:func:`sync_folder`): a cheap check (IMAP: one STATUS, milliseconds) decides
whether anything changed at all.  If so, the folder is examined read-only and four steps
follow, each a function below: flags of stored messages, new messages in batches, more of
the few that may be delivery reports, and what was expunged.  Each batch is one
transaction that also advances ``folders.last_uid``, so a sync killed anywhere resumes
exactly where it stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imapclient.exceptions import IMAPClientError

from . import mailstore, parse, triage
from .accounts import check_identity, record_identity
from .config import AccountConfig, Config
from .errors import FolderError, SyncError, Throttled
from .imap import IMAPSession, describe_error
from .source import DRAFTS, SENT, FolderStatus, Source
from .store import chunks, get_meta, iso, parse_iso, set_meta

if TYPE_CHECKING:
    import sqlite_utils

# RFC 5530 codes of a server that limits us: not a failure, a reason to wait longer
THROTTLE_CODES = re.compile(r"\[(OVERQUOTA|UNAVAILABLE|LIMIT)\]", re.IGNORECASE)
THROTTLE_BACKOFF = dt.timedelta(minutes=30)
THROTTLE_KEY = "throttled_until:"
log = logging.getLogger(__name__)
# Its own logger so `triage run`, silent otherwise, still says this once per run.
security_log = logging.getLogger("mailtriage.security")

# progress(folder, done, total): called before the first and after every batch
Progress = Callable[[str, int, int], None]
SourceFactory = Callable[[AccountConfig, Config], Source]
MAX_BACKOFF = 30.0  # seconds


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
    error: str | None = None  # why the server refused this folder; the others still synced


@dataclass
class SyncResult:
    folders: list[FolderResult] = field(default_factory=list)

    @property
    def new(self) -> int:
        return sum(f.new for f in self.folders)

    @property
    def failed(self) -> list[FolderResult]:
        return [f for f in self.folders if f.error]

    def failure(self) -> SyncError | None:
        """The refused folders as one error (exit 1, so cron notices); the other folders
        were synced and committed all the same."""
        failed = self.failed
        if not failed:
            return None
        each = "; ".join(f"{f.account}/{f.folder}: {f.error}" for f in failed)
        head = f"{len(failed)} folders not synced: " if len(failed) > 1 else ""
        others = len(self.folders) - len(failed)
        tail = f" (the other {others} synced)" if others else ""
        return SyncError(f"{head}{each}{tail}")

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
        done = f"{folders - len(self.failed)} of {folders}" if self.failed else str(folders)
        return f"synced {done} folder{'s' if folders != 1 else ''}: " + ", ".join(parts)


def extra_headers(config: Config) -> list[str]:
    """Header fields that rules ask for beyond the standard set."""
    names: set[str] = set()
    for rule in config.rules:
        names.update(rule.extra_headers)
    known = {h.lower() for h in parse.HEADER_FIELDS}
    return sorted(n for n in names if n.lower() not in known)


def open_source(account: AccountConfig, config: Config) -> Source:
    if account.source in ("maildir", "mbox"):
        from .local import LocalSession  # (mailbox): only for local sources

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
    session_factory: SourceFactory = open_source,
    retries: int = 2,
    sleep: Callable[[float], None] = time.sleep,
    refresh: bool = True,
) -> SyncResult:
    """Sync every (or the named) account, then bring threads and states up to date."""
    result = SyncResult()
    for account in config.accounts_named(accounts or ()):
        if account.source == "imap" and account.security == "none" and not account.is_loopback:
            security_log.warning(
                "%s.security: none: the password and mail cross the network to %s in clear "
                "text (allow_insecure: true)", account.key_prefix, account.host)
        _sync_account(db, config, account, now, result, full=full, progress=progress,
                      open_source=session_factory, retries=retries, sleep=sleep)
    if refresh:  # a caller syncing account by account refreshes once at the end
        triage.refresh(db, config, now)
    return result


def _sync_account(db: sqlite_utils.Database, config: Config, account: AccountConfig,
                  now: dt.datetime, result: SyncResult, *, full: bool,
                  progress: Progress | None, open_source: SourceFactory, retries: int,
                  sleep: Callable[[float], None]) -> None:
    """Every folder of one account.  A transient failure reconnects and resumes with the
    folders not yet done (bounded, with backoff); one that will not pass by itself (a
    refused login, an untrusted server: ``SyncError.retry``) is raised at once: retrying
    would lock the account or change nothing."""
    known = check_identity(db, account)
    if (until := throttled_until(db, account.name)) is not None and now < until:
        raise Throttled(f"{account.name}: the server limited us; left alone until "
                        f"{iso(until)}", fresh=False)
    partial: dict[str, FolderResult] = {}  # kept across retries, so counts add up
    for attempt in range(retries + 1):
        try:
            with open_source(account, config) as source:
                _sync_folders(db, config, source, account.name, now, result, partial,
                              full=full, progress=progress)
            if not known:
                record_identity(db, account, now)
            return
        except (SyncError, OSError, EOFError, IMAPClientError) as exc:
            # IMAPClientError: a connection cut mid-response surfaces as imaplib's abort
            # ("socket error: EOF"), not as an OSError.
            if isinstance(exc, SyncError):
                failure: SyncError = exc
            else:
                failure = SyncError(f"{account.name}: connection lost: {describe_error(exc)}")
            if (code := THROTTLE_CODES.search(str(exc))) is not None:
                until = now + THROTTLE_BACKOFF
                set_meta(db, THROTTLE_KEY + account.name, iso(until))
                raise Throttled(f"{account.name}: the server limits us ({code.group(0)}: too "
                                f"much mail or too many connections for now); left alone "
                                f"until {iso(until)}, then synced again") from None
            if not failure.retry or attempt == retries:
                raise failure from None
            log.warning("%s: %s; retrying (%d of %d)", account.name, failure, attempt + 1,
                        retries)
            sleep(min(MAX_BACKOFF, 2.0 ** (attempt + 1)))


def throttled_until(db: sqlite_utils.Database, account: str) -> dt.datetime | None:
    return parse_iso(get_meta(db, THROTTLE_KEY + account))


def _sync_folders(db: sqlite_utils.Database, config: Config, source: Source, account: str,
                  now: dt.datetime, result: SyncResult, partial: dict[str, FolderResult], *,
                  full: bool, progress: Progress | None) -> None:
    """The folders not done yet.  One the server refuses (renamed, deleted) is recorded on
    its row and in ``result``, and the others sync: one folder must not stop the rest."""
    done = {f.folder for f in result.folders if f.account == account}
    for folder, role in source.resolve_folders().items():
        if folder in done:
            continue
        res = partial.setdefault(folder, FolderResult(account, folder))
        try:
            sync_folder(db, config, source, account, folder, now, full=full,
                        progress=progress, res=res, role=role)
        except FolderError as exc:
            res.error = exc.reason
            mailstore.folder_failed(db, account, folder, exc.reason, role)
        result.folders.append(res)


def sync_folder(
    db: sqlite_utils.Database,
    config: Config,
    source: Source,
    account: str,
    folder: str,
    now: dt.datetime,
    *,
    full: bool = False,
    progress: Progress | None = None,
    res: FolderResult | None = None,
    role: str | None = None,
) -> FolderResult:
    """Bring one folder level with the source; counts accumulate in ``res``.

    ``role`` is ``sent`` or ``drafts`` for those folders: what is in Sent was sent by us,
    what is only in Drafts was never sent and answers nothing.
    """
    res = res or FolderResult(account, folder)
    row = mailstore.folder_row(db, account, folder)
    sweep = source.needs_flag_sweep and (full or _sweep_due(row, source.account, now))
    if row and not full and not sweep and source.unchanged(folder, row):
        db.table("folders").update((account, folder), {"synced_at": iso(now), "last_error": None})
        res.unchanged = True
        return res
    known = (row["uidvalidity"], row["highestmodseq"]) if row else None
    info = source.examine(folder, qresync=known if not full else None)
    validity = info.uidvalidity
    last_uid = 0
    if row and row["uidvalidity"] == validity and not full:
        last_uid = row["last_uid"] or 0
    elif row and row["uidvalidity"] not in (None, validity):
        res.uidvalidity_changed = True
        log.warning("%s/%s: UIDVALIDITY changed %s -> %s; re-mapping", account, folder,
                    row["uidvalidity"], validity)
    stored = (mailstore.stored_uids(db, account, folder, validity)
              if full or not source.ordered_uids else None)
    if row and not res.uidvalidity_changed:
        res.flags_changed = mailstore.update_flags(
            db, account, folder, validity,
            source.flag_changes(row, info, stored or set(), sweep=sweep))
    new_uids = source.new_uids(last_uid, stored)
    _fetch_new(db, config, source, account, folder, validity, new_uids, now, res, progress,
               role)
    if role not in (SENT, DRAFTS):
        res.bounces = mailstore.read_reports(db, source, account, folder, validity)
    # (--full started from UID 0: what it found stored counts too, or the resume point
    # would fall to 0 and the next sync fetch the whole folder again)
    final_uid = max([last_uid, *new_uids, *(stored or ())]) if source.ordered_uids else 0
    _expunges(db, source, account, folder, info, last_uid, final_uid, now, res, role)
    if sweep or (row is None and source.needs_flag_sweep):  # a first sync read every flag
        db.table("folders").update((account, folder), {"flags_swept_at": iso(now)})
    return res


def _sweep_due(row: dict[str, Any] | None, account: AccountConfig, now: dt.datetime) -> bool:
    """Whether a server without CONDSTORE is due to have all its flags read again."""
    if row is None:
        return False  # the first sync reads every message with its flags
    swept = parse_iso(row.get("flags_swept_at"))
    return swept is None or now - swept >= account.flag_sweep


def _fetch_new(db: sqlite_utils.Database, config: Config, source: Source, account: str,
               folder: str, validity: int, new_uids: list[int], now: dt.datetime,
               res: FolderResult, progress: Progress | None, role: str | None) -> None:
    """New messages in batches, each stored in one transaction with the resume point."""
    from .pipeline import prefetch  # (the parse worker, pickle): only when a folder changed

    done = 0
    if progress and new_uids:
        progress(folder, 0, len(new_uids))
    for batch, parsed in prefetch(source, list(chunks(new_uids, source.account.batch_size))):
        with db.atomic():
            n, errors = mailstore.store_batch(db, config, account, folder, validity, parsed,
                                              now, role=role)
            mailstore.save_progress(db, account, folder, validity,
                                    last_uid=max(batch) if source.ordered_uids else 0)
        res.new += n
        res.parse_errors += errors
        done += len(batch)
        if progress:
            progress(folder, done, len(new_uids))


def _expunges(db: sqlite_utils.Database, source: Source, account: str, folder: str,
              info: FolderStatus, last_uid: int, final_uid: int, now: dt.datetime,
              res: FolderResult, role: str | None) -> None:
    """What left the folder (and, after a UIDVALIDITY change, the old mapping); then the
    folder's new sync state, in one transaction."""
    validity = info.uidvalidity
    where = [account, folder, validity]
    with db.atomic():
        # Rows of an older UIDVALIDITY are stale mappings, also after a killed re-map.  (Two
        # ranges of the key, not "!=": that walked every location of the folder, 20 ms at
        # 100k messages, every sync.)
        for older_or_newer in ("<", ">"):
            db.execute("DELETE FROM locations WHERE account = ? AND folder = ? "
                       f"AND uidvalidity {older_or_newer} ?", where)
        if res.uidvalidity_changed:
            db.execute("UPDATE folders SET uidvalidity_changed_at = ? "
                       "WHERE account = ? AND folder = ?", [iso(now), account, folder])
        if source.vanished:  # QRESYNC told us exactly what was expunged
            res.expunged = mailstore.forget(db, account, folder, validity,
                                            [u for u in source.vanished if u <= last_uid])
        count = db.execute("SELECT COUNT(*) FROM locations WHERE account = ? AND folder = ? "
                           "AND uidvalidity = ?", where).fetchone()[0]
        server_count = info.messages
        if count != info.messages or not source.ordered_uids:
            present = set(source.all_uids())
            gone = [u for u in mailstore.stored_uids(db, account, folder, validity)
                    if u not in present]
            res.expunged += mailstore.forget(db, account, folder, validity, gone)
            server_count = len(present)
        db.table("folders").upsert(
            {"account": account, "folder": folder, "uidvalidity": validity,
             "last_uid": final_uid, "highestmodseq": info.highestmodseq,
             "uidnext": info.uidnext, "server_count": server_count,
             "synced_at": iso(now), "last_error": None, "role": role},
            pk=("account", "folder"),
        )
