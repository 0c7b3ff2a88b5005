"""``triage threads`` and ``triage show``: look at conversations."""

from __future__ import annotations

import click

from .. import display
from ..listing import dumps, echo_json, list_threads, thread_detail
from ..sla import parse_when
from ..triage import STATES
from .app import App, json_option, pass_app


@click.command("threads")
@json_option
@click.option("--folder", help="Only threads with a message in this folder.")
@click.option("--since", metavar="DATE", help="Only threads active since (2026-11-01, 3d).")
@click.option("--state", type=click.Choice(STATES), help="Only threads in this state.")
@click.option("--tag", "tags", multiple=True, help="Only threads with this tag (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="At most N threads.")
@pass_app
def threads_command(app: App, json_: bool, folder: str | None, since: str | None,
                    state: str | None, tags: tuple[str, ...], limit: int | None) -> None:
    """List threads, most recent activity first."""
    since_at = None
    if since:
        try:
            since_at = parse_when(since, app.now, past=True)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    rows = list_threads(app.db, app.now, folder=folder, since=since_at, state=state, tags=tags,
                        limit=limit)
    if json_:
        echo_json(rows)
        return
    click.echo(display.threads_table(rows, app.now))


@click.command("show")
@click.argument("thread")
@json_option
@pass_app
def show_command(app: App, thread: str, json_: bool) -> None:
    """Show one thread: its messages, state, tags and history."""
    detail = thread_detail(app.db, thread, app.now)
    if detail is None:
        raise click.ClickException(f"no thread {thread!r}")
    if json_:
        click.echo(dumps(detail))
        return
    click.echo(display.thread_text(detail, app.now))


COMMANDS = [threads_command, show_command]
