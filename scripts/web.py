"""``triage serve``: Datasette over ``state.db``, with a plugin that shows the team's queue.

Needs the optional extra ``mailtriage[web]`` (Datasette); only serve imports this module.
The plugin is an object registered in code, bound to the config:

* ``/``: the report's headline and sections (report.py's data), linked to thread pages;
* ``/-/thread/ID``: what ``show`` and ``explain`` print (listing.py, explain.py);
* the canned queries of webqueries.py on the database's page;
* no SQL editor unless ``allow_sql`` (the ``execute-sql`` permission), no database download.

Read-only for the browser: the database is opened normally (cron keeps writing; WAL readers
see each committed batch) through Datasette's ``mode=ro`` connections, and nothing here
writes.  Every page is rendered by Datasette's Jinja environment, which escapes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import threading
import webbrowser
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from datasette import hookimpl
from datasette.app import Datasette
from datasette.plugins import pm
from datasette.utils.asgi import NotFound, Response

from . import webqueries
from .config import Config, builtin_templates
from .errors import NotFound as ThreadNotFound
from .explain import explain_thread
from .listing import thread_detail
from .report import build_report
from .reportmail import template_filters
from .sqlitelib import sqlite_utils

PLUGIN_NAME = "mailtriage"
MAX_ROWS = 50_000  # rows a query returns at most (Datasette's default is 1,000)


def templates_dir() -> Path:
    """The web pages' templates, beside the built-in report and reply templates."""
    return builtin_templates() / "web"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: whatever it resolves to, it is not known to be loopback
        return False


class Plugin:
    """Datasette's hooks, bound to one config and clock."""

    def __init__(self, config: Config, now: Callable[[], dt.datetime], allow_sql: bool,
                 holding_templates: Collection[str], database: str):
        self.config = config
        self.now = now
        self.allow_sql = allow_sql
        self.holding = holding_templates
        self.database = database
        self.__name__ = __name__  # Datasette lists plugins by their module's name

    @hookimpl
    def prepare_connection(self, conn: Any, database: str) -> None:
        if database != self.database:
            return
        db = sqlite_utils.Database(conn, recursive_triggers=False)
        conn.create_function(webqueries.FUNCTION, 2,
                             webqueries.row_function(db, self.config, self.now, self.holding))

    @hookimpl
    def prepare_jinja2_environment(self, env: Any) -> None:
        env.filters.update(template_filters(self.config))

    @hookimpl
    def canned_queries(self, database: str) -> dict[str, Any] | None:
        return webqueries.canned_queries() if database == self.database else None

    @hookimpl
    def permission_allowed(self, action: str) -> bool | None:
        if action == "execute-sql":
            return self.allow_sql
        return None

    @hookimpl
    def register_routes(self) -> list[tuple[str, Any]]:
        return [(r"^/$", self.home), (r"^/-/thread/(?P<thread>[0-9]+)$", self.thread)]

    async def _read(self, datasette: Datasette, fn: Callable[[sqlite_utils.Database], Any]
                    ) -> Any:
        database = datasette.get_database(self.database)
        return await database.execute_fn(
            lambda conn: fn(sqlite_utils.Database(conn, recursive_triggers=False)))

    async def _page(self, datasette: Datasette, request: Any, template: str,
                    context: dict[str, Any]) -> Response:
        await datasette.ensure_permissions(request.actor, ["view-instance"])
        context = {"db_name": self.database, "queries": webqueries.QUERIES,
                   "json_args": webqueries.json_args, **context}
        return Response.html(await datasette.render_template(
            f"mailtriage/{template}", context, request=request))

    async def home(self, datasette: Datasette, request: Any) -> Response:
        now = self.now()
        data = await self._read(datasette, lambda db: build_report(
            db, self.config, now, holding_templates=self.holding))
        return await self._page(datasette, request, "home.html", {"report": data})

    async def thread(self, datasette: Datasette, request: Any) -> Response:
        now, ref = self.now(), request.url_vars["thread"]

        def read(db: sqlite_utils.Database) -> tuple[dict[str, Any], dict[str, Any]]:
            return (thread_detail(db, ref, now, self.config.team.public_domains),
                    explain_thread(db, self.config, ref, now))

        try:
            detail, why = await self._read(datasette, read)
        except ThreadNotFound as exc:
            raise NotFound(str(exc)) from None
        return await self._page(datasette, request, "thread.html",
                                {"t": detail, "why": why, "now": now,
                                 "by_message_id": {m["id"]: m for m in detail["messages"]}})


def make_datasette(config: Config, db_path: Path, *, now: Callable[[], dt.datetime],
                   allow_sql: bool, holding_templates: Collection[str]) -> Datasette:
    """A Datasette over ``db_path`` with the plugin registered (replacing an earlier one)."""
    name = db_path.stem
    if pm.get_plugin(PLUGIN_NAME) is not None:
        pm.unregister(name=PLUGIN_NAME)
    pm.register(Plugin(config, now, allow_sql, holding_templates, name), name=PLUGIN_NAME)
    return Datasette(
        [str(db_path)],
        template_dir=str(templates_dir()),
        metadata={"title": "mailtriage", "databases": {name: {
            "description": "The support mailbox, read-only: change it with the triage "
                           "commands, so the history keeps its causes."}}},
        # the canned queries run the library (overdue: 3 s over 100k threads) and return
        # every row the command would, up to MAX_ROWS
        settings={"allow_download": False, "default_allow_sql": allow_sql,
                  "sql_time_limit_ms": 15_000, "max_returned_rows": MAX_ROWS},
    )


def serve(ds: Datasette, host: str, port: int, *, open_browser: bool = False,
          log_level: str = "warning") -> None:
    """Run ``ds`` on host:port in this process until interrupted."""
    import uvicorn

    asyncio.run(ds.invoke_startup())
    server = uvicorn.Server(uvicorn.Config(ds.app(), host=host, port=port,
                                           log_level=log_level, lifespan="on"))
    if open_browser:
        url = f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{port}/"

        def opener() -> None:
            while not server.started and not server.should_exit:
                threading.Event().wait(0.05)
            if server.started:
                webbrowser.open(url)

        threading.Thread(target=opener, daemon=True).start()
    server.run()
