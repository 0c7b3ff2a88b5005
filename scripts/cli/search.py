"""``triage search``: find threads by words in their mail and notes."""

from __future__ import annotations

import os
import sys

import click

from .. import display
from ..listing import echo_json
from ..search import search_threads
from ..states import STATES
from .app import App, json_option, pass_app


@click.command("search", short_help="Find threads by words in their mail and notes.")
@click.argument("query", nargs=-1, required=True)
@json_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="At most N threads.")
@click.option("--state", type=click.Choice(STATES), help="Only threads in this state.")
@pass_app
def search_command(app: App, query: tuple[str, ...], json_: bool, limit: int,
                   state: str | None) -> None:
    """Find threads by words in subjects, senders, message text and notes, best match
    first.  Every word must match; "exact words" in quotes (quote them for the shell
    too) and prefix* are understood; anything else is taken as plain words.

    \b
    triage search refund
    triage search '"export to csv"' --state open
    triage search carol@customer.test invoi*
    """
    rows = search_threads(app.db, " ".join(query), app.now, state=state, limit=limit)
    if json_:
        echo_json(rows)
        return
    # bold only on a terminal, and never when NO_COLOR is set (no-color.org)
    highlight = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    click.echo(display.search_table(rows, app.now, highlight=highlight))


COMMANDS = [search_command]
