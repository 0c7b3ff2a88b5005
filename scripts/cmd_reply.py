"""``triage reply``: answer a thread (or every overdue thread) from a canned template.

Without ``--send`` or ``--draft`` nothing changes: the rendered message is printed.
"""

from __future__ import annotations

import sys

import click

from . import display
from .app import App, pass_app
from .render import TemplateProblem
from .reply import Reply, ReplyError, bulk_targets, render_reply, save_draft, send_reply
from .smtp import SendError
from .store import resolve_thread_id


def _interactive() -> bool:
    """Whether a person is at a terminal to answer a confirmation prompt."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _render(app: App, thread_id: int, template: str) -> Reply:
    try:
        return render_reply(app.db, app.config, thread_id, template, app.now)
    except (TemplateProblem, ReplyError) as exc:
        raise click.ClickException(str(exc)) from None


def _deliver(app: App, reply: Reply, send: bool) -> None:
    if send:
        try:
            warning = send_reply(app.db, app.config, reply, app.now)
        except SendError as exc:
            raise click.ClickException(f"thread {reply.thread_id}: not sent: {exc}") from None
        if warning:
            click.echo(f"warning: {warning}", err=True)
        app.echo(f"thread {reply.thread_id}: sent {reply.template.name} to {reply.to_addr}",
                 err=True)
    else:
        try:
            folder = save_draft(app.db, app.config, reply, app.now)
        except ReplyError as exc:
            raise click.ClickException(str(exc)) from None
        app.echo(f"thread {reply.thread_id}: draft saved in {folder}", err=True)


@click.command("reply")
@click.argument("args", nargs=-1, metavar="[THREAD] TEMPLATE")
@click.option("--overdue", "bulk", is_flag=True,
              help="Answer every overdue thread (TEMPLATE only; never twice, never automated "
                   "mail).")
@click.option("--send", is_flag=True, help="Send over SMTP and keep a copy in Sent.")
@click.option("--draft", is_flag=True, help="Save in the Drafts folder for a person to send.")
@click.option("--yes", "-y", is_flag=True, help="With --overdue: do not ask for confirmation.")
@pass_app
def reply_command(app: App, args: tuple[str, ...], bulk: bool, send: bool, draft: bool,
                  yes: bool) -> None:
    """Reply to THREAD from TEMPLATE: print it, or --draft / --send it.

    \b
    triage reply 42 sorry            show the rendered message, change nothing
    triage reply 42 sorry --send     send it; the thread becomes "waiting"
    triage reply --overdue sorry --send --yes
    """
    if send and draft:
        raise click.UsageError("use either --send or --draft")
    if bulk:
        if len(args) != 1:
            raise click.UsageError("with --overdue give only TEMPLATE")
        _bulk(app, args[0], send, draft, yes)
        return
    if len(args) != 2:
        raise click.UsageError("expected THREAD TEMPLATE")
    ref, template = args
    tid = resolve_thread_id(app.db, ref)
    if tid is None:
        raise click.ClickException(f"no thread {ref!r}")
    reply = _render(app, tid, template)
    if not (send or draft):
        click.echo(reply.message.as_string(), nl=False)
        return
    _deliver(app, reply, send)


def _bulk(app: App, template: str, send: bool, draft: bool, yes: bool) -> None:
    try:
        ids = bulk_targets(app.db, app.config, template, app.now, skip_drafted=draft)
    except TemplateProblem as exc:
        raise click.ClickException(str(exc)) from None
    # Render everything first: a broken template must stop the run before the first mail.
    replies = [_render(app, tid, template) for tid in ids]
    if not replies:
        app.echo(f"no overdue thread needs {template!r}", err=True)
        return
    lines = [f"  {r.thread_id}: {display.safe(r.subject, 60)} -> {display.safe(r.to_addr)}"
             for r in replies]
    if not (send or draft):
        click.echo(f"would reply {template!r} to {len(replies)} thread"
                   f"{'s' if len(replies) != 1 else ''} (use --send or --draft):")
        click.echo("\n".join(lines))
        return
    if not yes and _interactive():
        verb = "Send" if send else "Save drafts of"
        click.echo("\n".join(lines), err=True)
        if not click.confirm(f"{verb} {template!r} to {len(replies)} thread"
                             f"{'s' if len(replies) != 1 else ''}?", err=True):
            raise click.Abort()
    for done, reply in enumerate(replies):
        try:
            _deliver(app, reply, send)
        except click.ClickException as exc:
            exc.message += f" ({done} of {len(replies)} done)"
            raise


COMMANDS = [reply_command]
