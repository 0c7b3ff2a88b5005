"""``triage threads`` and ``triage show``: look at conversations."""

from __future__ import annotations

import datetime as dt

import click

from .. import display
from ..listing import dumps, echo_json, list_threads, thread_detail
from ..states import STATES
from .app import App, json_option, owner_filter, pass_app
from .params import When


@click.command("threads", short_help="List threads, the latest first.")
@json_option
@click.option("--folder", help="Only threads with a message in this folder.")
@click.option("--since", type=When(past=True),
              help="Only threads active since then: a duration back (3d) or a date/time (UTC "
                   "unless given).")
@click.option("--state", type=click.Choice(STATES), help="Only threads in this state.")
@click.option("--tag", "tags", multiple=True, help="Only threads with this tag (repeatable).")
@click.option("--assignee", metavar="NAME|none",
              help="Only threads this member owns (`me`: --as), or `none` for nobody's.")
@click.option("--customer", metavar="ADDRESS|@DOMAIN",
              help="Only threads of this customer, or of anyone at this domain.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N threads.")
@pass_app
def threads_command(app: App, json_: bool, folder: str | None, since: dt.datetime | None,
                    state: str | None, tags: tuple[str, ...], assignee: str | None,
                    customer: str | None, limit: int | None) -> None:
    """List threads, most recent activity first."""
    rows = list_threads(app.db, app.now, folder=folder, since=since, state=state, tags=tags,
                        limit=limit, assignee=owner_filter(app, assignee), customer=customer)
    if json_:
        echo_json(rows)
        return
    click.echo(display.threads_table(rows, app.now))


@click.command("show", short_help="Show one thread, its messages and history.")
@click.argument("thread")
@json_option
@pass_app
def show_command(app: App, thread: str, json_: bool) -> None:
    """Show one thread: its messages, state, tags and history."""
    detail = thread_detail(app.db, thread, app.now, app.config.team.public_domains)
    if json_:
        click.echo(dumps(detail))
        return
    click.echo(display.thread_text(detail, app.now))


COMMANDS = [threads_command, show_command]
