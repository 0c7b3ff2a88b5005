"""``triage auth login|status|logout``: the built-in OAuth2 login (``auth: oauth2``)."""

from __future__ import annotations

import click

from .. import display
from ..config import Config
from ..errors import UsageError
from ..listing import dumps
from ..oauth2 import LoginTarget
from ..oauthflow import login, logins, logout, status
from .app import App, json_option, pass_app

_ACCOUNT = click.option("--account", metavar="NAME",
                        help="The account (default: the only one with auth: oauth2).")
_SMTP = click.option("--smtp", is_flag=True,
                     help="The smtp: block, when it has a login of its own.")


def _target(config: Config, account: str | None, smtp: bool) -> LoginTarget:
    """The block a command is about; a UsageError (exit 2) naming the choices otherwise."""
    if smtp:
        if config.smtp is None or config.smtp.auth != "oauth2":
            raise UsageError("smtp: does not use auth: oauth2")
        if config.smtp.token_key != "smtp":
            name = config.smtp.token_key.partition(":")[2]
            raise UsageError(f"smtp: shares the login of account {name!r}: use --account {name}")
        return config.smtp
    if account is not None:
        chosen = config.accounts_named([account])[0]
        if chosen.auth != "oauth2":
            raise UsageError(f"account {account!r} does not use auth: oauth2")
        return chosen
    oauth = [a for a in config.accounts if a.auth == "oauth2"]
    if len(oauth) == 1:
        return oauth[0]
    if not oauth:
        raise UsageError(f"no account in {config.path} uses auth: oauth2"
                         + (" (for smtp: use --smtp)" if config.smtp is not None else ""))
    raise UsageError("several accounts use auth: oauth2; name one with --account ("
                     + ", ".join(a.name for a in oauth) + ")")


@click.group("auth", short_help="Log in with OAuth2 (auth: oauth2), see or end a login.")
def auth_group() -> None:
    """The built-in OAuth2 login for accounts (and smtp:) with auth: oauth2."""


@auth_group.command("login", short_help="Log in and store the refresh token.")
@_ACCOUNT
@_SMTP
@click.option("--browser", is_flag=True,
              help="Log in in a browser on this machine (authorization code with PKCE) "
                   "instead of with a code on any device.")
@pass_app
def login_command(app: App, account: str | None, smtp: bool, browser: bool) -> None:
    """Log in: print a URL and a code to enter on any device (the device flow), or with
    --browser (and always for Google) a URL to open here that comes back to this machine.
    The refresh token goes to the system keyring, else to a 0600 file beside the database;
    sync and run then get fresh access tokens by themselves."""
    target = _target(app.config, account, smtp)
    record = login(target, lambda line: click.echo(line, err=True), browser=browser)
    who = f" as {record['who']}" if record.get("who") else ""
    app.echo(f"logged in{who} for {target.key_prefix} ({target.username}); "
             f"stored in the {status(target)['stored']}", err=True)


@auth_group.command("status", short_help="Who is logged in, with which scopes, until when.")
@json_option
@pass_app
def status_command(app: App, json_: bool) -> None:
    """Each OAuth2 login: who, which scopes, when its access token expires, where it is
    stored.  Tokens are never shown."""
    rows = [status(target) for target in logins(app.config)]
    if json_:
        click.echo(dumps(rows))
        return
    if not rows:
        app.echo("no account uses auth: oauth2", err=True)
        return
    click.echo(display.table(
        ["LOGIN", "USER", "WHO", "SCOPES", "ACCESS EXPIRES", "STORED"],
        [[r["login"], r["username"], r["who"] or "-", " ".join(r["scopes"]),
          (r["access_expires_at"] or "-") if r["logged_in"] else "not logged in",
          r["stored"] if r["logged_in"] else "-"] for r in rows]))


@auth_group.command("logout", short_help="Forget a login (and revoke it where possible).")
@_ACCOUNT
@_SMTP
@pass_app
def logout_command(app: App, account: str | None, smtp: bool) -> None:
    """Delete the stored tokens of a login, revoking the refresh token first where the
    provider has a revocation endpoint (Google, custom with revocation_url)."""
    target = _target(app.config, account, smtp)
    found, problem = logout(target)
    if problem:
        click.echo(f"warning: could not revoke the token ({problem}); forgotten here anyway",
                   err=True)
    app.echo(f"logged out: {target.key_prefix}" if found else
             f"not logged in: {target.key_prefix}", err=True)


COMMANDS = [auth_group]
