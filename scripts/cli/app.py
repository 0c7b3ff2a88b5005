"""What every command shares: the :class:`App` built from the global options, and the
decorators that hand it to commands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cached_property, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import Busy
from ..lock import acquire, lock_path

if TYPE_CHECKING:  # imported when first used: `triage --help` reads no config, opens no store
    from ..config import Config
    from ..store import StateDatabase

BUSY_MESSAGE = "another triage run is in progress; skipping"

F = TypeVar("F", bound=Callable[..., Any])

class App:
    """What every command needs, built lazily from the global options."""

    def __init__(self, config_path: str, db_path: str | None, now: dt.datetime | None,
                 verbose: int, quiet: bool, init: bool = False, acting_as: str | None = None):
        self.config_path = Path(config_path)
        self.acting_as = acting_as
        self.db_override = db_path
        self.init = init
        self.fixed_now = now
        self.verbose = verbose
        self.quiet = quiet

    @property
    def now(self) -> dt.datetime:
        return self.fixed_now or dt.datetime.now(dt.UTC)

    @cached_property
    def config(self) -> Config:
        from ..config import load_config

        return load_config(self.config_path, self.db_override)

    @cached_property
    def db(self) -> StateDatabase:
        from ..store import open_db

        return open_db(self.config.db_path, allow_symlink=self.config.db_allow_symlink,
                       init=self.init)

    @cached_property
    def member_name(self) -> str | None:
        """The team member ``--as`` (``TRIAGE_AS``) names, checked against team.members."""
        if not self.acting_as:
            return None
        from ..assignment import member_named

        return member_named(self.config, self.acting_as).name

    @cached_property
    def holding_templates(self) -> set[str]:
        """The holding templates' names, read once per command (every template file is
        read and its front matter parsed to know)."""
        from .. import render  # Jinja: only for the commands that use templates

        return render.holding_templates(self.config)

    def close(self) -> None:
        """Close the database when the command ends, not whenever the collector runs: a
        connection closed late still deletes ``state.db-wal`` (SQLite's last close)."""
        db = self.__dict__.pop("db", None)
        if db is not None:
            db.close()

    def take_lock(self, wait: bool) -> bool:
        """Hold the lock of ``run`` and ``sync`` (lock.py) until the command ends.  False,
        after saying so on stderr, when another holds it and ``wait`` is not set: cron's next
        tick will do the work, so stepping aside is not a failure."""
        try:
            click.get_current_context().with_resource(
                acquire(lock_path(self.config.db_path), wait=wait))
        except Busy:
            click.echo(BUSY_MESSAGE, err=True)
            return False
        return True

    def echo(self, message: str = "", err: bool = False) -> None:
        """Print unless --quiet (data for scripts goes through click.echo directly)."""
        if not self.quiet:
            click.echo(message, err=err)


def pass_app(f: F) -> F:
    @click.pass_context
    @wraps(f)
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(f, ctx.find_object(App), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def json_option(f: F) -> F:
    return click.option("json_", "--json", is_flag=True, help="Print JSON for scripts.")(f)




def owner_filter(app: App, assignee: str | None) -> str | None:
    """``--assignee``: a member (``me`` meaning ``--as``) by name, or ``none``, as given."""
    from ..assignment import owner_named

    if assignee is None:
        return None
    member = owner_named(app.config, assignee, app.acting_as)
    return member.name if member else assignee
