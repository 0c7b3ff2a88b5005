"""Start-up stays cheap: `triage --help` lists the commands without importing them, and no
command path imports or loads what it does not use (checked in fresh interpreters)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
import sqlite_utils
from click.testing import CliRunner
from sqlite_utils.plugins import pm

from mailtriage import imap
from mailtriage.cli import COMMANDS, cli
from mailtriage.store import open_db

from support.cli import ok
from support.mailfactory import NOW, put, write_config

# What each path must leave alone, by what it would cost: Jinja and imapclient are the
# heaviest; the rest is what only new mail, a local source or sending needs.
SENDING = {"imapclient", "imaplib", "smtplib", "mailtriage.imap", "mailtriage.smtp"}
NEW_MAIL = {"mailtriage.pipeline", "mailtriage.parseworker", "mailtriage.threader",
            "mailtriage.dsn", "mailtriage.local", "mailbox"}
TEMPLATES = {"jinja2", "mailtriage.compose"}
REFRESH = {"mailtriage.triage", "mailtriage.tagging", "mailtriage.subjects"}
QUERIES = SENDING | NEW_MAIL | TEMPLATES | REFRESH | {"mailtriage.parse", "mailtriage.sync"}


def run_python(code: str, *args: str, env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, check=False)


def modules_after(tmp_path: Path, *argv: str, env: dict[str, str] | None = None,
                  ) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules a new interpreter holds after running ``triage ARGV``."""
    listing = tmp_path / "modules.txt"
    code = ("import sys\nfrom mailtriage.cli import cli\n"
            "try:\n    cli(sys.argv[2:], prog_name='triage', terminal_width=80, "
            "standalone_mode=False)\n"
            "finally:\n    open(sys.argv[1], 'w').write('\\n'.join(sys.modules))")
    proc = run_python(code, str(listing), *argv, env=env)
    return set(listing.read_text().split()), proc


def test_the_command_table_is_each_commands_own_short_help():
    ctx = click.Context(cli)
    for name, (_module, short_help) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
        assert command.short_help == short_help, name


def test_every_command_a_module_defines_is_in_the_table():
    for module_name in {module for module, _help in COMMANDS.values()}:
        module = importlib.import_module(f"mailtriage.cli.{module_name}")
        for command in module.COMMANDS:
            assert COMMANDS.get(command.name, ("",))[0] == module_name, command.name


def test_help_from_the_table_is_the_help_of_the_loaded_commands(tmp_path):
    modules, fresh = modules_after(tmp_path, "--help")
    assert fresh.returncode == 0, fresh.stderr
    commands = {f"mailtriage.cli.{module}" for module, _help in COMMANDS.values()}
    assert not modules & (commands | {"sqlite_utils", "yaml", "mailtriage.config"})
    ctx = click.Context(cli)
    for name in COMMANDS:
        cli.get_command(ctx, name)
    loaded = CliRunner().invoke(cli, ["--help"], prog_name="triage", terminal_width=80)
    assert fresh.stdout == loaded.output


@pytest.fixture
def offline_config(tmp_path):
    """A config whose mailbox is never reached: for the commands that only query."""
    account = SimpleNamespace(host="127.0.0.1", port=9, username="support@example.com")
    return write_config(tmp_path, account)


@pytest.mark.parametrize(("argv", "unused"), [
    (["threads"], QUERIES),
    (["overdue", "--json"], QUERIES),
    (["report"], QUERIES - TEMPLATES),
])
def test_queries_import_neither_imap_nor_what_new_mail_needs(tmp_path, offline_config, argv,
                                                              unused):
    modules, proc = modules_after(tmp_path, "--config", str(offline_config),
                                  "--now", NOW.isoformat(), *argv)
    assert proc.returncode == 0, proc.stderr
    assert modules & unused == set()


def test_a_sync_with_nothing_new_imports_only_the_imap_side(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    cfg = write_config(tmp_path, mailbox)
    put(mailbox, "INBOX", msgid="q1@c.test", subject="Hello")
    ok(cfg, "sync")
    modules, proc = modules_after(tmp_path, "--config", str(cfg), "--now", NOW.isoformat(),
                                  "sync")
    assert proc.returncode == 0, proc.stderr
    assert "0 new messages" in proc.stderr
    assert "imapclient" in modules
    assert modules & (NEW_MAIL | TEMPLATES | {"mailtriage.outbox", "smtplib"}) == set()


def test_a_plain_connection_loads_no_certificates(tmp_path, mailbox, monkeypatch):
    """Building a TLS context loads the system's CA store: ~250 M instructions, a fifth of
    what a no-op sync over plain IMAP took with it."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setattr(imap, "ssl_context", lambda server: pytest.fail("a TLS context"))
    ok(write_config(tmp_path, mailbox), "sync")


def test_sqlite_utils_is_imported_without_numpy(tmp_path, offline_config):
    """(sqlitelib.py says why.)  An importable numpy stays unimported by a command that
    opens the store."""
    fake = tmp_path / "site" / "numpy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    modules, proc = modules_after(tmp_path, "--config", str(offline_config), "threads", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "sqlite_utils" in modules and "numpy" not in modules
    found = run_python("import numpy; print(numpy.__file__)", env=env)
    assert found.stdout.strip() == str(fake / "__init__.py")  # the fake was importable


class ConnectionSpy:
    def __init__(self) -> None:
        self.prepared: list[object] = []

    @sqlite_utils.hookimpl
    def prepare_connection(self, conn: object) -> None:
        self.prepared.append(conn)


def test_the_store_runs_no_sqlite_utils_plugins(tmp_path):
    """Running them means loading them, which reads the entry points of every installed
    distribution at each start (~65 M instructions here); mailtriage is no plugin host."""
    spy = ConnectionSpy()
    pm.register(spy)
    try:
        open_db(tmp_path / "state.db").close()
    finally:
        pm.unregister(spy)
    assert spy.prepared == []
