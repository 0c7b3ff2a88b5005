"""``triage close|reopen|snooze|tag``: decisions made by a human, kept with history."""

from __future__ import annotations

import click

from ..rules import check_tag
from ..sla import parse_when
from ..store import iso, resolve_thread_id
from ..triage import change_tags, set_state
from .app import App, pass_app


def _resolve(app: App, threads: tuple[str, ...]) -> list[int]:
    ids = []
    for ref in threads:
        tid = resolve_thread_id(app.db, ref)
        if tid is None:
            raise click.ClickException(f"no thread {ref!r}")
        ids.append(tid)
    return ids


def _set_all(app: App, threads: tuple[str, ...], state: str, until: str | None = None) -> None:
    ids = _resolve(app, threads)
    at = iso(app.now)
    with app.db.atomic():
        for tid in ids:
            if not set_state(app.db, tid, state, at, "cli", snoozed_until=until):
                app.echo(f"thread {tid} is already {state}", err=True)


@click.command("close")
@click.argument("threads", nargs=-1, required=True)
@pass_app
def close_command(app: App, threads: tuple[str, ...]) -> None:
    """Close threads: nothing more to do (new customer mail reopens them)."""
    _set_all(app, threads, "closed")


@click.command("reopen")
@click.argument("threads", nargs=-1, required=True)
@pass_app
def reopen_command(app: App, threads: tuple[str, ...]) -> None:
    """Reopen threads: put them back in the queue."""
    _set_all(app, threads, "open")


@click.command("snooze")
@click.argument("threads", nargs=-1, required=True)
@click.option("--until", "until", required=True, metavar="WHEN",
              help="A duration (3d, 4h) or a date/time (2026-12-01T09:00, UTC unless given).")
@pass_app
def snooze_command(app: App, threads: tuple[str, ...], until: str) -> None:
    """Hide threads until a time; new customer mail wakes them earlier."""
    try:
        when = parse_when(until, app.now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None
    if when <= app.now:
        raise click.BadParameter("must be in the future", param_hint="--until")
    _set_all(app, threads, "snoozed", iso(when))


@click.command("tag", context_settings={"ignore_unknown_options": True})
@click.argument("thread")
@click.argument("changes", nargs=-1, required=True)
@pass_app
def tag_command(app: App, thread: str, changes: tuple[str, ...]) -> None:
    """Add and remove tags by hand: triage tag 42 +billing -urgent"""
    add: list[str] = []
    remove: list[str] = []
    for change in changes:
        if change[:1] not in "+-" or len(change) < 2:
            raise click.BadParameter(f"{change!r}: write +tag to add or -tag to remove")
        try:
            check_tag(change[1:])
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        (add if change[0] == "+" else remove).append(change[1:])
    (tid,) = _resolve(app, (thread,))
    with app.db.atomic():
        change_tags(app.db, tid, add, remove, iso(app.now), "cli")


COMMANDS = [close_command, reopen_command, snooze_command, tag_command]
