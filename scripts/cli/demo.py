"""``triage demo``: the whole job on a generated sample mailbox, no account needed."""

from __future__ import annotations

from pathlib import Path

import click

from .. import display
from ..config import load_config
from ..listing import list_threads
from ..overdue import ATTENTION_REASONS, overdue
from ..render import holding_templates
from ..store import open_db
from ..sync import sync
from .app import App, pass_app


@click.command("demo", short_help="Try everything on a generated sample mailbox.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to put the sample mailbox, config and database "
                   "(default: ~/.local/share/mailtriage/demo).")
@pass_app
def demo_command(app: App, directory: Path | None) -> None:
    """Generate a sample support mailbox, sync it, and show threads and what is overdue."""
    from ..demo import default_dir, setup_demo  # the sample generator is only needed here

    directory = (directory or default_dir()).resolve()
    config_path = setup_demo(directory, app.now)
    config = load_config(config_path)
    db = open_db(config.db_path, init=True)  # the demo's database is disposable
    result = sync(db, config, app.now)
    click.echo(f"Sample mailbox: {directory / 'sample' / 'Maildir'}")
    click.echo(result.summary())
    click.echo("")
    click.echo(display.threads_table(list_threads(db, app.now), app.now))
    items = overdue(db, config, app.now, holding_templates=holding_templates(config))
    click.echo("")
    person = sum(i["reason"] in ATTENTION_REASONS for i in items)
    click.echo(f"{len(items) - person} thread(s) waiting too long"
               + (f", {person} needing a person:" if person else ":"))
    if items:
        click.echo(display.overdue_table(items, app.now, config.sla.business_hours is not None))
    click.echo("")
    click.echo("Try next:")
    click.echo(f"  triage --config {config_path} show {items[0]['thread_id'] if items else 1}")
    click.echo(f"  triage --config {config_path} explain "
               f"{items[0]['thread_id'] if items else 1}")
    click.echo(f"  triage --config {config_path} overdue --json")


COMMANDS = [demo_command]
