"""``triage merge|split``: a person fixing what threading got wrong, kept for good."""

from __future__ import annotations

import click

from .. import threadfix, triage
from .app import App, pass_app


@click.command("merge", short_help="Merge threads that are one conversation.")
@click.argument("threads", nargs=-1, required=True)
@pass_app
def merge_command(app: App, threads: tuple[str, ...]) -> None:
    """Merge THREADS into the oldest of them, keeping tags, state, assignee, notes and
    history; the other ids still work.  Later syncs keep them merged."""
    with app.db.atomic():
        survivor = threadfix.merge(app.db, threads, app.now)
    triage.refresh(app.db, app.config, app.now)
    click.echo(f"thread {survivor}")  # the thread that holds them all now


@click.command("split", short_help="Move messages out of a thread into a new one.")
@click.argument("thread")
@click.argument("message_ids", metavar="MESSAGE-ID...", nargs=-1, required=True)
@pass_app
def split_command(app: App, thread: str, message_ids: tuple[str, ...]) -> None:
    """Move the messages with these Message-IDs (as `show` lists them) out of THREAD into
    a new thread, whose state follows from its mail.  Later syncs, and replies to either
    side, keep them apart."""
    with app.db.atomic():
        new = threadfix.split(app.db, thread, message_ids, app.now)
    triage.refresh(app.db, app.config, app.now)
    click.echo(f"thread {new}")  # the new thread


COMMANDS = [merge_command, split_command]
