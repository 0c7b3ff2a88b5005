"""Commands at once: cron's run, a sync, a person's reply and tags, all together.

Every writing command waits for the database (store.StateDatabase takes the write lock at
the start of each transaction, with a busy timeout) instead of failing with "database is
locked"; ``run`` and ``sync`` take the run lock and step aside for each other.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from mailtriage.cli.app import BUSY_MESSAGE
from mailtriage.config import load_config

from support import mailfactory
from support.cli import ok
from support.faultproxy import PASSWORD_VAR, assert_sound, connect, conversation_corpus, deliver
from support.mailfactory import NOW, write_config
from support.smtp_faults import FaultySMTP

ROUNDS = 6
CLI = [sys.executable, "-c", "from mailtriage.cli import cli; cli()"]


def start(cfg: Path, now: dt.datetime, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "--config", str(cfg), "--now", now.isoformat(), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))


def test_run_sync_reply_and_tag_at_once_all_succeed_and_the_db_is_sound(
        tmp_path, mailbox, monkeypatch):
    deliver(mailbox, conversation_corpus(threads=40, per_thread=4))
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    with FaultySMTP(mode="ok") as server:
        cfg = write_config(
            tmp_path, mailbox, imap={"folders": ["INBOX", "Sent"], "batch_size": 10},
            smtp={"host": server.host, "port": server.port, "security": "none"},
            agent={"name": "Support", "address": "support@example.com"},
            auto_ack={"template": "sorry", "after": "15m"},
            report={"to": ["team@example.com"], "at": "00:00"})
        ok(cfg, "sync")
        threads = [t["id"] for t in json.loads(ok(cfg, "threads", "--json").stdout)]
        replied, tagged = [], []
        for r in range(ROUNDS):
            now = NOW + dt.timedelta(minutes=10 * r)
            for n in range(5):  # new mail each round: sync and run have work to write
                mailfactory.put(mailbox, msgid=f"c{r}.{n}@new.test", subject=f"New {r}.{n}",
                                frm=f"new{r}{n}@new.test", date=now - dt.timedelta(hours=1))
            reply_to, tag = threads[2 * r], threads[2 * r + 1]
            procs = {
                "run": start(cfg, now, "run"),
                "sync": start(cfg, now, "sync"),
                "reply": start(cfg, now, "reply", str(reply_to), "sorry", "--send"),
                "tag": start(cfg, now, "tag", str(tag), "+vip"),
                "close": start(cfg, now, "close", str(threads[-1 - r])),
            }
            for name, proc in procs.items():
                _out, err = proc.communicate(timeout=120)
                lines = err.decode().strip().splitlines()
                assert proc.returncode == 0, (r, name, err.decode())
                if name == "run":  # quiet, as under cron
                    assert lines in ([], [BUSY_MESSAGE]), (r, name, lines)
                elif name == "sync":
                    assert lines == [BUSY_MESSAGE] or (
                        len(lines) == 1 and lines[0].startswith("synced ")), (r, lines)
                else:
                    assert not any("locked" in line for line in lines), (r, name, lines)
            replied.append(reply_to)
            tagged.append(tag)

    db_path = load_config(cfg).db_path
    assert_sound(db_path)
    conn = connect(db_path)
    sent = conn.execute("SELECT thread_id, message_id FROM outbox WHERE kind = 'reply' "
                        "AND state = 'sent' AND auto = 0").fetchall()
    assert sorted(tid for tid, _m in sent) == sorted(replied)
    at_server = [m.raw for m in server.received]
    for _tid, message_id in sent:  # each reply reached the server exactly once
        assert sum(message_id.encode() in data for data in at_server) == 1, message_id
    total = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'sent'").fetchone()[0]
    reports = conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'report'").fetchone()[0]
    assert reports == 1  # one simulated day, one report, however many runs
    assert len(at_server) == total  # replies, acknowledgements and the report, each once
    vip = {row[0] for row in conn.execute("SELECT thread_id FROM tags WHERE tag = 'vip'")}
    assert vip >= set(tagged)
