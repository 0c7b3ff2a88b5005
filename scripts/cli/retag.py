"""``triage retag``: apply the config's rules to every message again."""

from __future__ import annotations

import click

from ..listing import dumps
from ..tagging import retag
from .app import App, json_option, pass_app


@click.command("retag", short_help="Apply the tagging rules to all mail again.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@json_option
@pass_app
def retag_command(app: App, dry_run: bool, json_: bool) -> None:
    """Re-run the tagging rules over all stored mail (after editing them)."""
    hits = retag(app.db, app.config, app.now, dry_run=dry_run)
    changed = [h for h in hits if h["changes"]]
    if json_:
        click.echo(dumps(changed))
        return
    verb = "would change" if dry_run else "changed"
    seen = set()
    for h in changed:
        key = (h["thread_id"], tuple(h["changes"]))
        if key in seen:
            continue
        seen.add(key)
        click.echo(f"thread {h['thread_id']}: {verb} {' '.join(h['changes'])} (rule {h['rule']})")
    if not changed:
        app.echo("no changes", err=True)


COMMANDS = [retag_command]
