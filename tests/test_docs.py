"""Every command has help text and a row in the README; the README's schema matches."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from mailtriage.cli import cli
from mailtriage.store import open_db

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def commands() -> list[tuple[str, click.Command]]:
    out = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        out.append((name, cmd))
    return out


@pytest.mark.parametrize(("name", "command"), commands())
def test_command_has_help_and_is_documented(name, command):
    assert command.help or command.short_help, name
    top = name.split()[0]
    assert f"`triage {top}" in README, f"README has no row for triage {top}"


def test_readme_documents_every_table_and_column(tmp_path):
    db = open_db(tmp_path / "state.db")
    # FTS5's own shadow tables (messages_fts_data, ...) are its business, not the schema's
    shadows = {f"{fts}_{part}" for fts in db.table_names(fts5=True)
               for part in ("data", "idx", "docsize", "config", "content")}
    for table in db.table_names():
        if table.startswith("_") or table in shadows:
            continue
        assert f"`{table}`" in README, table
        section = README[README.index(f"| `{table}` |"):]
        row = section.splitlines()[0]
        for column in db[table].columns_dict:
            assert f"`{column}`" in row, (table, column)


def test_readme_exit_codes_match_the_code():
    from mailtriage.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_OVERDUE

    codes = {int(m) for m in re.findall(r"^\| (\d) \|", README, re.M)}
    assert codes == {EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_OVERDUE}
