"""``triage explain``: why a thread is where it is."""

from __future__ import annotations

from typing import Any

import click

from ..display import short_time
from ..explain import explain_thread
from ..listing import dumps
from ..text import one_line
from .app import App, json_option, pass_app


@click.command("explain", short_help="Say why a thread is where it is.")
@click.argument("thread")
@json_option
@pass_app
def explain_command(app: App, thread: str, json_: bool) -> None:
    """Explain a thread: links, who counted as us/customer/automated, rules, SLA clock."""
    info = explain_thread(app.db, app.config, thread, app.now)
    if json_:
        click.echo(dumps(info))
        return
    out = [f"Thread {info['thread_id']}: {one_line(info['subject'])}",
           f"  state {info['state']}; {info['turn']}; tags: {' '.join(info['tags']) or '-'}; "
           f"owner: {info['assignee'] or '-'}"]
    for m in info["messages"]:
        out += _message_lines(m)
    sla = info["sla"]
    if "due_at" in sla:
        out.append(f"  SLA: waiting since {short_time(sla['waiting_since'])}, threshold "
                   f"{sla['threshold']}, due {short_time(sla['due_at'])}"
                   f"{' (OVERDUE)' if sla['overdue'] else ''}")
        out.append(f"       wall clock {sla['wall_clock']}, SLA time {sla['sla_time']}")
        if sla["business_hours"]:
            for a, b in sla["segments"]:
                out.append(f"       clock ran {short_time(a)} -> {short_time(b)}")
    else:
        out.append("  SLA: not running (nobody is waiting on us)")
    for n in info["notes"]:
        out.append(f"  note {short_time(n['at'])} by {one_line(n['author'] or 'someone')}: "
                   f"{one_line(n['text'], 100)}")
    for line in info["by_hand"]:
        out.append(f"  {line}")
    for h in info["history"]:
        out.append(f"  {short_time(h['at'])} {h['field']}: {h['old'] or '-'} -> "
                   f"{h['new'] or '-'} ({h['cause']})")
    click.echo("\n".join(out))


def _message_lines(m: dict[str, Any]) -> list[str]:
    lines = [f"  {m['n']}. [{short_time(m['arrived_at'])}] {one_line(m['from'])}",
             f"     {m['why']}",
             f"     linked by: {m['linked_by']}"]
    if m["rules"]:
        lines.append(f"     rules fired: {', '.join(m['rules'])}")
    if m["kept_closed"]:
        lines.append(f"     stayed closed: {m['kept_closed']}")
    return lines


COMMANDS = [explain_command]
