"""``triage reply``: answer a thread (or every overdue thread) from a canned template.

Without ``--send`` or ``--draft`` nothing changes: the reply is printed as a person reads it.
"""

from __future__ import annotations

import os
import sys

import click

from ..assignment import claim
from ..compose import Reply, compose, preview, reply_draft, templated_draft
from ..editing import apply_edit, edit_text, free_form_template, read_body
from ..errors import EditAborted
from ..outbox import SENT, UNKNOWN, save_draft
from ..render import load_reply
from ..sending import Result, bulk_targets, compose_each, send_replies
from ..store import require_thread
from ..text import one_line
from .app import App, pass_app


def _interactive() -> bool:
    """Whether a person is at a terminal to answer a confirmation prompt."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _report(app: App, result: Result) -> bool:
    """One line per reply on stderr; whether it went out."""
    reply, outcome = result.reply, result.outcome
    where = f"thread {result.thread_id}"
    if outcome is None:
        click.echo(f"{where}: not sent: {result.skipped}", err=True)
        return False
    if outcome.state == SENT:
        copies = f" (cc {', '.join(reply.cc)})" if reply.cc else ""
        app.echo(f"{where}: sent {reply.template.name} to {reply.to_addr}{copies}", err=True)
        for note in (outcome.error, outcome.warning):
            if note:
                click.echo(f"warning: {where}: {note}", err=True)
        return True
    if outcome.state == UNKNOWN:
        click.echo(f"{where}: delivery unknown, so it will not be sent again: {outcome.error} "
                   f"(see `triage outbox`)", err=True)
    else:
        click.echo(f"{where}: not sent: {outcome.error}", err=True)
    return False


def _claim(app: App, results: list[Result]) -> None:
    """What a member (--as) answered and nobody owned is theirs now."""
    if app.member_name:
        claim(app.db, [r.thread_id for r in results if r.sent], app.member_name, app.now,
              f"cli: {app.member_name} replied")


def _confirm(question: str, lines: list[str]) -> None:
    """Ask a person at a terminal; without one, only --yes may go on (exit 2)."""
    if not _interactive():
        raise click.UsageError(f"not at a terminal: {question[:-1].lower()} needs --yes")
    click.echo("\n".join(lines), err=True)
    if not click.confirm(question, err=True):
        raise click.Abort()


@click.command("reply", short_help="Answer a thread, or every overdue one, from a template.")
@click.argument("args", nargs=-1, metavar="[THREAD] [TEMPLATE]")
@click.option("--edit", "-e", is_flag=True,
              help="Finish the reply in $VISUAL/$EDITOR (To, Cc, Subject and the text); "
                   "without TEMPLATE, start from a greeting and the customer's words.")
@click.option("--body", "body_file", metavar="FILE|-",
              help="Send this text (a file, or - for stdin) instead of a template.")
@click.option("--overdue", "bulk", is_flag=True,
              help="Answer every overdue thread (TEMPLATE only; never twice, never automated "
                   "mail).")
@click.option("--send", is_flag=True, help="Send over SMTP and keep a copy in Sent.")
@click.option("--draft", is_flag=True, help="Save in the Drafts folder for a person to send.")
@click.option("--yes", "-y", is_flag=True,
              help="With --overdue: do not ask (required when no one is at a terminal).")
@click.option("--force", is_flag=True,
              help="Send even if the thread changed, holds a teammate's draft, or an earlier "
                   "reply's delivery is unknown.")
@click.option("--no-cc", is_flag=True,
              help="Only to the customer, not to the others the last message was written to.")
@click.option("--raw", is_flag=True, help="Print the MIME message instead of readable text.")
@pass_app
def reply_command(app: App, args: tuple[str, ...], edit: bool, body_file: str | None,
                  bulk: bool, send: bool, draft: bool, yes: bool, force: bool, no_cc: bool,
                  raw: bool) -> None:
    """Reply to THREAD from TEMPLATE: print it, or --draft / --send it.

    \b
    triage reply 42 sorry            show the reply, change nothing
    triage reply 42 sorry --send     send it; the thread becomes "waiting"
    triage reply 42 sorry --edit --send   adjust it in your editor first
    triage reply 42 --edit --send    write it yourself (greeting and quote to start)
    triage reply 42 --body answer.txt --send
    triage reply --overdue sorry --send --yes
    """
    if send and draft:
        raise click.UsageError("use either --send or --draft")
    _ = app.member_name  # an unknown --as fails now, not after the mail went out
    if bulk:
        if len(args) != 1 or edit or body_file:
            raise click.UsageError("with --overdue give only TEMPLATE (no --edit or --body)")
        _bulk(app, args[0], send, draft, yes, force, not no_cc)
        return
    if not args or len(args) > 2 or (len(args) == 1 and not (edit or body_file)) \
            or (body_file and len(args) == 2):
        raise click.UsageError("expected THREAD TEMPLATE, THREAD --edit [TEMPLATE] "
                               "or THREAD --body FILE")
    tid = require_thread(app.db, args[0])
    reply = written_reply(app, tid, args[1] if len(args) == 2 else None, edit=edit,
                          body_file=body_file, send=send, cc=not no_cc)
    if draft:
        folder = save_draft(app.db, app.config, reply, app.now)
        app.echo(f"thread {tid}: draft saved in {folder}", err=True)
    elif send:
        send_one(app, reply, force)
    elif raw:
        click.echo(reply.message.as_string(), nl=False)
    else:
        click.echo(preview(reply), nl=False)


def written_reply(app: App, tid: int, template_name: str | None, *, edit: bool,
                  body_file: str | None, send: bool, cc: bool) -> Reply:
    """The reply to one thread: from a template, a body written elsewhere, or the editor
    (an unchanged file when sending, or an empty text, sends nothing: EditAborted)."""
    db, config = app.db, app.config
    template = (load_reply(config, template_name) if template_name is not None
                else free_form_template(config))
    if body_file is not None:  # the text is written: no template to render (and no fetch)
        draft = reply_draft(db, config, tid, cc=cc)
        draft.body = read_body(body_file, sys.stdin.read() if body_file == "-" else None)
    else:
        draft = templated_draft(db, config, tid, template, app.now, cc=cc)
    if edit:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        text = click.edit(edit_text(draft), editor=editor, require_save=send,
                          extension=".txt")  # a 0600 file in $TMPDIR, removed afterwards
        if text is None:
            raise EditAborted("the reply was not changed: nothing sent")
        draft = apply_edit(draft, text, config)
    return compose(db, config, draft, template, app.now)


def send_one(app: App, reply: Reply, force: bool) -> bool:
    """Send one reply with every check; whether it went out (said on stderr either way)."""
    [result] = send_replies(app.db, app.config, [reply], app.now, force=force)
    _claim(app, [result])
    if not _report(app, result):
        raise SystemExit(1)
    return True


def _bulk(app: App, template: str, send: bool, draft: bool, yes: bool, force: bool,
          cc: bool) -> None:
    ids = bulk_targets(app.db, app.config, template, app.now, skip_drafted=draft)
    replies, cannot = compose_each(app.db, app.config, ids, template, app.now, cc=cc)
    for tid, why in cannot:
        click.echo(f"thread {tid}: skipped: {why}", err=True)
    if not replies:
        app.echo(f"no overdue thread needs {template!r}", err=True)
        return
    n = f"{len(replies)} thread{'s' if len(replies) != 1 else ''}"
    lines = [f"  {r.thread_id}: {one_line(r.subject, 60)} -> {one_line(r.to_addr)}"
             for r in replies]
    if not (send or draft):
        click.echo(f"would reply {template!r} to {n} (use --send or --draft):")
        click.echo("\n".join(lines))
        return
    if not yes:
        _confirm(f"{'Send' if send else 'Save drafts of'} {template!r} to {n}?", lines)
    if draft:
        for reply in replies:
            folder = save_draft(app.db, app.config, reply, app.now)
            app.echo(f"thread {reply.thread_id}: draft saved in {folder}", err=True)
        return
    results = send_replies(app.db, app.config, replies, app.now, force=force)
    _claim(app, results)
    sent = sum(_report(app, r) for r in results)
    # a thread someone else is on was skipped on purpose; a send that failed is a failure
    failed = sum(r.outcome is not None and not r.sent for r in results)
    if failed:  # (a server that cannot be reached fails the first; the rest wait)
        raise click.ClickException(f"sent {sent} of {len(results)}; the others are listed above")


COMMANDS = [reply_command]
