"""``triage work``: the queue one thread at a time, one key per action.

Every action is the same library call as its single command (history cause ``cli``), and a
send goes through the same checks: the mailbox is looked at first, and a thread a teammate
answered meanwhile is skipped with a line saying so.
"""

from __future__ import annotations

import os
import sys
import urllib.request
import webbrowser
from collections import Counter

import click

from .. import display
from ..assignment import assign, owner_named
from ..errors import MailtriageError
from ..listing import thread_detail
from ..outbox import save_draft
from ..render import reply_names
from ..rules import parse_tag_changes
from ..states import STATES, State, change_tags, set_state
from ..store import iso
from ..workqueue import work_queue
from .app import App, owner_filter, pass_app
from .params import When
from .reply import send_one, written_reply

KEYS = """\b
  r  reply with a template (a menu), sent after the mailbox is looked at
  e  reply in the editor ($VISUAL/$EDITOR), sent the same way
  d  save a reply from a template as a draft
  c  close          s  snooze (asks until when)
  t  tag (+a -b)    a  assign (a member, me, or none)
  o  open the thread in the browser view (triage serve on 127.0.0.1:8001, or
     $TRIAGE_SERVE_URL)
  n  next (space)   p  previous
  ?  these keys     q  quit"""
SERVE_URL = "http://127.0.0.1:8001"  # triage serve's default


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _choose_template(app: App) -> str | None:
    names = reply_names(app.config)
    for n, name in enumerate(names, 1):
        click.echo(f"  {n}. {name}")
    answer = click.prompt("template (number or name, empty: back)", default="",
                          show_default=False).strip()
    if answer.isdigit() and 1 <= int(answer) <= len(names):
        return names[int(answer) - 1]
    return answer if answer in names else None


class Session:
    """One `triage work` run: where it is in the queue and what it did."""

    def __init__(self, app: App, ids: list[int]) -> None:
        self.app, self.ids, self.at = app, ids, 0
        self.done: Counter[str] = Counter()

    def show(self) -> None:
        tid = self.ids[self.at]
        detail = thread_detail(self.app.db, tid, self.app.now,
                               self.app.config.team.public_domains)
        click.clear()
        click.echo(f"[{self.at + 1}/{len(self.ids)}] " + display.thread_text(detail, self.app.now))
        click.echo("\nr reply  e edit  d draft  c close  s snooze  t tag  a assign  "
                   "o browser  n next  p prev  ? help  q quit")

    def act(self, key: str) -> bool:
        """Do what ``key`` says; False to quit."""
        if key == "q":
            return False
        tid = self.ids[self.at]
        actions = {
            "n": lambda: self.move(1), " ": lambda: self.move(1), "p": lambda: self.move(-1),
            "?": lambda: click.echo(KEYS.replace("\b\n", "")),
            "r": lambda: self.reply(tid, "r"), "e": lambda: self.reply(tid, "e"),
            "d": lambda: self.reply(tid, "d"),
            "c": lambda: self.set(tid, State.CLOSED, None, "closed"),
            "s": lambda: self.snooze(tid), "t": lambda: self.tag(tid),
            "a": lambda: self.assign(tid), "o": lambda: self.open_in_browser(tid),
        }
        actions.get(key, lambda: click.echo(f"no key {key!r}: ? lists them", err=True))()
        return True

    def open_in_browser(self, tid: int) -> None:
        """The thread's page of `triage serve`, if one is running (asked, not assumed)."""
        base = os.environ.get("TRIAGE_SERVE_URL", SERVE_URL).rstrip("/")
        try:
            with urllib.request.urlopen(f"{base}/-/versions.json", timeout=2):
                pass
        except (OSError, ValueError):
            click.echo(f"no browser view at {base}: start `triage serve` (or set "
                       "TRIAGE_SERVE_URL)", err=True)
            return
        webbrowser.open(f"{base}/-/thread/{tid}")  # $BROWSER decides which

    def snooze(self, tid: int) -> None:
        until = click.prompt("snooze until (3d, 2026-12-01T09:00)", type=When())
        if until <= self.app.now:
            raise click.BadParameter("must be in the future")
        self.set(tid, State.SNOOZED, iso(until), "snoozed")

    def tag(self, tid: int) -> None:
        add, remove = parse_tag_changes(click.prompt("tags (+a -b)").split())
        with self.app.db.atomic():
            change_tags(self.app.db, tid, add, remove, iso(self.app.now), "cli")

    def assign(self, tid: int) -> None:
        who = click.prompt("assign to (a member, me, none)").strip()
        member = owner_named(self.app.config, who, self.app.acting_as)
        assign(self.app.db, [tid], member, self.app.now,
               f"cli: by {self.app.member_name or 'someone'}")

    def move(self, step: int) -> None:
        self.at = min(max(self.at + step, 0), len(self.ids) - 1)

    def set(self, tid: int, state: State, until: str | None, done: str) -> None:
        with self.app.db.atomic():
            set_state(self.app.db, tid, state, iso(self.app.now), "cli", snoozed_until=until)
        self.done[done] += 1
        self.move(1)

    def reply(self, tid: int, key: str) -> None:
        template = None if key == "e" else _choose_template(self.app)
        if template is None and key != "e":
            return
        reply = written_reply(self.app, tid, template, edit=key == "e", body_file=None,
                              send=key != "d", cc=True)
        if key == "d":
            folder = save_draft(self.app.db, self.app.config, reply, self.app.now)
            click.echo(f"thread {tid}: draft saved in {folder}", err=True)
            self.done["drafted"] += 1
        else:
            try:
                send_one(self.app, reply, force=False)
                self.done["answered"] += 1
            except SystemExit:  # not sent (said on stderr): stay on it
                self.done["skipped"] += 1
                return
        self.move(1)

    def summary(self) -> str:
        return ", ".join(f"{self.done[k]} {k}" for k in
                         ("answered", "drafted", "closed", "snoozed", "skipped"))


@click.command("work", short_help="Walk the queue, one thread at a time.",
               epilog=KEYS)
@click.option("--assignee", metavar="NAME|me|none", help="Only threads this member owns.")
@click.option("--tag", help="Only threads with this tag.")
@click.option("--state", type=click.Choice(STATES), help="Only threads in this state.")
@pass_app
def work_command(app: App, assignee: str | None, tag: str | None, state: str | None) -> None:
    """Go through the open queue, most urgent first (overdue, follow-ups, the rest), one
    thread per screen; one key per action. Needs a terminal."""
    if not _interactive():
        raise click.UsageError("triage work needs a terminal (use the single commands in "
                               "scripts)")
    _ = app.member_name  # an unknown --as fails before anything is shown
    ids = work_queue(app.db, app.config, app.now, assignee=owner_filter(app, assignee),
                     tag=tag, state=state, holding_templates=app.holding_templates)
    if not ids:
        click.echo("nothing in the queue", err=True)
        return
    session = Session(app, ids)
    while True:
        session.show()
        try:
            if not session.act(click.getchar()):
                break
        except (MailtriageError, click.BadParameter) as exc:  # this action only
            click.echo(f"not done: {exc}", err=True)
    click.echo(session.summary(), err=True)


COMMANDS = [work_command]
