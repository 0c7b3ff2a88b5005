"""``triage account``: the mailboxes the database holds, by account name."""

from __future__ import annotations

import click

from .. import display
from ..accounts import adopt, recorded, rename
from ..listing import dumps
from .app import App, json_option, pass_app


@click.group("account", invoke_without_command=True,
             short_help="List, rename or re-point the accounts the database holds.")
@json_option
@click.pass_context
def account_group(ctx: click.Context, json_: bool) -> None:
    """List the accounts the database holds and the mailbox each one is."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    assert app is not None
    rows = recorded(app.db)
    if json_:
        click.echo(dumps(rows))
    elif rows:
        click.echo(display.table(["ACCOUNT", "MAILBOX", "SINCE"],
                                 [[r["name"], r["identity"], display.short_time(r["recorded_at"])]
                                  for r in rows]))


@account_group.command("rename", short_help="Give a recorded account another name.")
@click.argument("old")
@click.argument("new")
@pass_app
def rename_command(app: App, old: str, new: str) -> None:
    """Rename account OLD to NEW in the database, with its folders and messages (so a
    second config can use the old name for its own mailbox)."""
    rename(app.db, old, new)
    app.echo(f"account {old!r} is now {new!r}", err=True)


@account_group.command("adopt", short_help="Accept that an account's mailbox moved.")
@click.argument("name")
@pass_app
def adopt_command(app: App, name: str) -> None:
    """Record the config's server and user for account NAME: the same mailbox, reached at a
    new address (a UIDVALIDITY check still guards what was stored)."""
    old = adopt(app.db, app.config, name, app.now)
    app.echo(f"account {name!r} was {old}; now the config's mailbox", err=True)


COMMANDS = [account_group]
