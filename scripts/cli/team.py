"""``triage assign``, ``unassign`` and ``note``: working the queue as a team."""

from __future__ import annotations

import sys

import click

from ..assignment import assign, member_named
from ..notes import add_note
from ..store import require_thread
from .app import App, pass_app


def _threads(app: App, refs: tuple[str, ...]) -> list[int]:
    return [require_thread(app.db, ref) for ref in refs]


@click.command("assign", short_help="Give threads to a team member.")
@click.argument("args", nargs=-1, required=True, metavar="THREAD... NAME")
@pass_app
def assign_command(app: App, args: tuple[str, ...]) -> None:
    """Give THREADs to NAME: a team.members name or address, or `me` (--as).

    \b
    triage assign 42 51 alice
    triage --as bob assign 42 me
    """
    if len(args) < 2:
        raise click.UsageError("expected THREAD... NAME")
    member = member_named(app.config, args[-1], app.acting_as)
    changed = assign(app.db, _threads(app, args[:-1]), member, app.now,
                     f"cli: by {app.member_name or 'someone'}")
    for tid in changed:
        app.echo(f"thread {tid}: assigned to {member.name}", err=True)


@click.command("unassign", short_help="Take threads away from whoever owns them.")
@click.argument("threads", nargs=-1, required=True)
@pass_app
def unassign_command(app: App, threads: tuple[str, ...]) -> None:
    """Leave THREADs to nobody (until a member replies or someone assigns them)."""
    changed = assign(app.db, _threads(app, threads), None, app.now,
                     f"cli: by {app.member_name or 'someone'}")
    for tid in changed:
        app.echo(f"thread {tid}: unassigned", err=True)


@click.command("note", short_help="Keep an internal note on a thread.")
@click.argument("thread")
@click.argument("text")
@pass_app
def note_command(app: App, thread: str, text: str) -> None:
    """Keep TEXT (`-`: read it from stdin) on THREAD for the team: never sent, shown by
    `show` and `explain`, with its author (--as) and time."""
    tid = require_thread(app.db, thread)
    if text == "-":
        text = sys.stdin.read()
    add_note(app.db, tid, text, app.member_name, app.now)
    app.echo(f"thread {tid}: note kept", err=True)


COMMANDS = [assign_command, unassign_command, note_command]
