"""``triage sync``: fetch what changed in the mailbox into state.db."""

from __future__ import annotations

import sys

import click

from .cli import App, pass_app
from .sync import SyncResult, sync


def run_sync(app: App, full: bool = False, accounts: tuple[str, ...] = ()) -> SyncResult:
    """Sync with a progress bar on a terminal; shared by ``sync`` and ``run``."""
    show_bar = sys.stderr.isatty() and not app.quiet
    if not show_bar:
        return sync(app.db, app.config, app.now, full=full, accounts=accounts or None)
    with click.progressbar(length=0, label="Fetching", file=sys.stderr,
                           show_pos=True) as bar:
        def progress(n: int) -> None:
            bar.length = max(bar.length or 0, bar.pos + n)
            bar.update(n)

        return sync(app.db, app.config, app.now, full=full, accounts=accounts or None,
                    progress=progress)


@click.command("sync")
@click.option("--full", is_flag=True,
              help="Re-check every message instead of only what changed (slow; repairs).")
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
@pass_app
def sync_command(app: App, full: bool, accounts: tuple[str, ...]) -> None:
    """Fetch new mail, flag changes and removals from the configured folders."""
    result = run_sync(app, full=full, accounts=accounts)
    app.echo(result.summary(), err=True)


COMMANDS = [sync_command]
