"""``triage templates check|list``: the reply templates, and proof that they render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import display
from ..config import builtin_templates
from ..listing import dumps
from ..render import TemplateProblem, load_reply, reply_names
from ..templatecheck import check_templates
from .app import App, json_option, pass_app


@click.group("templates", short_help="List reply templates and check that they render.")
def templates_group() -> None:
    """Reply templates: list them, check that they render."""


@templates_group.command("check", short_help="Render every reply template against sample threads.")
@pass_app
def check_command(app: App) -> None:
    """Render every reply template against sample threads; exit 1 on any error."""
    errors = check_templates(app.config)
    if errors:
        for line in errors:
            click.echo(line, err=True)
        raise SystemExit(1)
    count = len(reply_names(app.config))
    app.echo(f"{count} template{'s' if count != 1 else ''} OK", err=True)


@templates_group.command("list", short_help="List the reply templates.")
@json_option
@pass_app
def list_command(app: App, json_: bool) -> None:
    """List the reply templates: name, holding, tags, where each comes from."""
    builtin = builtin_templates().resolve()
    rows: list[dict[str, Any]] = []
    for name in reply_names(app.config):
        try:
            t = load_reply(app.config, name)
        except TemplateProblem as exc:
            rows.append({"name": name, "holding": None, "tags": [], "source": None,
                         "error": str(exc)})
            continue
        path = Path(t.source).resolve()
        origin = "builtin" if builtin in path.parents else str(path)
        rows.append({"name": name, "holding": t.holding, "tags": t.tags,
                     "subject": t.subject, "source": origin, "error": None})
    if json_:
        click.echo(dumps(rows))
        return
    click.echo(display.table(
        ["NAME", "HOLDING", "TAGS", "SOURCE"],
        [[r["name"], "error" if r["error"] else ("yes" if r["holding"] else "no"),
          " ".join(r["tags"]), r["source"] or r["error"]] for r in rows],
    ))


COMMANDS = [templates_group]
