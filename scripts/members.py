"""The people on the team (``team.members``) and who of them is on duty (``team.rota``).

A member is a short name and a team address.  Names, not addresses, are what the
database keeps (``thread_state.assignee``) and what people type (``triage assign 42
alice``), so an address change is a config edit.  The rota is read in
``report.timezone``: a weekday map gives each local day its member, a rotation hands the
duty on every ``every`` (whole days) from ``start``, in the members' order.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from .validate import Section

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# words that mean something else where a member name is expected
NOBODY = ("none", "unassigned")  # what --assignee and `a` in `triage work` take for nobody
RESERVED = {"me", "on_duty", *NOBODY}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")


@dataclass(frozen=True)
class Member:
    name: str
    address: str


@dataclass
class Rota:
    """Weekday map (``weekdays``) or rotation (``every``/``start``/``order``)."""

    weekdays: dict[int, str] = field(default_factory=dict)  # 0 = Monday
    every: int = 0  # days
    start: dt.date | None = None
    order: list[str] = field(default_factory=list)

    def name_on(self, day: dt.date) -> str | None:
        """The member on duty on local date ``day`` (a rotation runs back before ``start``
        too: the same turn order, so no day is without someone)."""
        if self.every and self.start is not None:
            turn = (day - self.start).days // self.every
            return self.order[turn % len(self.order)]
        return self.weekdays.get(day.weekday())


def find(members: Sequence[Member], who: str) -> Member | None:
    """The member called ``who`` or writing from address ``who`` (any case)."""
    who = who.strip().lower()
    return next((m for m in members if who in (m.name, m.address)), None)


def on_duty(members: Sequence[Member], rota: Rota | None, moment: dt.datetime,
            timezone: str) -> Member | None:
    """Who was on duty at ``moment``, its day taken in ``timezone``."""
    if rota is None:
        return None
    name = rota.name_on(moment.astimezone(ZoneInfo(timezone)).date())
    return find(members, name) if name else None


def read_members(section: Section, name: str, is_us: Callable[[str], bool]) -> list[Member]:
    members: list[Member] = []
    for item in section.items(name):
        member = Member(name=item.get("name", str, required=True).strip().lower(),
                        address=item.get("address", str, required=True).strip().lower())
        if not _NAME.match(member.name) or member.name in RESERVED:
            raise item.error("name", f"{member.name!r} cannot be a member name: use lower-case "
                             "letters, digits, '.', '_' or '-', and none of "
                             + ", ".join(sorted(RESERVED)))
        if not is_us(member.address):
            raise item.error("address", f"{member.address!r} is not a team address (list it, "
                             "or its domain, in team.addresses or team.domains)")
        if find(members, member.name) or find(members, member.address):
            raise item.error("name", f"{member.name} <{member.address}> is listed twice")
        item.reject_unknown()
        members.append(member)
    return members


def read_rota(section: Section, members: Sequence[Member]) -> Rota | None:
    if not section.data:
        return None
    names = {m.name for m in members}

    def member(key: str, value: object) -> str:
        if not isinstance(value, str) or value.strip().lower() not in names:
            raise section.error(key, f"{value!r} is not in team.members")
        return value.strip().lower()

    if section.has("every"):
        rota = Rota(every=_whole_days(section))
        rota.start = section.convert("start", _date, None)
        if rota.start is None:
            raise section.error("start", "missing (required with every:): the first day "
                                "of the first member's turn")
        order = section.str_list("members")
        if not order:
            raise section.error("members", "missing: who takes turns, in order")
        rota.order = [member("members", n) for n in order]
    else:
        rota = Rota()
        for day in WEEKDAYS:
            if (value := section.get(day, str)) is not None:
                rota.weekdays[WEEKDAYS.index(day)] = member(day, value)
        section.reject_unknown()  # a typo ("monday") says so, not "expected weekdays"
        if not rota.weekdays:
            raise section.error_here("expected weekdays (mon: alice, ...) or a rotation "
                                     "(every:, start:, members:)")
    section.reject_unknown()
    return rota


def _whole_days(section: Section) -> int:
    every = section.duration("every", dt.timedelta(0))
    if every < dt.timedelta(days=1) or every % dt.timedelta(days=1):
        raise section.error("every", "expected whole days, such as 1d or 1w")
    return every.days


def _date(value: object) -> dt.date:
    if isinstance(value, dt.date):  # YAML reads 2026-11-30 as a date already
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    raise ValueError(f"expected a date like 2026-11-30, got {value!r}")
