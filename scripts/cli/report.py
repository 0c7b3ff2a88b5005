"""``triage report``: the daily report, on the terminal, to a file, or by mail."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import click

from .. import smtp
from ..listing import dumps
from ..report import build_report, render_report, report_message
from ..sla import parse_when
from .app import App, ConfigProblem, json_option, pass_app


@click.command("report")
@click.option("--since", metavar="WHEN",
              help="Start of the period: a duration back (2d) or a date/time in the report's "
                   "time zone (default: 24 hours ago).")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the HTML version to this file.")
@click.option("--send", is_flag=True, help="Email the report to report.to now.")
@json_option
@pass_app
def report_command(app: App, since: str | None, output: Path | None, send: bool,
                   json_: bool) -> None:
    """Show the daily report: what is waiting too long, the backlog, and proof of sync."""
    config = app.config
    start = None
    if since:
        try:
            start = parse_when(since, app.now, ZoneInfo(config.report.timezone), past=True)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    if send and not config.report.to:
        raise ConfigProblem(f"{config.path}: report.to: missing: list who gets the report")
    if send and config.smtp is None:
        raise ConfigProblem(f"{config.path}: smtp: missing: needed to send the report")
    data = build_report(app.db, config, app.now, since=start)
    _subject, text, html = render_report(config, data)
    if output is not None:
        output.write_text(html, encoding="utf-8")
    if send:
        smtp.send_message(config.smtp, report_message(config, data, app.now))
        app.echo(f"report sent to {', '.join(config.report.to)}", err=True)
    if json_:
        click.echo(dumps(data))
    else:
        click.echo(text, nl=not text.endswith("\n"))


COMMANDS = [report_command]
