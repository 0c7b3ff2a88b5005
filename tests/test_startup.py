"""Start-up stays cheap: `triage --help` lists the commands without importing them, and no
command path imports or loads what it does not use (checked in fresh interpreters)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import sqlite_utils
from click.testing import CliRunner
from sqlite_utils.plugins import pm

from mailtriage.cli import COMMANDS, cli
from mailtriage.store import open_db


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


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)


def test_help_from_the_table_is_the_help_of_the_loaded_commands():
    fresh = run_python("import sys; from mailtriage.cli import cli; "
                       "cli(['--help'], prog_name='triage', terminal_width=80, "
                       "standalone_mode=False); "
                       "loaded = [m for m in sys.modules if m.startswith('mailtriage.cli.') "
                       "and m not in ('mailtriage.cli.app', 'mailtriage.cli.params')]; "
                       "sys.exit(str(loaded) if loaded else 0)")
    assert fresh.returncode == 0, fresh.stderr
    ctx = click.Context(cli)
    for name in COMMANDS:
        cli.get_command(ctx, name)
    loaded = CliRunner().invoke(cli, ["--help"], prog_name="triage", terminal_width=80)
    assert fresh.stdout == loaded.output


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
