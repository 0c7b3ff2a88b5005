"""``triage close|reopen|snooze|tag``: decisions made by a human, kept with history."""

from __future__ import annotations

import datetime as dt

import click

from ..rules import parse_tag_changes
from ..states import State, change_tags, set_state
from ..store import iso, require_thread
from .app import App, pass_app
from .params import When


def _set_all(app: App, threads: tuple[str, ...], state: State,
             until: str | None = None) -> None:
    ids = [require_thread(app.db, ref) for ref in threads]
    at = iso(app.now)
    with app.db.atomic():
        for tid in ids:
            if not set_state(app.db, tid, state, at, "cli", snoozed_until=until):
                app.echo(f"thread {tid} is already {state}", err=True)


@click.command("close", short_help="Close threads: nothing more to do.")
@click.argument("threads", nargs=-1, required=True)
@pass_app
def close_command(app: App, threads: tuple[str, ...]) -> None:
    """Close threads: nothing more to do (new customer mail reopens them)."""
    _set_all(app, threads, State.CLOSED)


@click.command("reopen", short_help="Put threads back in the queue.")
@click.argument("threads", nargs=-1, required=True)
@pass_app
def reopen_command(app: App, threads: tuple[str, ...]) -> None:
    """Reopen threads: put them back in the queue."""
    _set_all(app, threads, State.OPEN)


@click.command("snooze", short_help="Hide threads until a time.")
@click.argument("threads", nargs=-1, required=True)
@click.option("--until", "until", required=True, type=When(),
              help="A duration ahead (3d, 4h) or a date/time (2026-12-01T09:00, UTC unless "
                   "given).")
@pass_app
def snooze_command(app: App, threads: tuple[str, ...], until: dt.datetime) -> None:
    """Hide threads until a time; new customer mail wakes them earlier."""
    if until <= app.now:
        raise click.BadParameter("must be in the future", param_hint="--until")
    _set_all(app, threads, State.SNOOZED, iso(until))


@click.command("tag", context_settings={"ignore_unknown_options": True},
               short_help="Add and remove tags by hand.")
@click.argument("thread")
@click.argument("changes", nargs=-1, required=True)
@pass_app
def tag_command(app: App, thread: str, changes: tuple[str, ...]) -> None:
    """Add and remove tags by hand: triage tag 42 +billing -urgent"""
    add, remove = parse_tag_changes(changes)
    tid = require_thread(app.db, thread)
    with app.db.atomic():
        change_tags(app.db, tid, add, remove, iso(app.now), "cli")


COMMANDS = [close_command, reopen_command, snooze_command, tag_command]
