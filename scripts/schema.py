"""The schema of ``state.db``: tables by migrations (sqlite-utils ``Migrations``, one
function per step, each in a transaction), indexes and views by one idempotent function
run on every open.

Server facts (``messages``, ``locations``, ``folders``) are rewritten by every sync; our
decisions and deeds (``thread_state``, ``tags``, ``history``, ``outbox``) live in their own
tables and are never overwritten by a re-sync.  Threads are derived rows that sync keeps
up to date, marked ``dirty`` in the same transaction that changes their messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .sqlitelib import Migrations

if TYPE_CHECKING:
    import sqlite_utils

migrations = Migrations("mailtriage")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.table("threads").create(
        {
            "id": int,
            "subject": str,
            "subject_norm": str,
            "first_at": str,
            "last_at": str,
            "message_count": int,
            "participants": str,  # JSON list of addresses
            "customer": str,
            "customer_name": str,
            "last_customer_at": str,
            "last_team_at": str,
            "waiting_since": str,  # set when the customer waits on us
            "first_response_at": str,
            "last_team_message_id": str,
            "last_team_template": str,  # X-Mailtriage-Template of our last message
            "last_sender": str,  # us | customer | auto
            "automated": int,
            "auto_signals": str,  # JSON list
            "gm_thrid": str,
            "dirty": int,
        },
        pk="id",
        defaults={"dirty": 1, "automated": 0, "message_count": 0},
    )
    db.table("messages").create(
        {
            "id": int,
            "key": str,
            "message_id": str,
            "in_reply_to": str,
            "refs": str,  # JSON list of msg-ids from References
            "from_addr": str,
            "from_name": str,
            "to_addrs": str,
            "cc_addrs": str,
            "reply_to": str,
            "subject": str,
            "subject_norm": str,
            "date": str,
            "arrived_at": str,
            "size": int,
            "snippet": str,
            "auto_signals": str,
            "headers": bytes,
            "parse_error": str,
            "thread_id": int,
            "gm_thrid": str,
            "template": str,  # X-Mailtriage-Template of a reply we sent
            "first_seen_at": str,
            "triaged": int,
        },
        pk="id",
        not_null={"key"},
        foreign_keys=[("thread_id", "threads", "id")],
        defaults={"triaged": 0},
    )
    db.table("message_refs").create(
        {"message": int, "ref": str, "thread_id": int},
        pk=("message", "ref"),
        foreign_keys=[("message", "messages", "id")],
    )
    db.table("locations").create(
        {
            "account": str,
            "folder": str,
            "uidvalidity": int,
            "uid": int,
            "message": int,
            "flags": str,
            "modseq": int,
            "internal_date": str,
        },
        pk=("account", "folder", "uidvalidity", "uid"),
        foreign_keys=[("message", "messages", "id")],
    )
    db.table("folders").create(
        {
            "account": str,
            "folder": str,
            "uidvalidity": int,
            "last_uid": int,
            "highestmodseq": int,
            "uidnext": int,
            "server_count": int,
            "synced_at": str,
            "uidvalidity_changed_at": str,
            "last_error": str,
        },
        pk=("account", "folder"),
    )
    db.table("thread_state").create(
        {
            "thread_id": int,
            "state": str,
            "snoozed_until": str,
            "priority": str,
            "changed_at": str,
        },
        pk="thread_id",
        foreign_keys=[("thread_id", "threads", "id")],
    )
    db.table("tags").create(
        {"thread_id": int, "tag": str, "added_at": str, "cause": str},
        pk=("thread_id", "tag"),
        foreign_keys=[("thread_id", "threads", "id")],
    )
    db.table("history").create(
        {
            "id": int,
            "thread_id": int,
            "at": str,
            "field": str,
            "old": str,
            "new": str,
            "cause": str,
        },
        pk="id",
        foreign_keys=[("thread_id", "threads", "id")],
    )
    db.table("rule_hits").create(
        {"message": int, "rule": str, "at": str},
        pk=("message", "rule"),
        foreign_keys=[("message", "messages", "id")],
    )
    db.table("thread_aliases").create({"old_id": int, "thread_id": int}, pk="old_id")
    db.table("replies").create(
        {
            "id": int,
            "thread_id": int,
            "template": str,
            "message_id": str,
            "to_addr": str,
            "subject": str,
            "mode": str,  # send | draft
            "holding": int,
            "auto": int,
            "at": str,
        },
        pk="id",
        foreign_keys=[("thread_id", "threads", "id")],
    )
    db.table("meta").create({"key": str, "value": str}, pk="key")


@migrations()
def m002_outbox_and_bounces(db: sqlite_utils.Database) -> None:
    """What we send, recorded before it is sent; bounces of it; what a sender proved."""
    db.table("outbox").create(
        {
            "id": int,
            "thread_id": int,
            "kind": str,  # reply | draft
            "template": str,
            "message_id": str,  # ours, fixed before the SMTP transaction
            "to_addr": str,
            "cc_addrs": str,  # JSON list
            "subject": str,
            "holding": int,
            "auto": int,
            "state": str,  # sending | sent | failed | unknown | drafted
            "error": str,  # the server's answer or why it was not sent
            "permanent": int,  # a failure a retry cannot fix (5xx, invalid address)
            "created_at": str,
            "settled_at": str,
            "pid": int,  # the process sending it, while state is sending
            "sent_copy": str,  # appended | provider | off | failed | pending
            "resolved_at": str,  # a person settled an unknown or failed row
        },
        pk="id",
        foreign_keys=[("thread_id", "threads", "id")],
    )
    if "replies" in db.table_names():
        db.execute(
            "INSERT INTO outbox (thread_id, kind, template, message_id, to_addr, cc_addrs, "
            "subject, holding, auto, state, created_at, settled_at, sent_copy) "
            "SELECT thread_id, CASE mode WHEN 'draft' THEN 'draft' ELSE 'reply' END, template, "
            "message_id, to_addr, '[]', subject, holding, auto, "
            "CASE mode WHEN 'draft' THEN 'drafted' ELSE 'sent' END, at, at, 'appended' "
            "FROM replies")
        db.table("replies").drop()
    db.table("bounces").create(
        {
            "message": int,  # the delivery report
            "recipient": str,
            "thread_id": int,  # the thread of our message that bounced
            "original_id": str,
            "status": str,
            "diagnostic": str,
            "at": str,
        },
        pk=("message", "recipient"),
        foreign_keys=[("message", "messages", "id"), ("thread_id", "threads", "id")],
    )
    messages = db.table("messages")
    for column in ("reply_to_name", "x_loop", "original_id", "auth_results", "dsn"):
        messages.add_column(column, str)
    for column in ("from_sent", "draft"):
        messages.add_column(column, int, not_null_default=0)
    db.table("folders").add_column("role", str)


@migrations()
def m003_accounts(db: sqlite_utils.Database) -> None:
    """The mailbox each account name stands for (accounts.py)."""
    db.table("accounts").create({"name": str, "identity": str, "recorded_at": str}, pk="name")


@migrations()
def m004_reports_in_the_outbox(db: sqlite_utils.Database) -> None:
    """cron's daily report is recorded before it is sent, like a reply (outbox.py)."""
    db.table("outbox").add_column("report_for", str)  # the local date of a report


