"""What else a customer wrote: threads by customer address or by their company's domain.

A thread's customer is the address its summary names (``threads.customer``).  A domain
stands for a company only when it is not a public mail provider: everyone at gmail.com
is not one customer.  The built-in list below is short on purpose; ``team.public_domains``
adds to it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from .states import effective

if TYPE_CHECKING:
    import sqlite_utils

MAX_OTHER_THREADS = 50  # `show` lists this many, the latest first


def domain_of(address: str | None) -> str:
    return (address or "").rpartition("@")[2].lower()


def customer_sql(spec: str) -> tuple[str, list[Any]]:
    """A WHERE clause on ``threads t`` for ``--customer ADDRESS`` or ``--customer @DOMAIN``
    (a domain matches its subdomains too)."""
    spec = spec.strip().lower()
    if spec.startswith("@"):
        domain = spec[1:]
        return ("(t.customer LIKE ? ESCAPE '\\' OR t.customer LIKE ? ESCAPE '\\')",
                ["%@" + _like(domain), "%." + _like(domain)])
    return "t.customer = ?", [spec]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def other_threads(db: sqlite_utils.Database, thread_id: int, customer: str | None,
                  public_domains: frozenset[str], now: dt.datetime) -> list[dict[str, Any]]:
    """The customer's other threads (``show``): by their address, and by their domain
    unless it is a public provider's or empty; each says which it matched by."""
    if not customer:
        return []
    domain = domain_of(customer)
    where, params = customer_sql(customer)
    if domain and domain not in public_domains:
        where, params = f"({where} OR t.customer LIKE ? ESCAPE '\\')", [
            *params, "%@" + _like(domain)]
    rows = db.query(
        "SELECT t.id, t.subject, t.customer, t.last_at, s.state, s.snoozed_until FROM threads t "
        f"LEFT JOIN thread_state s ON s.thread_id = t.id WHERE {where} AND t.id != ? "
        "ORDER BY t.last_at DESC, t.id DESC LIMIT ?", [*params, thread_id, MAX_OTHER_THREADS])
    return [{"id": r["id"], "subject": r["subject"] or "", "customer": r["customer"],
             "state": effective(r["state"], r["snoozed_until"], now), "last_at": r["last_at"],
             "by": "address" if r["customer"] == customer.lower() else "domain"}
            for r in rows]
