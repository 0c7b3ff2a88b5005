"""``triage serve`` without a browser: the loopback warning, and the
plugin in-process over the demo mailbox (Datasette's own test client): canned queries give
the commands' rows, read-only, customer text escaped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mailtriage.config import load_config
from mailtriage.render import holding_templates

from support.cli import ok, triage
from support.mailfactory import NOW

datasette = pytest.importorskip("datasette")
from mailtriage import web, webqueries  # noqa: E402  (needs Datasette)


def test_loopback_addresses():
    assert all(web.is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(web.is_loopback(h) for h in ("0.0.0.0", "::", "192.0.2.1", "example.com"))


@pytest.fixture
def demo(tmp_path) -> Path:
    ok(None, "demo", "--dir", str(tmp_path / "demo"))
    return tmp_path / "demo" / "config.yaml"


def test_binding_beyond_loopback_warns(demo, monkeypatch):
    served: list[tuple[str, int]] = []
    monkeypatch.setattr(web, "serve", lambda ds, host, port, **kw: served.append((host, port)))
    result = triage(demo, "serve", "--host", "0.0.0.0", "--port", "9")
    assert result.exit_code == 0, result.output
    assert served == [("0.0.0.0", 9)]
    assert "warning: listening on 0.0.0.0:9, reachable from other machines" in result.stderr
    assert "reverse proxy with authentication" in result.stderr
    quiet = triage(demo, "serve", "--port", "9")  # the default, loopback: no warning
    assert "warning" not in quiet.stderr


class Client:
    """Datasette's in-process client, synchronously."""

    def __init__(self, cfg: Path, allow_sql: bool = False):
        config = load_config(cfg)
        self.ds = web.make_datasette(config, config.db_path, now=lambda: NOW,
                                     allow_sql=allow_sql,
                                     holding_templates=holding_templates(config))
        asyncio.run(self.ds.invoke_startup())

    def get(self, path: str) -> Any:
        return asyncio.run(self.ds.client.get(path))

    def rows(self, name: str, **params: str) -> list[dict[str, Any]]:
        args = "".join(f"&_json={c}" for c in webqueries.json_args(name))
        args += "".join(f"&{k}={v}" for k, v in params.items())
        response = self.get(f"/state/{name}.json?_shape=array{args}")
        assert response.status_code == 200, response.text
        return response.json()


def cli_json(cfg: Path, *args: str) -> Any:
    return json.loads(ok(cfg, *args).stdout)


def test_canned_queries_give_the_rows_of_the_commands(demo):
    client = Client(demo)
    overdue = cli_json(demo, "overdue", "--json")
    assert overdue and client.rows("overdue") == overdue
    assert client.rows("followup_due") == [i for i in overdue if i["reason"] == "followup"]
    assert client.rows("followup_due")  # the demo has one: the test compares something
    assert client.rows("waiting_on_us") == cli_json(demo, "threads", "--state", "open",
                                                    "--json")
    customer = overdue[0]["customer"]
    mine = client.rows("customer_threads", address=customer)
    assert mine and mine == cli_json(demo, "threads", "--customer", customer, "--json")
    report = cli_json(demo, "report", "--json")
    assert client.rows("by_tag") == report["tags"]
    assert client.rows("first_response") == [report["response"]]


def test_every_column_of_the_library_rows_is_in_its_query(demo):
    client = Client(demo)
    for name, query in webqueries.QUERIES.items():
        params = {p: "@northpeak.example" for p in query.params}
        got = client.rows(name, **params)
        assert got, name
        assert list(got[0]) == list(query.columns), name


def test_read_only_no_sql_editor_no_download_unless_asked(demo):
    client = Client(demo)
    assert client.get("/state.json?sql=select+1").status_code == 403
    assert client.get("/state?sql=select+1").status_code == 403  # the editor page
    assert client.get("/state.db").status_code in (403, 404)
    assert client.get("/state/overdue").status_code == 200  # canned queries still run
    with_sql = Client(demo, allow_sql=True)
    assert with_sql.get("/state.json?sql=select+1").status_code == 200
    # the connections are read-only whatever the SQL says
    assert with_sql.get("/state.json?sql=delete+from+tags").status_code == 400


def test_home_and_thread_pages_escape_customer_text(demo):
    client = Client(demo)
    home = client.get("/")
    assert home.status_code == 200
    assert "Last 14 days" in home.text and "waiting too long" in home.text
    [evil] = [i for i in cli_json(demo, "threads", "--json") if "<script>" in i["subject"]]
    page = client.get(f"/-/thread/{evil['id']}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text
    assert client.get("/-/thread/99999").status_code == 404
