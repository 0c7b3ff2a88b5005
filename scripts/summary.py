"""Whose turn it is, from a thread's messages alone (README, "What the tool decides").

* A message is the **customer's**, **ours** or **automated** (senders.py).
* A thread is **unanswered** when its latest non-automated message is the customer's.
  It has waited since the customer's first message after our last reply (or since their
  first message if we never replied).

Pure: events in, a :class:`Summary` out; triage.py reads the events from the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import TeamConfig
from .senders import CUSTOMER, US


@dataclass
class Event:
    """One message (or one reply we sent and have not synced yet) in a thread."""

    at: dt.datetime
    kind: str  # us | customer | auto
    message_id: str | None = None
    from_addr: str | None = None
    from_name: str | None = None
    to: Sequence[str] = ()
    subject: str = ""
    signals: Sequence[str] = ()
    template: str | None = None
    synced: bool = True  # False for a reply we sent that has not come back from Sent yet
    quiet: bool = False  # customer mail a keep_closed rule left out of the wait (states.py)


@dataclass
class Summary:
    first_at: dt.datetime | None = None
    last_at: dt.datetime | None = None
    waiting_since: dt.datetime | None = None
    last_customer_at: dt.datetime | None = None
    last_team_at: dt.datetime | None = None
    last_team_message_id: str | None = None
    last_team_template: str | None = None
    first_response_at: dt.datetime | None = None
    customer: str | None = None
    customer_name: str | None = None
    last_sender: str | None = None
    automated: bool = False
    signals: list[str] = field(default_factory=list)


def summarize(events: Sequence[Event], team: TeamConfig) -> Summary:
    """Pure: who spoke last and since when the customer waits."""
    s = Summary()
    ordered = sorted(events, key=lambda e: e.at)
    if not ordered:
        return s
    s.first_at, s.last_at = ordered[0].at, ordered[-1].at
    s.signals = list(dict.fromkeys(sig for e in ordered for sig in e.signals))
    for e in ordered:
        if e.kind == CUSTOMER and not e.quiet:
            _customer_wrote(s, e)
        elif e.kind == US:
            _we_wrote(s, e)
    if s.customer is None:  # we wrote first (outbound) or only automated mail
        s.customer, s.customer_name = _addressee(ordered, team)
    s.automated = bool(s.signals) and s.last_customer_at is None and s.last_team_at is None
    return s


def _customer_wrote(s: Summary, e: Event) -> None:
    s.last_sender = CUSTOMER
    if s.last_customer_at is None:
        s.customer, s.customer_name = e.from_addr, e.from_name
    s.last_customer_at = e.at
    if s.waiting_since is None:  # the first message since our last answer
        s.waiting_since = e.at


def _we_wrote(s: Summary, e: Event) -> None:
    s.last_sender = US
    s.last_team_at = e.at
    s.last_team_message_id = e.message_id
    s.last_team_template = e.template
    if s.last_customer_at is not None and s.first_response_at is None:
        s.first_response_at = e.at
    s.waiting_since = None


def _addressee(ordered: Sequence[Event], team: TeamConfig) -> tuple[str | None, str | None]:
    """The customer of a thread they did not start: whom we first wrote to, else the
    first sender."""
    for e in ordered:
        if e.kind == US:
            others = [a for a in e.to if not team.is_us(a)]
            if others:
                return others[0], None
    return ordered[0].from_addr, ordered[0].from_name
