"""``triage serve``: the team's browser view (Datasette; the optional extra ``web``)."""

from __future__ import annotations

import click

from .app import App, pass_app

INSTALL_HINT = "triage serve needs Datasette: pip install 'mailtriage[web]'"


@click.command("serve", short_help="Show the queue in a browser (Datasette, read-only).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback is reachable from other "
                   "machines (a warning is printed).")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True,
              help="Port to listen on.")
@click.option("--open", "open_browser", is_flag=True, help="Open the home page in a browser.")
@click.option("--sql", "allow_sql", is_flag=True,
              help="Allow Datasette's SQL editor (read-only queries of anything stored).")
@pass_app
def serve_command(app: App, host: str, port: int, open_browser: bool, allow_sql: bool) -> None:
    """Serve state.db in a browser, read-only: overdue, follow-ups, owners, the backlog and
    the last 14 days on the home page, one page per thread, canned queries as JSON.

    Changes stay in the CLI, so the history keeps their causes.
    """
    try:
        from .. import web  # imports Datasette
    except ImportError as exc:
        if exc.name is None or exc.name.partition(".")[0] not in ("datasette", "uvicorn"):
            raise
        problem = click.ClickException(INSTALL_HINT)
        problem.exit_code = 2
        raise problem from None

    db_path = app.config.db_path
    app.db.conn.close()  # opened once: the migrations ran (daily_stats exists), then let go
    if not web.is_loopback(host):
        click.echo(f"warning: listening on {host}:{port}, reachable from other machines; "
                   "customer mail is personal data: put it behind a reverse proxy with "
                   "authentication (README, In the browser)", err=True)
    fixed = app.fixed_now
    ds = web.make_datasette(app.config, db_path, now=lambda: fixed or app.now,
                            allow_sql=allow_sql, holding_templates=app.holding_templates)
    app.echo(f"Serving {db_path} on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    web.serve(ds, host, port, open_browser=open_browser,
              log_level="info" if app.verbose else "warning")


COMMANDS = [serve_command]
