"""``triage run``: the cron entry point (sync, acknowledge, daily report), one at a time.

Quiet on success: cron mails whatever a job prints, so this prints only when a
human must act.  Exit status 0 fine, 1 a run-time failure, 2 a configuration
problem, 3 with ``--fail-if-any`` when threads are waiting too long.
"""

from __future__ import annotations

import logging

import click

from ..errors import EXIT_OVERDUE
from ..run import run
from .app import App, pass_app


@click.command("run", short_help="Sync, acknowledge and report: the cron job.")
@click.option("--wait", is_flag=True, help="Wait for a run in progress instead of skipping.")
@click.option("--no-report", is_flag=True, help="Do not send the daily report in this run.")
@click.option("--no-notify", is_flag=True,
              help="Do not post to notify.urls in this run (the next run posts what is new).")
@click.option("--fail-if-any", is_flag=True,
              help="Exit with status 3 when threads are waiting too long (for monitoring).")
@pass_app
def run_command(app: App, wait: bool, no_report: bool, no_notify: bool,
                fail_if_any: bool) -> None:
    """Sync, send automatic acknowledgements and the daily report (for cron)."""
    config = app.config
    if not app.verbose:  # retries and re-maps are in the report; cron must stay silent
        logging.getLogger("mailtriage").setLevel(logging.ERROR)
        logging.getLogger("mailtriage.security").setLevel(logging.WARNING)
    if not app.take_lock(wait):
        return
    result = run(app.db, config, app.now, send_report=not no_report, notify=not no_notify)
    if app.verbose:
        new = sum(s.new for s in result.synced)
        click.echo(f"synced {len(result.synced)} account(s), {new} new message(s); "
                   f"{len(result.acked)} acknowledged; report: {result.report_for or 'not due'}; "
                   f"{result.overdue} waiting too long", err=True)
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    for _status, problem in result.failures:
        click.echo(f"Error: {problem}", err=True)
    if result.failures:
        raise SystemExit(result.exit_status)
    if fail_if_any and result.overdue:
        raise SystemExit(EXIT_OVERDUE)


COMMANDS = [run_command]
