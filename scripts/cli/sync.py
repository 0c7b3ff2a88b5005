"""``triage sync``: fetch what changed in the mailbox into state.db."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..sync import SyncResult, sync
from .app import App, pass_app


class _Bars:
    """One progress bar per folder with new mail, on stderr, only on a terminal."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.folder: str | None = None

    def __call__(self, folder: str, done: int, total: int) -> None:
        if folder != self.folder:
            self.close()
            self.folder = folder
            self.bar = click.progressbar(length=total, label=f"Fetching {folder}",
                                         file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def run_sync(app: App, full: bool = False, accounts: tuple[str, ...] = ()) -> SyncResult:
    """Sync, with progress bars when a human is watching."""
    app.config.accounts_named(accounts)  # an unknown name: exit 2 before the database opens
    bars = _Bars() if sys.stderr.isatty() and not app.quiet else None
    try:
        return sync(app.db, app.config, app.now, full=full, accounts=accounts or None,
                    progress=bars)
    finally:
        if bars:
            bars.close()


@click.command("sync", short_help="Fetch what changed in the mailbox.")
@click.option("--full", is_flag=True,
              help="Re-check every message instead of only what changed (slow; repairs).")
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for a run or sync in progress instead of "
                                           "skipping.")
@pass_app
def sync_command(app: App, full: bool, accounts: tuple[str, ...], wait: bool) -> None:
    """Fetch new mail, flag changes and removals from the configured folders."""
    if not app.take_lock(wait):
        return
    result = run_sync(app, full=full, accounts=accounts)
    app.echo(result.summary(), err=True)
    if (failure := result.failure()) is not None:  # the other folders are synced and kept
        raise failure


COMMANDS = [sync_command]
