"""Every real message under ../shared/corpora syncs over IMAP, threads, and shows.

The corpora are not part of the repository: these tests skip where ../shared is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mailtriage.config import load_config
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import triage
from support.dovecot import Account
from support.mailfactory import NOW, write_config

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
NAMES = sorted(p.name for p in CORPORA.iterdir() if p.is_dir()) if CORPORA.is_dir() else []

pytestmark = pytest.mark.skipif(not CORPORA.is_dir(),
                                reason=f"{CORPORA} not present (the corpora are not in the repo)")


def corpus_files(name: str) -> list[Path]:
    return sorted(p for p in (CORPORA / name).rglob("*")
                  if p.is_file() and p.name != "README.md")


def load_into(mailbox, name: str) -> int:
    """APPEND every file; the few a server refuses are delivered to the Maildir instead."""
    refused = []
    for path in corpus_files(name):
        raw = path.read_bytes()
        try:
            mailbox.append("INBOX", raw)
        except Exception:  # noqa: BLE001 - the server's opinion of broken mail
            refused.append(raw)
    if refused:
        mailbox.deliver_maildir("INBOX", refused)
    return len(corpus_files(name))


@pytest.mark.parametrize("name", NAMES)
def test_every_corpus_message_syncs_and_shows(name, tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    count = load_into(mailbox, name)
    cfg = write_config(tmp_path, mailbox)
    res = triage(cfg, "sync")
    assert res.exit_code == 0, res.output
    db = open_db(tmp_path / "state.db")
    assert db.execute("SELECT COUNT(*) FROM locations").fetchone()[0] == count
    # one row per distinct message: byte-identical copies collapse, nothing else is lost
    assert 0 < db["messages"].count <= count
    assert db.execute("SELECT COUNT(*) FROM messages WHERE thread_id IS NULL").fetchone()[0] == 0
    threads = json.loads(triage(cfg, "threads", "--json").stdout)
    assert sum(len(t["message_ids"]) for t in threads) == db["messages"].count
    for t in threads:
        for args in (["show", str(t["id"])], ["show", str(t["id"]), "--json"],
                     ["explain", str(t["id"])]):
            res = triage(cfg, *args)
            assert res.exit_code == 0, (args, res.output)
            assert "\x1b" not in res.output  # no terminal escapes from hostile headers
    html = tmp_path / "report.html"
    res = triage(cfg, "report", "--since", "30000d", "--output", str(html))
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "<script" not in html.read_text().lower()


def notmuch_threads(files: list[Path], workdir: Path) -> list[set[str]]:
    """Thread grouping as notmuch computes it (Debian's notmuch), by Message-ID."""
    maildir = workdir / "mail"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i, path in enumerate(files):
        shutil.copy(path, maildir / "cur" / f"{i}.corpus:2,")
    config = workdir / "notmuch-config"
    config.write_text(f"[database]\npath={maildir}\n[user]\nname=t\nprimary_email=t@t.test\n"
                      "[new]\ntags=inbox\n[maildir]\nsynchronize_flags=false\n")
    env = dict(os.environ, NOTMUCH_CONFIG=str(config))
    subprocess.run(["notmuch", "new", "--quiet"], env=env, check=True, capture_output=True)
    out = subprocess.run(["notmuch", "show", "--format=json", "--body=false", "*"], env=env,
                         check=True, capture_output=True, text=True).stdout

    def ids(node) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict) and "id" in node:
            found.add(node["id"])
        if isinstance(node, list):
            for child in node:
                found |= ids(child)
        return found

    return [ids(thread) for thread in json.loads(out)]


@pytest.mark.skipif(shutil.which("notmuch") is None, reason="notmuch not installed")
def test_notmuch_default_grouping_matches_notmuch(tmp_path: Path, mailbox: Account,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Our References/In-Reply-To grouping equals notmuch's on a real list archive."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    load_into(mailbox, "notmuch-default")
    cfg = write_config(tmp_path, mailbox)
    config = load_config(cfg)
    db = open_db(config.db_path)
    sync(db, config, NOW)
    ours: dict[int, set[str]] = {}
    for mid, tid in db.execute("SELECT message_id, thread_id FROM messages"):
        ours.setdefault(tid, set()).add(mid)
    theirs = notmuch_threads(corpus_files("notmuch-default"), tmp_path / "nm")
    assert len(theirs) == 24  # as the corpus README says
    assert sorted(map(sorted, ours.values())) == sorted(map(sorted, theirs))
