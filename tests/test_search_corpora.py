"""``triage search`` over the real corpora in ../shared/corpora (skipped where absent),
synced through the real Dovecot: what it finds equals what a plain scan of the stored
rows finds, for words, phrases and prefixes taken from the mail itself; ranking, --state
and --limit on the notmuch list archive."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_corpora import CORPORA, NAMES, load_into

from mailtriage.store import open_db

from support.cli import ok
from support.mailfactory import write_config

pytestmark = [pytest.mark.corpora,
              pytest.mark.skipif(not CORPORA.is_dir(), reason=f"{CORPORA} not present")]

COLUMNS = ("subject", "from_name", "from_addr", "snippet")


def tokens(text: str | None) -> list[str]:
    """Words as the index's tokenizer sees them (unicode61, diacritics removed)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text or "")
                    if not unicodedata.combining(c))
    return [t.casefold() for t in re.findall(r"[^\W_]+", plain)]


def scan(rows: list[dict[str, Any]], words: list[str], phrase: bool = False,
         prefix: bool = False) -> set[int]:
    """The threads a plain scan finds: one message holding every word (a phrase: in a
    row in one column; a prefix: the start of a word)."""
    out = set()
    for r in rows:
        cols = [tokens(r[c]) for c in COLUMNS]
        if phrase:
            n = len(words)
            hit = any(col[i:i + n] == words for col in cols for i in range(len(col)))
        elif prefix:
            hit = any(t.startswith(words[0]) for col in cols for t in col)
        else:
            flat = {t for col in cols for t in col}
            hit = all(w in flat for w in words)
        if hit:
            out.add(r["thread_id"])
    return out


def synced(name: str, tmp_path: Path, mailbox, monkeypatch) -> tuple[Path, Any]:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    load_into(mailbox, name)
    cfg = write_config(tmp_path, mailbox)
    ok(cfg, "sync")
    return cfg, open_db(tmp_path / "state.db")


def search(cfg: Path, *query: str, opts: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return json.loads(ok(cfg, "search", "--json", "--limit", "10000", *opts, "--",
                         *query).stdout)


@pytest.mark.parametrize("name", NAMES)
def test_search_finds_what_a_scan_of_the_rows_finds(name, tmp_path, mailbox, monkeypatch):
    cfg, db = synced(name, tmp_path, mailbox, monkeypatch)
    rows = list(db.query(f"SELECT thread_id, {', '.join(COLUMNS)} FROM messages"))
    counts = Counter(t for r in rows for c in COLUMNS for t in set(tokens(r[c])) if len(t) > 3)
    words = [w for w, _n in counts.most_common(5)] + [w for w, n in counts.items() if n == 1][:5]
    assert words, "no words in the corpus?"
    for word in words:
        assert {t["id"] for t in search(cfg, word)} == scan(rows, [word]), word
    for word in words[:3]:
        stem = word[:4]
        assert {t["id"] for t in search(cfg, stem + "*")} == scan(rows, [stem], prefix=True)
    subjects = [tokens(r["subject"]) for r in rows if len(tokens(r["subject"])) >= 3]
    for words_of in subjects[:3]:
        phrase = words_of[1:3]
        got = {t["id"] for t in search(cfg, '"' + " ".join(phrase) + '"')}
        assert got == scan(rows, phrase, phrase=True), phrase
        assert got  # it came from a subject
    if len(words) > 1:
        pair = words[:2]
        assert {t["id"] for t in search(cfg, *pair)} == scan(rows, pair), pair


def test_notmuch_archive_ranking_state_and_limit(tmp_path, mailbox, monkeypatch):
    cfg, db = synced("notmuch-default", tmp_path, mailbox, monkeypatch)
    [freebsd] = {r[0] for r in db.execute(
        "SELECT thread_id FROM messages WHERE subject LIKE '%FreeBSD support%'")}
    hits = search(cfg, "freebsd")
    assert hits[0]["id"] == freebsd  # the thread named for it ranks first
    assert "FreeBSD" in hits[0]["subject"]
    text, spans = hits[0]["matches"]["text"], hits[0]["matches"]["spans"]
    assert {text[a:b].lower() for a, b in spans} == {"freebsd"}
    # a phrase: only threads holding these words side by side
    maildir = search(cfg, '"maildir storage"')
    assert maildir and all("Maildir storage" in t["subject"] for t in maildir)
    # the sender's name and address
    keith = {t["id"] for t in search(cfg, "keith", "packard")}
    assert keith == {r[0] for r in db.execute(
        "SELECT DISTINCT thread_id FROM messages WHERE from_addr = 'keithp@keithp.com'")}
    assert {t["id"] for t in search(cfg, "keithp@keithp.com")} == keith
    # accents folded: "Essai accentué" is found by "accentue"
    assert any("accentu" in t["subject"] for t in search(cfg, "accentue"))
    # --limit, --state
    assert len(search(cfg, "notmuch", opts=("--limit", "3"))) == 3
    ok(cfg, "close", str(freebsd))
    assert [t["id"] for t in search(cfg, "freebsd", opts=("--state", "closed"))] == [freebsd]
    assert freebsd not in {t["id"] for t in search(cfg, "freebsd", opts=("--state", "open"))}
