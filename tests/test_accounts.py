"""One database, several configs: an account name stands for one mailbox (accounts.py).

Two configs whose accounts are both called ``default`` but are two mailboxes must not mix
them: the second is refused (one line, exit 2) until it gets a database or name of its own,
and renaming or re-pointing a recorded account is an explicit command.
"""

from __future__ import annotations

import json
import sqlite3

from support.cli import ok, triage
from support.faultproxy import FaultProxy
from support.mailfactory import mail, write_config


def _two_mailboxes(dovecot, request):
    alice = dovecot.add_user(f"alice-{request.node.name[:20]}@example.com", "alice-pass")
    bob = dovecot.add_user(f"bob-{request.node.name[:20]}@example.com", "bob-pass")
    alice.append("INBOX", mail(msgid="a1@c.test", subject="Alice's customer"))
    bob.append("INBOX", mail(msgid="b1@c.test", subject="Bob's customer"))
    return alice, bob


def _config(directory, account, db, password_var, **imap):
    directory.mkdir(exist_ok=True)
    return write_config(directory, account, db=str(db),
                        imap={"password_env": password_var, **imap})


def _subjects(db) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT subject FROM messages")}


def test_a_second_mailbox_under_the_same_name_is_refused(tmp_path, dovecot, request,
                                                         monkeypatch):
    alice, bob = _two_mailboxes(dovecot, request)
    monkeypatch.setenv("ALICE_PW", alice.password)
    monkeypatch.setenv("BOB_PW", bob.password)
    db = tmp_path / "shared" / "state.db"
    cfg_a = _config(tmp_path / "a", alice, db, "ALICE_PW")
    cfg_b = _config(tmp_path / "b", bob, db, "BOB_PW")
    ok(cfg_a, "sync")

    res = triage(cfg_b, "sync")
    assert res.exit_code == 2, res.output
    [line] = res.stderr.strip().splitlines()
    assert f"imap://{bob.username}@" in line and f"imap://{alice.username}@" in line
    assert "'default'" in line and str(cfg_b) in line
    assert _subjects(db) == {"Alice's customer"}  # nothing of Bob's mailbox stored
    assert triage(cfg_b, "run").exit_code == 2  # run refuses the same way

    # the explicit way out: the recorded mailbox gets another name, and config A uses it
    ok(cfg_b, "account", "rename", "default", "alice")
    cfg_a = write_config(tmp_path / "a", None, db=str(db), accounts=[{
        "name": "alice", "host": alice.host, "port": alice.port, "security": "none",
        "username": alice.username, "password_env": "ALICE_PW"}])
    assert "0 new messages" in ok(cfg_a, "sync").stderr  # nothing fetched again
    ok(cfg_b, "sync")
    assert _subjects(db) == {"Alice's customer", "Bob's customer"}
    listed = {r["name"]: r["identity"] for r in json.loads(ok(cfg_b, "account", "--json").stdout)}
    assert listed == {"alice": f"imap://{alice.username}@{alice.host}",
                      "default": f"imap://{bob.username}@{bob.host}"}
    assert triage(cfg_b, "account", "rename", "default", "alice").exit_code == 2  # taken
    assert triage(cfg_b, "account", "rename", "nosuch", "x").exit_code == 1


def test_a_mailbox_that_moved_is_adopted_explicitly(tmp_path, mailbox, dovecot, monkeypatch):
    mailbox.append("INBOX", mail(msgid="m1@c.test", subject="Moved"))
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        ok(write_config(tmp_path, mailbox, imap={"port": proxy.port}), "sync")
    ok(write_config(tmp_path, mailbox), "sync")  # another port (ssl, starttls): the same one
    with FaultProxy(dovecot.host, dovecot.port, listen_host="127.0.0.2") as proxy:
        cfg = write_config(tmp_path, mailbox, imap={"host": "127.0.0.2", "port": proxy.port})
        res = triage(cfg, "sync")
        assert res.exit_code == 2 and "triage account adopt default" in res.stderr
        ok(cfg, "account", "adopt", "default")
        assert "0 new messages" in ok(cfg, "sync").stderr
