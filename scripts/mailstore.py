"""Writing what the server says into the store: messages, their locations, the folders'
sync state.  Every function runs inside the caller's transaction (one per batch, so a
killed sync resumes with nothing lost or doubled) unless it says otherwise.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import bounces, parse, subjects
from .config import Config
from .schema import index_new_messages
from .source import DRAFTS, SENT, Fetched, FlagChanges, Source
from .store import chunks, insert_rows, iso, query_in, query_rows

if TYPE_CHECKING:
    import sqlite_utils

Parsed = list[tuple[Fetched, parse.ParsedMessage]]


def folder_row(db: sqlite_utils.Database, account: str, folder: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM folders WHERE account = ? AND folder = ?",
                         [account, folder]))
    return rows[0] if rows else None


def stored_uids(db: sqlite_utils.Database, account: str, folder: str,
                validity: int) -> set[int]:
    return {r[0] for r in db.execute(
        "SELECT uid FROM locations WHERE account = ? AND folder = ? AND uidvalidity = ?",
        [account, folder, validity])}


def read_reports(db: sqlite_utils.Database, session: Source, account: str, folder: str,
                 validity: int) -> int:
    """Messages stored as possible delivery reports (``dsn = 'pending'``) that are in this
    folder: fetch more of each and keep what it says (bounces.py links it to our mail once
    every folder is synced).  One we cannot read is cleared: it stays automated mail."""
    from .dsn import parse_delivery_report  # imported when a folder changed, not every run

    # From the few pending messages (a partial index) to their locations by message, not
    # through every location of the folder: SQLite's own choice, 40 ms at 100k, every sync
    pending = list(db.execute(
        "SELECT l.uid, m.id FROM messages m "
        "JOIN locations l INDEXED BY idx_locations_message ON l.message = m.id "
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


def forget(db: sqlite_utils.Database, account: str, folder: str, validity: int,
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


def folder_failed(db: sqlite_utils.Database, account: str, folder: str, error: str,
                  role: str | None) -> None:
    """Keep why a folder could not be synced on its row (made if it never synced), for the
    report; the rest of the row, the last good sync, stays.  Its own transaction."""
    with db.atomic():
        db.execute(
            "INSERT INTO folders (account, folder, last_error, role) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(account, folder) DO UPDATE SET last_error = excluded.last_error",
            [account, folder, error, role])


def save_progress(db: sqlite_utils.Database, account: str, folder: str, validity: int,
                 last_uid: int) -> None:
    db.execute(
        "INSERT INTO folders (account, folder, uidvalidity, last_uid) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(account, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
        "last_uid = MAX(COALESCE(CASE WHEN folders.uidvalidity = excluded.uidvalidity "
        "THEN folders.last_uid END, 0), excluded.last_uid)",
        [account, folder, validity, last_uid],
    )


def update_flags(db: sqlite_utils.Database, account: str, folder: str, validity: int,
                 changes: FlagChanges) -> int:
    """Store changed flags (and modseqs); return how many rows really changed."""
    if not changes:
        return 0
    rows = [(text, modseq, account, folder, validity, uid, text)
            for uid, (flags, modseq) in changes.items() for text in [" ".join(flags)]]
    with db.atomic():
        before = db.conn.total_changes
        db.conn.executemany(
            "UPDATE locations SET flags = ?, modseq = COALESCE(?, modseq) WHERE account = ? "
            "AND folder = ? AND uidvalidity = ? AND uid = ? AND flags IS NOT ?", rows)
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
        "subject_norm": subjects.normalize_subject(p.subject),
        "follow_up_subject": int(subjects.is_follow_up_subject(p.subject)),
        "date": iso(p.date),
        "arrived_at": iso(arrived),
        "size": f.size,
        "snippet": p.snippet,
        "auto_signals": json.dumps(p.auto_signals) if p.auto_signals else None,
        "headers": f.header_bytes,
        "parse_error": p.parse_error,
        "gm_thrid": f.gm_thrid,
        "gm_labels": json.dumps(list(f.gm_labels)) if f.gm_labels is not None else None,
        "template": p.template,
        "first_seen_at": seen_at or iso(now),
        "triaged": 0,
        "x_loop": json.dumps(p.x_loop) if p.x_loop else None,
        "original_id": p.original_id,
        "auth_results": json.dumps(p.auth_passes) if p.auth_passes else None,
        "from_sent": int(role == SENT),
        "draft": int(role == DRAFTS),
        "dsn": "pending" if p.may_be_bounce and role not in (SENT, DRAFTS) else None,
    }




def _seen_outside_drafts(db: sqlite_utils.Database, message_ids: Sequence[int],
                         role: str | None) -> None:
    """A stored message found in another folder: no longer a draft only; in Sent, ours."""
    sent = int(role == SENT)
    changed = list(query_rows(
        db, "SELECT id, thread_id FROM messages WHERE id IN ({in}) "
            "AND (draft = 1 OR from_sent < ?)", message_ids, [sent]))
    db.conn.executemany("UPDATE messages SET draft = 0, from_sent = MAX(from_sent, ?) "
                        "WHERE id = ?", [(sent, m) for m, _t in changed])
    db.conn.executemany("UPDATE threads SET dirty = 1 WHERE id = ?", [(t,) for _m, t in changed])


def _mark_returning(db: sqlite_utils.Database, message_ids: Sequence[int]) -> None:
    """Stored messages that were in no folder any more (their thread is gone) and are in
    one again: their threads are recomputed, so they come back."""
    returning = list(query_rows(
        db, "SELECT DISTINCT m.thread_id FROM messages m WHERE m.id IN ({in}) "
            "AND NOT EXISTS (SELECT 1 FROM locations l WHERE l.message = m.id)", message_ids))
    db.conn.executemany("UPDATE threads SET dirty = 1 WHERE id = ?", returning)


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
    from . import outbox  # these two only for new mail: a sync with none need not import them
    from .threader import NewMessage, assign_threads, link_set

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
            reply_subject=subjects.is_reply_subject(p.subject),
            forward_subject=subjects.is_forward_subject(p.subject), sender=p.from_addr,
            subject_norm=row["subject_norm"], participants=people,
            arrived_at=f.internal_date or p.date or now, gm_thrid=f.gm_thrid,
            message_id=p.message_id,
            parents=tuple(dict.fromkeys([*([p.in_reply_to] if p.in_reply_to else []),
                                         *reversed(p.references)])),
        ))
        next_id += 1
    if rows:
        # Thread first, so each row is written once, with its thread_id.
        thread_of = assign_threads(db, to_thread, config.team.is_us, now)
        for row in rows:
            row["thread_id"] = thread_of[row["id"]]
        columns = list(rows[0])
        insert_rows(db, f"INSERT INTO messages ({', '.join(columns)})",
                    [tuple(r[c] for c in columns) for r in rows])
        index_new_messages(db, rows[0]["id"])
        insert_rows(db, "INSERT OR IGNORE INTO message_refs (message, ref, thread_id)",
                    [(mid, ref, thread_of[mid]) for mid, ref in refs])
    if role == SENT and rows:  # a provider files a copy only of mail it accepted
        outbox.arrived_copies(db, [i for r in rows for i in (r["message_id"], r["original_id"])
                                   if i], now)
    if known:
        again = [ids[p.key] for _f, p in parsed if ids[p.key] in known]
        _mark_returning(db, again)
        if role != DRAFTS:
            _seen_outside_drafts(db, again, role)
    insert_rows(
        db, "INSERT OR REPLACE INTO locations (account, folder, uidvalidity, uid, message, "
            "flags, modseq, internal_date)",
        [(account, folder, validity, f.uid, ids[p.key], " ".join(f.flags), f.modseq,
          iso(f.internal_date)) for f, p in parsed],
    )
    return len(rows), errors
