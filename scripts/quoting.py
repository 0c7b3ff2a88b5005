"""The customer's own words in a reply: the text of their latest message, quoted.

Sync keeps only a 2 KB snippet of each body.  The whole text part is fetched when a reply
is written, and only when its template asks for it (``thread.last_customer.text`` or
``.quoted``): the BODYSTRUCTURE, then ``BODY.PEEK[n]`` of the first text/plain part alone,
at most ``MAX_TEXT`` bytes of it.  When the server cannot be asked (a local mailbox, a
network fault, the message is gone) the stored snippet stands in.

Quoting trims what the customer quoted themselves ("On … wrote:" and ``>`` lines) and their
signature (from a ``-- `` line), then puts ``> `` before every line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .text import clean_text, one_line

if TYPE_CHECKING:
    import sqlite_utils

    from .config import Config

log = logging.getLogger(__name__)

MAX_TEXT = 64 * 1024  # bytes of a text part fetched for quoting
MAX_QUOTED_LINES = 200
_WROTE = re.compile(r"^\s*(on\s.+\swrote:|am\s.+\sschrieb\s.*:|le\s.+\sa\s+écrit\s*:"
                    r"|-{2,}\s*original message\s*-{2,}|from:\s.+)\s*$", re.IGNORECASE)
_SIGNATURE = re.compile(r"^(-- ?|__+)$")

TextFetcher = Callable[[], str | None]


def trim(text: str) -> str:
    """The new part of a message: up to their own quoted history or their signature."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _SIGNATURE.match(line) or _WROTE.match(line) or line.startswith(">"):
            break
        kept.append(line.rstrip())
    while kept and not kept[-1]:
        kept.pop()
    while kept and not kept[0]:
        kept.pop(0)
    return "\n".join(kept[:MAX_QUOTED_LINES])


def quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in trim(text).split("\n"))


class LastCustomer:
    """``thread.last_customer`` in a reply template; the text is fetched on first use."""

    def __init__(self, row: Mapping[str, Any], fetch: TextFetcher | None = None) -> None:
        self.address = one_line(row.get("from_addr"))
        self.name = one_line(row.get("from_name"))
        self.date = row.get("date") or row.get("arrived_at") or ""
        self._snippet = row.get("snippet") or ""
        self._fetch = fetch

    @cached_property
    def text(self) -> str:
        fetched = None
        if self._fetch is not None:
            try:
                fetched = self._fetch()
            except Exception as exc:  # quoting is a courtesy: the snippet stands in
                log.warning("could not fetch the customer's message to quote it: %s", exc)
        return clean_text(fetched if fetched is not None else self._snippet,
                          keep_newlines=True)

    @cached_property
    def quoted(self) -> str:
        return quote(self.text)

    @property
    def attribution(self) -> str:
        """The line above a quote: ``Carol Customer <carol@x> wrote:``."""
        who = f"{self.name} <{self.address}>" if self.name else self.address
        return f"{who or 'You'} wrote:"


def server_text(db: sqlite_utils.Database, config: Config, message: int) -> str | None:
    """Ask the server for the text of stored message ``message`` (an IMAP location of it)."""
    from .imap import IMAPSession

    imap_accounts = {a.name for a in config.accounts if a.source == "imap"}
    for account, folder, uid in db.execute(
            "SELECT account, folder, uid FROM locations WHERE message = ? ORDER BY folder",
            [message]):
        if account not in imap_accounts:
            continue
        with IMAPSession(config.account(account)) as session:
            session.examine(folder)
            return session.fetch_text(uid, MAX_TEXT)
    return None
