"""Who owns a thread: given by hand (``triage assign``), by a member replying, or by the rota.

The rules, each applied once per thread and written to ``history`` with its cause:

* a thread a member answers while nobody owns it becomes theirs (their address in From of
  mail in a synced folder, or ``triage reply --as``) -- unless someone changed the owner by
  hand after that reply: ``unassign`` stays unassigned;
* a new thread where a customer waits, that nobody owns once the rules ran, goes to the
  member on duty when its first message arrived (``team.rota``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .config import Config
from .errors import UsageError
from .members import NOBODY, Member, find, on_duty
from .states import assign_if_unowned, set_assignee
from .store import iso, parse_iso, query_rows

if TYPE_CHECKING:
    import sqlite_utils


def member_named(config: Config, who: str, acting_as: str | None = None) -> Member:
    """The member ``who`` names: a name, an address, or ``me`` (``--as``/``TRIAGE_AS``)."""
    members = config.team.members
    if not members:
        raise UsageError(f"no team.members in {config.path}: list the team to assign threads")
    if who.strip().lower() == "me":
        if not acting_as:
            raise UsageError("'me' needs --as NAME (or TRIAGE_AS) to say who you are")
        who = acting_as
    member = find(members, who)
    if member is None:
        raise UsageError(f"{who!r} is not in team.members (members: "
                         f"{', '.join(m.name for m in members)})")
    return member


def owner_named(config: Config, who: str, acting_as: str | None = None) -> Member | None:
    """:func:`member_named`, or None for ``none``/``unassigned`` (nobody)."""
    return None if who.strip().lower() in NOBODY else member_named(config, who, acting_as)


def assign(db: sqlite_utils.Database, thread_ids: Sequence[int], member: Member | None,
           now: dt.datetime, cause: str) -> list[int]:
    """Give threads to ``member`` (None: to nobody); the ids that changed."""
    at = iso(now)
    with db.atomic():
        return [tid for tid in thread_ids
                if set_assignee(db, tid, member.name if member else None, at, cause)]


def claim(db: sqlite_utils.Database, thread_ids: Sequence[int], name: str,
          now: dt.datetime, cause: str) -> None:
    """Give the threads nobody owns to member ``name`` (they just answered them)."""
    at = iso(now)
    with db.atomic():
        for tid in thread_ids:
            assign_if_unowned(db, tid, name, at, cause)


def follow_replies(db: sqlite_utils.Database, config: Config, thread_ids: Sequence[int],
                   now: dt.datetime) -> None:
    """Threads nobody owns that a member wrote to become theirs (caller's transaction)."""
    by_address = {m.address: m for m in config.team.members}
    if not by_address or not thread_ids:
        return
    latest: dict[int, tuple[str, Member]] = {}
    marks = ",".join("?" * len(by_address))
    for tid, addr, arrived in query_rows(
            db, "SELECT m.thread_id, m.from_addr, m.arrived_at FROM messages m "
                "JOIN thread_state s ON s.thread_id = m.thread_id "
                f"WHERE m.thread_id IN ({{in}}) AND s.assignee IS NULL AND m.draft = 0 "
                f"AND m.from_addr IN ({marks}) ORDER BY m.arrived_at", thread_ids,
            list(by_address)):
        latest[tid] = (arrived, by_address[addr])
    if not latest:
        return
    changed = {tid: at for tid, at in query_rows(
        db, "SELECT thread_id, MAX(at) FROM history WHERE field = 'assignee' "
            "AND thread_id IN ({in}) GROUP BY thread_id", list(latest))}
    for tid, (arrived, member) in latest.items():
        if tid not in changed or arrived > changed[tid]:
            set_assignee(db, tid, member.name, iso(now), f"sync: {member.name} replied")


def follow_rota(db: sqlite_utils.Database, config: Config, new_threads: Sequence[int],
                now: dt.datetime) -> None:
    """New customer threads nobody owns go to who was on duty (caller's transaction)."""
    team = config.team
    if team.rota is None or not new_threads:
        return
    for tid, first_at in query_rows(
            db, "SELECT t.id, t.first_at FROM threads t JOIN thread_state s "
                "ON s.thread_id = t.id WHERE t.id IN ({in}) AND s.assignee IS NULL "
                "AND s.state = 'open' AND t.automated = 0", new_threads):
        arrived = parse_iso(first_at) or now
        member = on_duty(team.members, team.rota, arrived, config.report.timezone)
        if member is not None:
            set_assignee(db, tid, member.name, iso(now), "sync: on duty")
