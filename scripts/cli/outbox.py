"""``triage outbox``: what mailtriage sent, and the replies a person must settle."""

from __future__ import annotations

from typing import Any

import click

from .. import display
from ..listing import dumps
from ..outbox import needs_a_person_sql, resolve, settle_interrupted
from ..text import one_line
from .app import App, json_option, pass_app


@click.group("outbox", invoke_without_command=True,
             short_help="List replies whose delivery needs a person.")
@click.option("--all", "everything", is_flag=True, help="Every reply and draft, not only those "
              "whose delivery is unknown or was refused.")
@json_option
@click.pass_context
def outbox_group(ctx: click.Context, everything: bool, json_: bool) -> None:
    """List replies whose delivery is unknown or was refused (or --all of them)."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    assert app is not None
    settle_interrupted(app.db, app.now)
    where = "1" if everything else needs_a_person_sql()
    rows: list[dict[str, Any]] = list(app.db.query(
        f"SELECT o.id, o.thread_id, o.kind, o.template, o.to_addr, o.state, o.error, "
        f"o.created_at, o.sent_copy, o.auto FROM outbox o WHERE {where} ORDER BY o.id"))
    if json_:
        click.echo(dumps(rows))
    elif rows:
        click.echo(display.table(
            ["ID", "THREAD", "SENT", "TEMPLATE", "TO", "STATE", "WHY"],
            [[str(r["id"]), str(r["thread_id"] or "-"), display.short_time(r["created_at"]),
              r["template"] or "", one_line(r["to_addr"], 30), r["state"],
              one_line(r["error"] or "", 60)] for r in rows]))
    elif not app.quiet:
        click.echo("no reply needs a person", err=True)


@outbox_group.command("resolve", short_help="Settle a reply whose delivery was unknown or refused.")
@click.argument("outbox_id", type=int, metavar="ID")
@click.option("--delivered/--not-delivered", required=True,
              help="Whether the reply reached the customer after all (say so after checking, "
                   "e.g. with them or in the server's log).")
@pass_app
def resolve_command(app: App, outbox_id: int, delivered: bool) -> None:
    """Settle a reply whose delivery was unknown or refused: it arrived, or it did not."""
    row = resolve(app.db, app.config, outbox_id, delivered, app.now)
    app.echo(f"outbox {outbox_id} (thread {row['thread_id']}): "
             f"{'delivered' if delivered else 'not delivered'}", err=True)


COMMANDS = [outbox_group]
