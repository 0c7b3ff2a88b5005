"""``triage overdue``: the threads waiting on us too long, oldest first."""

from __future__ import annotations

import datetime as dt

import click

from .. import display
from ..errors import EXIT_OVERDUE
from ..listing import echo_json_lines
from ..overdue import overdue, overdue_json
from ..states import STATES
from .app import App, json_option, owner_filter, pass_app
from .params import DURATION


@click.command("overdue", short_help="List what waits too long, or needs a person.")
@json_option
@click.option("--threshold", type=DURATION, help="Override the SLA threshold (e.g. 4h, 2d).")
@click.option("--tag", "tags", multiple=True, help="Only threads with this tag (repeatable).")
@click.option("--state", type=click.Choice(STATES), help="Only threads in this state.")
@click.option("--assignee", metavar="NAME|none",
              help="Only threads this member owns (`me`: --as), or `none` for nobody's.")
@click.option("--fail-if-any", is_flag=True,
              help="Exit with status 3 when anything is overdue (for monitoring).")
@pass_app
def overdue_command(app: App, json_: bool, threshold: dt.timedelta | None, tags: tuple[str, ...],
                    state: str | None, assignee: str | None, fail_if_any: bool) -> None:
    """List open threads past their SLA and threads due for a follow-up."""
    owner = owner_filter(app, assignee)
    if json_:  # streamed: 27,000 items are written as they are built
        listed = echo_json_lines(overdue_json(
            app.db, app.config, app.now, threshold=threshold, tags=tags, state=state,
            holding_templates=app.holding_templates, assignee=owner))
    else:
        items = overdue(app.db, app.config, app.now, threshold=threshold, tags=tags,
                        state=state, holding_templates=app.holding_templates, assignee=owner)
        listed = len(items)
        if items:
            click.echo(display.overdue_table(items, app.now,
                                             app.config.sla.business_hours is not None))
        elif not app.quiet and not fail_if_any:
            click.echo("nothing overdue", err=True)
    if fail_if_any and listed:
        raise SystemExit(EXIT_OVERDUE)


COMMANDS = [overdue_command]