@migrations()
def m005_members_and_notes(db: sqlite_utils.Database) -> None:
    """Who on the team owns a thread (a ``team.members`` name), and notes nobody else sees."""
    db.table("thread_state").add_column("assignee", str)
    db.table("notes").create(
        {"id": int, "thread_id": int, "author": str, "at": str, "text": str},
        pk="id",
        foreign_keys=[("thread_id", "threads", "id")],
    )


# Full-text search (search.py): external-content FTS5 tables over the rows themselves, so
# the text is stored once.  Triggers keep them right whatever changes or deletes a row: an
# external-content index must be told the *old* values of a row to forget it, which only a
# trigger sees.  New messages are the exception: sync indexes each batch with one
# statement (:func:`index_new_messages`, m012), a sixth of what a per-row trigger cost.
# Updates of other columns (triaged, dsn, thread_id on a merge) do not touch the index: the
# thread is joined at query time.  No prefix index: it costs sync half again the indexing
# time, for `ab*` queries people rarely type (3+ letter prefixes are fast without it).
SEARCHED = {
    "messages": ("subject", "from_name", "from_addr", "snippet"),
    "notes": ("text",),
}
FTS_TOKENIZER = "unicode61 remove_diacritics 2"  # café = cafe, Müller = muller


def _fts_sql(table: str, columns: tuple[str, ...]) -> list[str]:
    fts = f"{table}_fts"
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    forget = f"INSERT INTO {fts} ({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    learn = f"INSERT INTO {fts} (rowid, {cols}) VALUES (new.id, {new});"
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', "
        f"content_rowid='id', tokenize='{FTS_TOKENIZER}')",
        f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN {learn} END",
        f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN {forget} END",
        f"CREATE TRIGGER {fts}_au AFTER UPDATE OF id, {cols} ON {table} "
        f"BEGIN {forget} {learn} END",
        f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')",  # the rows stored before
    ]


def index_new_messages(db: sqlite_utils.Database, first_id: int) -> None:
    """Index the messages stored from ``first_id`` on, in the caller's transaction (the
    one that inserted them: no message is ever stored unindexed).  mailstore.store_batch is
    the one writer of new messages."""
    cols = ", ".join(SEARCHED["messages"])
    db.execute(f"INSERT INTO messages_fts (rowid, {cols}) SELECT id, {cols} FROM messages "
               "WHERE id >= ?", [first_id])


@migrations()
def m006_search(db: sqlite_utils.Database) -> None:
    """Full-text indexes of messages and notes, kept current by triggers (``triage search``)."""
    for table, columns in SEARCHED.items():
        for sql in _fts_sql(table, columns):
            db.execute(sql)


@migrations()
def m007_notify(db: sqlite_utils.Database) -> None:
    """What ``triage run`` told the team's chat about (notify.py), so each event is told once
    until it clears, and every attempt with its outcome.  No foreign key on ``thread_id``: a
    merged thread's id goes away, and its open rows simply clear at the next run."""
    db.table("notify_events").create(
        {
            "id": int,
            "event": str,  # overdue | bounced | delivery_unknown | urgent | sync_failed
            "thread_id": int,  # the thread, for all but sync_failed
            "account": str,  # the account, for sync_failed
            "since": str,  # the run that first saw it
            "cleared_at": str,  # the run that no longer saw it
            "notified_at": str,  # when a message listing it was delivered
            "attempts": int,  # messages listing it that no URL took
        },
        pk="id",
        defaults={"attempts": 0},
    )
    db.table("notify_attempts").create(
        {
            "id": int,
            "at": str,
            "target": str,  # the config entry (notify.urls[0]), never the URL
            "service": str,  # the URL's scheme, or url_env / url_cmd
            "events": int,  # how many events the message listed
            "ok": int,
            "error": str,  # why not, with nothing of the URL in it
        },
        pk="id",
    )


@migrations()
def m008_thread_decisions(db: sqlite_utils.Database) -> None:
    """What a person (or a keep_closed rule) decided about threads, by message ``key``:
    row ids and thread ids change with merges and re-threading, keys survive ``sync --full``
    and a UIDVALIDITY re-map.  Thread ids here are as they were at the time, informational,
    so no foreign key: merges delete threads (decisions.py)."""
    db.table("thread_decisions").create(
        {
            "id": int,
            "kind": str,  # merge | split | keep_closed
            "at": str,
            "cause": str,  # cli | rule:NAME
            "thread_id": int,  # merge: the survivor; split: the thread split
            "new_thread_id": int,  # split: the thread the messages went to
            "moved": str,  # JSON keys: merged into thread_id, or split off it
            "stayed": str,  # JSON keys: what thread_id held (merge) or kept (split)
            "message_key": str,  # keep_closed: the message that left the thread closed
        },
        pk="id",
    )


@migrations()
def m009_flag_sweep(db: sqlite_utils.Database) -> None:
    """When a folder's flags were last all read again: a server without CONDSTORE cannot
    say which changed (sync.py)."""
    db.table("folders").add_column("flags_swept_at", str)


@migrations()
def m011_gmail_labels(db: sqlite_utils.Database) -> None:
    """Gmail's labels of each message as it arrived, for rules (``label:``)."""
    db.table("messages").add_column("gm_labels", str)


@migrations()
def m010_daily_stats(db: sqlite_utils.Database) -> None:
    """One row per local day (``report.timezone``) that ``triage run`` writes, for the
    "Last 14 days" trend (dailystats.py): a day's row is updated by each run of that day
    and left as it was once the day is over."""
    db.table("daily_stats").create(
        {
            "day": str,  # local date, YYYY-MM-DD
            "open": int,  # open threads (an expired snooze counts as open)
            "overdue": int,  # unanswered past their SLA (what `overdue` lists as such)
            "followup": int,  # holding replies due for news
            "new": int,  # threads started that day (automated mail left out)
            "answered": int,  # threads we answered that day
            "first_responses": int,  # first replies sent that day
            "median_first_response_hours": float,
            "p90_first_response_hours": float,
            "oldest_wait_hours": float,  # the longest a customer of an open thread waited
            "updated_at": str,  # the run that wrote it
        },
        pk="day",
    )



