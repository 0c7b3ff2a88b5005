"""``triage report``: the daily report, on the terminal, to a file, or by mail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ..files import write_private
from ..listing import dumps
from ..report import build_report
from ..reportmail import check_sendable, render_report, report_message
from .app import App, json_option, pass_app
from .params import When


@click.command("report", short_help="Show, save or mail the daily report.")
@click.option("--since", type=When(past=True, report_zone=True),
              help="Start of the period: a duration back (2d) or a date/time in the report's "
                   "time zone (default: 24 hours ago).")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the HTML version to this file.")
@click.option("--send", is_flag=True, help="Email the report to report.to now.")
@json_option
@pass_app
def report_command(app: App, since: dt.datetime | None, output: Path | None, send: bool,
                   json_: bool) -> None:
    """Show the daily report: what is waiting too long, the backlog, and proof of sync."""
    config = app.config
    if send:
        check_sendable(config)
    data = build_report(app.db, config, app.now, since=since,
                        holding_templates=app.holding_templates)
    rendered = render_report(config, data)
    if output is not None:
        write_private(output, rendered.html)  # customer names and subjects: 0600
    if send:
        from .. import smtp  # (imapclient, smtplib): only to mail it

        message = report_message(config, rendered, app.now)
        smtp.send_message(config.smtp, message)
        app.echo(f"report sent to {message['To']}", err=True)
    if json_:
        click.echo(dumps(data))
    else:
        click.echo(rendered.text, nl=not rendered.text.endswith("\n"))


COMMANDS = [report_command]
