"""``triage overdue``: the threads waiting on us too long, oldest first."""

from __future__ import annotations

import click

from .. import display
from ..listing import echo_json
from ..overdue import overdue
from ..render import holding_templates
from ..sla import parse_duration
from ..triage import STATES
from .app import EXIT_OVERDUE, App, json_option, pass_app


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("overdue")
@json_option
@click.option("--threshold", callback=_duration, metavar="DURATION",
              help="Override the SLA threshold (e.g. 4h, 2d).")
@click.option("--tag", "tags", multiple=True, help="Only threads with this tag (repeatable).")
@click.option("--state", type=click.Choice(STATES), help="Only threads in this state.")
@click.option("--fail-if-any", is_flag=True,
              help="Exit with status 3 when anything is overdue (for monitoring).")
@pass_app
def overdue_command(app: App, json_: bool, threshold: object, tags: tuple[str, ...],
                    state: str | None, fail_if_any: bool) -> None:
    """List open threads past their SLA and threads due for a follow-up."""
    items = overdue(app.db, app.config, app.now, threshold=threshold,  # type: ignore[arg-type]
                    tags=tags, state=state, holding_templates=holding_templates(app.config))
    if json_:
        echo_json(items)
    elif items:
        click.echo(display.overdue_table(items, app.now,
                                         app.config.sla.business_hours is not None))
    elif not app.quiet and not fail_if_any:
        click.echo("nothing overdue", err=True)
    if fail_if_any and items:
        raise SystemExit(EXIT_OVERDUE)


COMMANDS = [overdue_command]
