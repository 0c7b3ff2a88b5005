"""click parameter types for what times.py parses: a bad value is a usage error (exit 2)
naming the option, and every command gets the same words for the same concept."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import click

from ..times import parse_duration, parse_now, parse_when


class Duration(click.ParamType):
    """``4h``, ``2d``, ``1d4h30m``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Moment(click.ParamType):
    """An ISO-8601 moment (``--now``); naive ones are UTC."""

    name = "iso-8601"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_now(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class When(click.ParamType):
    """A duration from now (``3d``: back with ``past``, ahead without), a date or a date and
    time, read against the global ``--now`` and, with ``report_zone``, in the report's time
    zone (else UTC)."""

    name = "when"

    def __init__(self, past: bool = False, report_zone: bool = False):
        self.past = past
        self.report_zone = report_zone

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        from .app import App

        app = ctx.find_object(App) if ctx is not None else None
        now = app.now if app is not None else dt.datetime.now(dt.UTC)
        zone = ZoneInfo(app.config.report.timezone) if app is not None and self.report_zone \
            else None
        try:
            return parse_when(value, now, zone, past=self.past)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()
MOMENT = Moment()
