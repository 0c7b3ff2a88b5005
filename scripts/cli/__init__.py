"""The ``triage`` command group: global options, error handling, subcommand registry.

This subpackage is the only place that imports click.  Commands live one module per
concern beside this file; each parses its options, calls library functions with plain
values from :class:`~mailtriage.cli.app.App`, and prints.  Library errors
(:mod:`mailtriage.errors`) become one line here, with the exit status they carry.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from typing import Any

import click

from ..errors import MailtriageError
from .app import App
from .params import MOMENT


def _configure_logging(verbose: int, quiet: bool) -> None:
    import logging  # (like sqlite3 below) not for `triage --help`, which runs no command

    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else
                                         logging.INFO if verbose else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("mailtriage")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # imapclient's debug log shows protocol traffic; keep it out of -v output.
    logging.getLogger("imapclient").setLevel(logging.WARNING)


# command name -> (the module beside this file defining it, its short help).  A module is
# imported only when its command runs (`triage run` from cron should not pay for Jinja or
# the report code), and `triage --help` lists the commands from here without importing any;
# tests/test_startup.py holds each line to the command's own short_help.
COMMANDS: dict[str, tuple[str, str]] = {
    "account": ("account", "List, rename or re-point the accounts the database holds."),
    "assign": ("team", "Give threads to a team member."),
    "auth": ("auth", "Log in with OAuth2 (auth: oauth2), see or end a login."),
    "close": ("state", "Close threads: nothing more to do."),
    "demo": ("demo", "Try everything on a generated sample mailbox."),
    "explain": ("explain", "Say why a thread is where it is."),
    "merge": ("threadfix", "Merge threads that are one conversation."),
    "note": ("team", "Keep an internal note on a thread."),
    "outbox": ("outbox", "List replies whose delivery needs a person."),
    "overdue": ("overdue", "List what waits too long, or needs a person."),
    "reopen": ("state", "Put threads back in the queue."),
    "reply": ("reply", "Answer a thread, or every overdue one, from a template."),
    "report": ("report", "Show, save or mail the daily report."),
    "retag": ("retag", "Apply the tagging rules to all mail again."),
    "run": ("run", "Sync, acknowledge and report: the cron job."),
    "search": ("search", "Find threads by words in their mail and notes."),
    "serve": ("serve", "Show the queue in a browser (Datasette, read-only)."),
    "show": ("threads", "Show one thread, its messages and history."),
    "snooze": ("state", "Hide threads until a time."),
    "split": ("threadfix", "Move messages out of a thread into a new one."),
    "sync": ("sync", "Fetch what changed in the mailbox."),
    "tag": ("state", "Add and remove tags by hand."),
    "templates": ("templates", "List reply templates and check that they render."),
    "threads": ("threads", "List threads, the latest first."),
    "unassign": ("team", "Take threads away from whoever owns them."),
    "work": ("work", "Walk the queue, one thread at a time."),
}


class TriageGroup(click.Group):
    """Loads commands on demand; turns library errors into one-line messages with the
    documented exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module = importlib.import_module(f"{__package__}.{COMMANDS[cmd_name][0]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, with the short help of commands not loaded taken from
        :data:`COMMANDS`: loading each to ask would import all of mailtriage."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:
                rows.append((name, COMMANDS[name][1]))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        import sqlite3

        try:
            return super().invoke(ctx)
        except MailtriageError as exc:
            problem = click.ClickException(str(exc))
            problem.exit_code = exc.exit_status
            raise problem from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"database error: {exc}") from None
        except OSError as exc:
            if exc.errno is None:
                raise
            raise click.ClickException(f"{exc.strerror}: {exc.filename or ''}".rstrip(": ")) \
                from None


@click.group(cls=TriageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailtriage")
@click.option("--config", "config_path", envvar="TRIAGE_CONFIG", default="config.yaml",
              show_default=True, type=click.Path(dir_okay=False),
              help="Config file (env TRIAGE_CONFIG).")
@click.option("--db", "db_path", envvar="TRIAGE_DB", type=click.Path(dir_okay=False),
              help="Database file; default: db: in the config (env TRIAGE_DB).")
@click.option("--now", type=MOMENT,
              help="The clock for every age computation (default: the real time).")
@click.option("--init", is_flag=True,
              help="Start a new database where one was lost (or use another in its place).")
@click.option("--as", "acting_as", envvar="TRIAGE_AS", metavar="NAME",
              help="Who you are: a team.members name or address (env TRIAGE_AS).")
@click.option("-v", "--verbose", count=True, help="More output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str, db_path: str | None, now: dt.datetime | None,
        init: bool, acting_as: str | None, verbose: int, quiet: bool) -> None:
    """Triage a shared support mailbox: sync it into SQLite, see whose turn it is,
    answer kindly, and prove every morning that nothing fell through the cracks."""
    _configure_logging(verbose, quiet)
    ctx.obj = App(config_path, db_path, now, verbose, quiet, init, acting_as)
    ctx.call_on_close(ctx.obj.close)
