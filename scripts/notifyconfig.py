"""Reading ``notify:``: where ``triage run`` posts its chat nudges, and about what.

Kept apart from ``config.py`` so the notification code (``notify.py``) and its config stay
together, and apart from Apprise, which is imported only when a message is sent.  A URL may
carry a token (Slack, Matrix, a webhook's key), so an entry of ``urls`` is either a plain URL
without secrets or ``{url_env: NAME}`` / ``{url_cmd: [argv...]}``, resolved like a password
(credentials.py) at send time.  Errors name an entry by its index (``notify.urls[1]``),
never by its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .validate import Section

EVENTS = ("overdue", "bounced", "delivery_unknown", "urgent", "sync_failed")
"""What a notification can be about (notify.py says when each starts and clears)."""


@dataclass
class NotifyURL:
    """One entry of ``notify.urls``: a plain URL, or where to get it at send time."""

    key_prefix: str  # "notify.urls[0]": how errors and the attempts table name it
    url: str | None = None
    url_env: str | None = None
    url_cmd: list[str] | None = None
    command_env: list[str] = field(default_factory=list)
    config_file: str = "config"

    @property
    def service(self) -> str:
        """The scheme of a plain URL (``json``, ``slack``), else how it is given: safe to
        show, unlike the URL."""
        if self.url is not None:
            return self.url.partition("://")[0].lower()
        return "url_env" if self.url_env else "url_cmd"


@dataclass
class NotifyConfig:
    urls: list[NotifyURL]
    events: tuple[str, ...] = EVENTS


def _read_url(item: object, section: Section, index: int) -> NotifyURL:
    key = f"{section.path('urls')}[{index}]"
    if isinstance(item, str):
        parts = urlsplit(item) if "://" in item else None
        if parts is None or not parts.scheme:
            # the value is not repeated: it may be a secret pasted in the wrong place
            raise section.make_error(section.file, key, "expected a URL like json://host/path "
                                     "(or {url_env: NAME} / {url_cmd: [...]})")
        if parts.password:
            raise section.make_error(section.file, key, "this URL holds a password; give it as "
                                     "{url_env: NAME} or {url_cmd: [...]} instead")
        return NotifyURL(key, url=item, config_file=section.file)
    entry = Section(item, section.file, key, section.make_error)
    url = NotifyURL(key, url_env=entry.get("url_env", str), url_cmd=entry.command("url_cmd"),
                    command_env=entry.str_list("command_env"), config_file=section.file)
    entry.reject_unknown()
    if (url.url_env is None) == (url.url_cmd is None):
        raise entry.error_here("expected a URL string, or exactly one of url_env and url_cmd")
    return url


def read_notify(section: Section) -> NotifyConfig:
    """``notify: {urls: [...], events: [...]}``; events default to all of :data:`EVENTS`."""
    raw = section.get("urls", list, required=True)
    if not raw:
        raise section.error("urls", "empty list: name at least one Apprise URL")
    urls = [_read_url(item, section, i) for i, item in enumerate(raw)]
    events = tuple(section.str_list("events", list(EVENTS)))
    for event in events:
        if event not in EVENTS:
            raise section.error("events", f"unknown event {event!r} (expected some of "
                                          f"{', '.join(EVENTS)})")
    if not events:
        raise section.error("events", "empty list: leave it out for all events")
    section.reject_unknown()
    return NotifyConfig(urls, tuple(e for e in EVENTS if e in events))
