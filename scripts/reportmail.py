"""The daily report as people read it: its subject, text and HTML from the templates
(``report/report.txt.j2`` and ``report/report.html.j2``; a user's ``templates/`` folder may
override either) and the ``multipart/alternative`` mail that carries them.  The data comes
from report.py; every customer string goes through the templates' escaping filters.
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from .config import ON_DUTY, Config
from .dailystats import text_bar
from .errors import ConfigError
from .members import on_duty
from .render import environment, render_file
from .store import parse_iso
from .text import one_line
from .times import format_duration

TEXT_TEMPLATE = "report/report.txt.j2"
HTML_TEMPLATE = "report/report.html.j2"


def subject_for(config: Config, data: dict[str, Any]) -> str:
    """The report's Subject: the configured text plus a short status."""
    parts = []
    if data["sync"]["stale"]:
        parts.append("SYNC STALE")
    n = data["headline"]["waiting_too_long"]
    if n:
        parts.append(f"{n} waiting too long")
    if data["headline"]["attention"]:
        parts.append(f"{data['headline']['attention']} need a person")
    if not parts:
        parts.append("all clear")
    return one_line(f"{config.report.subject}: {', '.join(parts)}")


def template_filters(config: Config) -> dict[str, Any]:
    """The filters the report templates use (also the web pages', web.py)."""
    return _filters(config)


def _filters(config: Config) -> dict[str, Any]:
    zone = ZoneInfo(config.report.timezone)

    def localtime(value: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        at = parse_iso(value)
        return at.astimezone(zone).strftime(fmt) if at else "-"

    def duration(hours: float | None) -> str:
        if hours is None:
            return "n/a"
        return format_duration(dt.timedelta(hours=hours))

    def clean(value: Any, width: int | None = None) -> str:
        return one_line(value, width)

    def pad(value: Any, width: int) -> str:
        return one_line(value, width).ljust(width)

    def rpad(value: Any, width: int) -> str:
        return one_line(value, width).rjust(width)

    def bar(pct: float, width: int = 30) -> str:
        return "#" * round(pct / 100 * width)

    return {"localtime": localtime, "duration": duration, "clean": clean, "pad": pad,
            "rpad": rpad, "bar": bar, "trendbar": text_bar}


class RenderedReport(NamedTuple):
    subject: str
    text: str
    html: str


def render_report(config: Config, data: dict[str, Any]) -> RenderedReport:
    """The report's subject, text and HTML, from the templates (rendered once)."""
    subject = subject_for(config, data)
    out = []
    for name, autoescape in ((TEXT_TEMPLATE, False), (HTML_TEMPLATE, True)):
        env = environment(config, autoescape=autoescape)
        env.filters.update(_filters(config))
        out.append(render_file(env, name, {"report": data, "subject": subject,
                                           "config_subject": config.report.subject}))
    return RenderedReport(subject, out[0], out[1])


def check_sendable(config: Config) -> None:
    """What mailing the report needs from the config, each missing piece one ConfigError."""
    if not config.report.to:
        raise ConfigError(config.path, "report.to", "missing: list who gets the report")
    if config.smtp is None:
        raise ConfigError(config.path, "smtp", "missing: needed to send the report")
    if not config.agent.address:
        raise ConfigError(config.path, "agent.address",
                          "missing: the report needs a From address (or list team.addresses)")


def report_recipients(config: Config, now: dt.datetime) -> list[str]:
    """``report.to`` with ``on_duty`` replaced by the address of the member on duty today
    (left out on a day the rota names nobody)."""
    out = []
    for entry in config.report.to:
        if entry != ON_DUTY:
            out.append(entry)
        elif (member := on_duty(config.team.members, config.team.rota, now,
                                config.report.timezone)) is not None:
            out.append(member.address)
    if not out:
        raise ConfigError(config.path, "report.to", "nobody to send the report to today "
                          "(on_duty only, and the rota names nobody)")
    return list(dict.fromkeys(out))


def report_message(config: Config, rendered: RenderedReport, now: dt.datetime) -> EmailMessage:
    """The report as a ``multipart/alternative`` email to ``report.to``."""
    check_sendable(config)
    sender = config.agent.address or ""
    msg = EmailMessage()
    msg["From"] = formataddr((config.agent.name, sender))
    msg["To"] = ", ".join(report_recipients(config, now))
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = make_msgid("report", domain=sender.rpartition("@")[2] or None)
    # RFC 3834: machine-generated; autoresponders must not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg
