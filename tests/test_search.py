"""``triage search``: the safe query builder, the FTS5 index kept current by sync (real
Dovecot), notes, the migration over rows stored before it, and hostile queries."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest
import sqlite_utils
from hypothesis import given
from hypothesis import strategies as st

from mailtriage.config import load_config
from mailtriage.errors import UsageError
from mailtriage.schema import index_new_messages, migrations
from mailtriage.search import fts_query, search_threads, split_marks
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import ok, triage
from support.mailfactory import NOW, put, write_config

# ---------------------------------------------------------------------------------------
# The query builder (pure)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("refund", '"refund"'),
    ("refund invoice", '"refund" "invoice"'),
    ('"export to csv" now', '"export to csv" "now"'),
    ("invoi*", '"invoi"*'),
    ('"unbalanced phrase', '"unbalanced phrase"'),
    ("AND OR NOT", '"AND" "OR" "NOT"'),  # words, not operators
    ("NEAR(a b)", '"NEAR(a" "b)"'),
    ("col:foo", '"col:foo"'),  # no column filter
    ("-x", '"-x"'),
    ('say"hi"', '"say hi"'),
    ("* - \"\" ' x", '"x"'),  # nothing searchable dropped
])
def test_fts_query_quotes_every_term(text, expected):
    assert fts_query(text) == expected


@pytest.mark.parametrize("text", ["", "   ", '"', "*", "-", '""', "— …"])
def test_fts_query_without_words_is_a_usage_error(text):
    with pytest.raises(UsageError, match="nothing to search for"):
        fts_query(text)


@given(st.text(max_size=40))
def test_any_text_gives_a_query_fts5_accepts(text):
    """Whatever a person types: a UsageError, or a query FTS5 runs without a syntax error."""
    try:
        q = fts_query(text)
    except UsageError:
        return
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='unicode61 remove_diacritics 2')")
    con.execute("INSERT INTO t VALUES ('some text')")
    con.execute("SELECT * FROM t WHERE t MATCH ?", [q]).fetchall()


def test_split_marks_gives_clean_text_and_hit_spans():
    text, spans = split_marks("Hello \x02world\x03, the\n\x02World\x03\x1b[2J again")
    assert text == "Hello world, the World again"
    assert [text[a:b] for a, b in spans] == ["world", "World"]


# ---------------------------------------------------------------------------------------
# The index, kept current by sync against a real Dovecot
# ---------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    return mailbox, write_config(tmp_path, mailbox)


def run_sync(cfg):
    config = load_config(cfg)
    db = open_db(config.db_path)
    sync(db, config, NOW)
    return db


def found(cfg, *query: str, opts: tuple[str, ...] = ()) -> list[dict]:
    """``triage search --json OPTS -- QUERY...``: hostile words are never options."""
    return json.loads(ok(cfg, "search", "--json", *opts, "--", *query).stdout)


def ids(cfg, *query: str, opts: tuple[str, ...] = ()) -> list[int]:
    return [t["id"] for t in found(cfg, *query, opts=opts)]


def index_is_consistent(db) -> None:
    """FTS5's own check against the content tables: every row indexed with its values."""
    for fts in ("messages_fts", "notes_fts"):
        db.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)")


def thread_of(db, msgid: str) -> int:
    return db.execute("SELECT thread_id FROM messages WHERE message_id = ?", [msgid]).fetchone()[0]


def test_sync_keeps_the_index_current_new_mail_merges_and_uidvalidity(env):
    mb, cfg = env
    put(mb, msgid="a@c.test", subject="Printer on fire", body="The toner smells of smoke.")
    put(mb, msgid="b@c.test", subject="Invoice question", frm="Dave Ng <dave@d.test>",
        body="Where is invoice 77?")
    db = run_sync(cfg)
    printer = thread_of(db, "a@c.test")
    assert ids(cfg, "toner") == [printer]
    assert ids(cfg, "zebra") == []
    # new mail, found after the next sync with no extra step
    put(mb, msgid="c@c.test", subject="Zebra crossing", frm="Zoe <zoe@z.test>",
        body="A zebra ate the router.")
    db = run_sync(cfg)
    assert ids(cfg, "zebra") == [thread_of(db, "c@c.test")]
    # a reply referencing two threads merges them: each one's words find the survivor only
    put(mb, msgid="d@c.test", subject="Re: both", references=["a@c.test", "b@c.test"],
        body="Same problem with the printer and the invoice.")
    db = run_sync(cfg)
    survivor = thread_of(db, "a@c.test")
    assert thread_of(db, "b@c.test") == survivor
    assert ids(cfg, "toner") == ids(cfg, "invoice", "77") == [survivor]
    # UIDVALIDITY changes: locations re-mapped, the same messages, still found
    mb.change_uidvalidity("INBOX")
    db = run_sync(cfg)
    assert ids(cfg, "zebra") == [thread_of(db, "c@c.test")]
    index_is_consistent(db)


def test_changed_and_deleted_rows_stop_matching(env):
    mb, cfg = env
    put(mb, msgid="a@c.test", subject="Login broken", body="Password reset loops forever.")
    put(mb, msgid="b@c.test", subject="Other", frm="dave@d.test", body="Quokka sighting.")
    db = run_sync(cfg)
    # expunged on the server: the message (a fact that it arrived) stays, its thread is gone
    c = mb.client()
    c.select_folder("INBOX")
    c.delete_messages([2])
    c.expunge()
    c.logout()
    db = run_sync(cfg)
    gone = thread_of(db, "b@c.test")
    assert ids(cfg, "quokka") == [gone]
    assert [t["state"] for t in found(cfg, "quokka")] == ["gone"]
    assert ids(cfg, "quokka", opts=("--state", "open")) == []
    # then the row is deleted (a prune, by hand): no longer found, nothing left behind
    with db.atomic():
        for table in ("message_refs", "rule_hits"):
            db.execute(f"DELETE FROM {table} WHERE message IN "
                       "(SELECT id FROM messages WHERE message_id = 'b@c.test')")
        db.execute("DELETE FROM messages WHERE message_id = 'b@c.test'")
    assert ids(cfg, "quokka") == []
    # an indexed column updated: the old words stop matching, the new ones match
    with db.atomic():
        db.execute("UPDATE messages SET snippet = 'Fixed by clearing cookies.' "
                   "WHERE message_id = 'a@c.test'")
    assert ids(cfg, "loops") == []
    assert ids(cfg, "cookies") == [thread_of(db, "a@c.test")]
    # updates of other columns (sync marks rows triaged) leave the index alone
    with db.atomic():
        db.execute("UPDATE messages SET triaged = 1, dsn = NULL")
    assert ids(cfg, "cookies") == [thread_of(db, "a@c.test")]
    index_is_consistent(db)


def test_notes_are_found_by_their_text_and_kept_current(env):
    mb, cfg = env
    put(mb, msgid="a@c.test", subject="Slow dashboard", body="It takes a minute to load.")
    db = run_sync(cfg)
    tid = thread_of(db, "a@c.test")
    ok(cfg, "note", str(tid), "Escalated to engineering as ENG-4711")
    [hit] = found(cfg, "escalated")
    assert hit["id"] == tid
    assert hit["matches"]["in"] == "note"
    text, spans = hit["matches"]["text"], hit["matches"]["spans"]
    assert [text[a:b] for a, b in spans] == ["Escalated"]
    assert ids(cfg, "eng-4711") == [tid]
    with db.atomic():
        db.execute("UPDATE notes SET text = 'Customer called back'")
    assert ids(cfg, "escalated") == []
    assert ids(cfg, "called") == [tid]
    # a row replaced whole (INSERT OR REPLACE, sqlite-utils' insert(replace=True))
    note_id = db.execute("SELECT id FROM notes").fetchone()[0]
    with db.atomic():
        db["notes"].insert({"id": note_id, "thread_id": tid, "author": "sam",
                            "at": "2026-11-23T11:00:00Z", "text": "Refund approved"},
                           replace=True)
    assert ids(cfg, "called") == []
    assert ids(cfg, "approved") == [tid]
    index_is_consistent(db)
    with db.atomic():
        db.execute("DELETE FROM notes")
    assert ids(cfg, "approved") == []
    index_is_consistent(db)


def test_json_is_the_threads_json_in_rank_order_with_matches(env):
    mb, cfg = env
    put(mb, msgid="a@c.test", subject="Refund for order 12", body="Please refund me.")
    put(mb, msgid="b@c.test", subject="Hello", frm="dave@d.test",
        body="Not urgent, but a refund would be nice.", date=NOW - dt.timedelta(minutes=5))
    db = run_sync(cfg)
    hits = found(cfg, "refund")
    # the subject hit ranks first, although the other thread is more recent
    assert [t["id"] for t in hits] == [thread_of(db, "a@c.test"), thread_of(db, "b@c.test")]
    listed = {t["id"]: t for t in json.loads(ok(cfg, "threads", "--json").stdout)}
    for t in hits:
        assert {k: v for k, v in t.items() if k != "matches"} == listed[t["id"]]
    assert len(found(cfg, "refund", opts=("--limit", "1"))) == 1
    ok(cfg, "close", str(thread_of(db, "a@c.test")))
    assert ids(cfg, "refund", opts=("--state", "closed")) == [thread_of(db, "a@c.test")]
    assert ids(cfg, "refund", opts=("--state", "open")) == [thread_of(db, "b@c.test")]
    # piped (CliRunner is not a terminal): a table, the hit's text, no escapes
    out = ok(cfg, "search", "refund").stdout
    assert "Refund for order 12" in out and "\x1b" not in out


@pytest.mark.parametrize("query", ['"', "AND", "*", "NEAR(", "-x", "col:foo", "a OR", "NOT b",
                                   '"half a phrase', "(", "^x", "x:", "'", "a AND OR b*"])
def test_hostile_queries_give_results_or_one_line(env, query):
    mb, cfg = env
    put(mb, msgid="a@c.test", subject="a x b foo", body="NOT near col foo")
    run_sync(cfg)
    for args in (["--json"], []):
        res = triage(cfg, "search", *args, "--", query)
        assert res.exit_code in (0, 2), (query, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        if res.exit_code == 2:
            assert res.output.strip().count("\n") == 0, res.output
            assert res.output.startswith("Error: nothing to search for")


# ---------------------------------------------------------------------------------------
# The migration indexes the rows stored before it
# ---------------------------------------------------------------------------------------


def test_m006_indexes_rows_stored_before_it(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    older = sqlite_utils.Database(old)
    migrations.apply(older, stop_before="m006_search")
    assert "messages_fts" not in older.table_names()
    older.execute("INSERT INTO threads (id, subject, last_at, participants) "
                  "VALUES (1, 'Old thread', '2026-01-01T00:00:00Z', '[]')")
    older.execute("INSERT INTO messages (id, key, thread_id, subject, snippet) "
                  "VALUES (1, 'k', 1, 'Old thread', 'archaeology of mail')")
    older.execute("INSERT INTO notes (thread_id, author, at, text) "
                  "VALUES (1, 'sam', '2026-01-01T00:00:00Z', 'fossil note')")
    old.commit()
    old.close()
    db = open_db(path)
    assert [t["id"] for t in search_threads(db, "archaeology", NOW)] == [1]
    assert [t["matches"]["in"] for t in search_threads(db, "fossil", NOW)] == ["note"]
    index_is_consistent(db)


@pytest.mark.parametrize("max_expanded", [40, 1])
def test_prefix_spelled_out_finds_what_fts5s_own_prefix_finds(tmp_path, monkeypatch,
                                                             max_expanded):
    """``refu*`` is run as ("refund" OR "refunds" OR ...) when it stands for a few words
    (fast), as FTS5's prefix query otherwise: the same threads either way."""
    from mailtriage import search

    monkeypatch.setattr(search, "MAX_EXPANDED", max_expanded)
    db = open_db(tmp_path / "state.db")
    words = ["refund", "Refunds", "refused", "ref", "reference", "réfugié", "other"]
    with db.atomic():
        for n, word in enumerate(words, 1):
            db.execute("INSERT INTO threads (id, subject, last_at, participants) "
                       "VALUES (?, ?, '2026-11-01T00:00:00Z', '[]')", [n, f"About {word}"])
            db.execute("INSERT INTO messages (id, key, thread_id, subject, snippet) "
                       "VALUES (?, ?, ?, ?, ?)", [n, f"k{n}", n, f"About {word}", f"x {word}"])
        index_new_messages(db, 1)  # what sync's writer does after its INSERT
    native = {r[0] for r in db.execute(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH '\"refu\"*'")}
    assert native == {1, 2, 3, 6}  # réfugié: accents folded
    hits = search_threads(db, "refu* about", NOW, limit=None)
    assert {t["id"] for t in hits} == native
    for t in hits:
        text, spans = t["matches"]["text"], t["matches"]["spans"]
        assert any(text[a:b].lower().startswith(("refu", "réfu")) for a, b in spans), t


@pytest.mark.parametrize(("no_color", "bold"), [(None, True), ("1", False)])
def test_matches_are_bold_on_a_terminal_unless_no_color(env, no_color, bold):
    import os
    import sys

    import pexpect

    mailbox, cfg = env
    put(mailbox, msgid="r1@cust.test", subject="Refund please", frm="Ann <ann@cust.test>")
    run_sync(cfg)
    child_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color:
        child_env["NO_COLOR"] = no_color
    child = pexpect.spawn(sys.executable, ["-m", "mailtriage", "--config", str(cfg), "--now",
                                          NOW.isoformat(), "search", "refund"],
                          env=child_env, encoding="utf-8", timeout=30)
    child.expect(pexpect.EOF)
    out = child.before or ""
    assert "Refund" in out and ("\x1b[1m" in out) is bold, repr(out)