@migrations()
def m012_search_in_bulk(db: sqlite_utils.Database) -> None:
    """New messages are indexed a batch at a time by sync (index_new_messages): the per-row
    insert trigger cost sync ~100 us a message, this ~15 (a third of its writing time)."""
    db.execute("DROP TRIGGER IF EXISTS messages_fts_ai")


@migrations()
def m013_follow_up_subjects(db: sqlite_utils.Database) -> None:
    """Whether a message's subject is a reply or forward form ("Re:", "Fwd:"): threading by
    subject (threader.py, rule 3) looks for stored follow-ups by it.  Without it, every
    batch read every stored first message of its subjects in a 14-day window: ~2,500 rows
    and 0.15 s a batch at 100k messages."""
    db.table("messages").add_column("follow_up_subject", int, not_null_default=0)
    stored = db.execute("SELECT id, subject FROM messages").fetchall()
    if not stored:  # a new database: nothing to mark (and subjects.py need not load)
        return
    from .subjects import is_follow_up_subject

    db.conn.executemany("UPDATE messages SET follow_up_subject = 1 WHERE id = ?",
                        [(i,) for i, subject in stored if is_follow_up_subject(subject or "")])

def ensure_shape(db: sqlite_utils.Database) -> None:
    """Indexes and views: idempotent, run after migrations on every open."""
    indexes = [
        ("messages", ["key"], True),
        ("messages", ["thread_id", "arrived_at"], False),
        ("messages", ["subject_norm", "arrived_at"], False),
        # covering: a thread's Message-IDs in order, and whether it has drafts, without
        # reading its (wide) messages rows -- overdue --json lists 27,000 threads' ids
        ("messages", ["thread_id", "draft", "arrived_at", "id", "message_id"], False),
        # covering: threading looks up "which thread holds this id" without touching the
        # (wide) messages rows
        ("message_refs", ["ref", "thread_id"], False),
        ("locations", ["message"], False),
        ("threads", ["last_at"], False),
        ("threads", ["first_at"], False),
        ("threads", ["last_team_at"], False),
        ("threads", ["waiting_since"], False),
        ("thread_state", ["state"], False),
        ("tags", ["tag"], False),
        ("history", ["thread_id", "at"], False),
        ("outbox", ["thread_id", "template"], False),
        ("outbox", ["message_id"], False),
        ("bounces", ["thread_id"], False),
        ("thread_state", ["assignee"], False),
        ("notes", ["thread_id", "at"], False),
        ("thread_decisions", ["message_key"], False),
        ("thread_decisions", ["kind"], False),
    ]
    for table, cols, unique in indexes:
        db.table(table).create_index(cols, unique=unique, if_not_exists=True)
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_threads_dirty ON threads(dirty) WHERE dirty = 1"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_messages_untriaged ON messages(triaged) WHERE triaged = 0"
    )
    db.execute(  # threading by subject: the few stored follow-ups without reply headers
        "CREATE INDEX IF NOT EXISTS idx_messages_follow_ups ON messages(subject_norm, arrived_at) "
        "WHERE follow_up_subject = 1 AND in_reply_to IS NULL AND refs IS NULL"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_outbox_open ON outbox(state) "
        "WHERE state IN ('sending', 'unknown', 'failed')"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_messages_dsn ON messages(dsn) WHERE dsn IS NOT NULL"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_messages_quarantined ON messages(first_seen_at) "
        "WHERE parse_error IS NOT NULL"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_notify_events_open ON notify_events(event, thread_id) "
        "WHERE cleared_at IS NULL"
    )
    db.create_view(
        "thread_overview",
        """
        SELECT t.id, t.subject, t.customer, s.state, s.priority, t.waiting_since,
               t.first_at, t.last_at, t.message_count,
               (SELECT group_concat(tag, ' ') FROM tags WHERE tags.thread_id = t.id) AS tags
        FROM threads t LEFT JOIN thread_state s ON s.thread_id = t.id
        """,
        replace=True,
    )
