"""Who wrote a message: us, a customer, or a machine (README, "What the tool decides").

* **automated** when any automated-mail signal fired (parse.py);
* else **us** when the sender is a valid team address or at a team domain — with
  ``team.trust: authenticated`` only when the message sits in a Sent folder or our own
  mail server vouched for it (``dkim=pass`` or ``spf=pass`` for a team domain in an
  ``Authentication-Results`` header carrying ``team.authserv_id``);
* else the **customer**.

The sender is the addr-spec alone (addresses.py): a display name never makes mail ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .config import TeamConfig

US, CUSTOMER, AUTO = "us", "customer", "auto"

def classify(from_addr: str | None, auto_signals: Sequence[str], team: TeamConfig, *,
             from_sent: bool = False, auth_passes: Sequence[Sequence[str]] = ()) -> str:
    if auto_signals:
        return AUTO
    if not team.is_us(from_addr):
        return CUSTOMER
    if team.trust == "address" or from_sent or team.authenticated([list(p) for p in auth_passes]):
        return US
    return CUSTOMER


def classify_row(row: Mapping[str, Any], team: TeamConfig) -> str:
    """:func:`classify` for a ``messages`` row."""
    return classify(row["from_addr"], _list(row["auto_signals"]), team,
                    from_sent=bool(row.get("from_sent")),
                    auth_passes=_list(row.get("auth_results")))


def why(row: Mapping[str, Any], team: TeamConfig) -> str:
    """The rule that decided, in words (``explain``)."""
    signals = _list(row["auto_signals"])
    kind = classify_row(row, team)
    addr = row["from_addr"] or ""
    if kind == AUTO:
        return "automated: " + ", ".join(signals)
    if kind == US:
        how = ("team address" if addr in team.addresses
               else "team domain " + addr.rpartition("@")[2])
        if team.trust == "authenticated":
            how += ", in the Sent folder" if row.get("from_sent") else ", authenticated by " \
                   + str(team.authserv_id)
        return "ours: " + how
    if team.is_us(addr):
        return (f"customer: a team address, but neither in the Sent folder nor authenticated "
                f"by {team.authserv_id} (team.trust: authenticated)")
    return "customer: sender is not a valid team address or domain"


def _list(value: Any) -> list[Any]:
    if not value:
        return []
    return value if isinstance(value, list) else json.loads(value)
