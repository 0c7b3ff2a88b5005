"""SLA clock: business hours and due-time arithmetic.

Pure functions over timezone-aware datetimes; no I/O. Every datetime returned is in UTC.
Business-hours windows are built as local wall times on each local date and only then
converted to UTC, so DST changes are handled by ``zoneinfo`` rather than by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .times import as_utc, format_duration
from .validate import Section

__all__ = ["MAX_SEARCH_DAYS", "MAX_SEGMENTS", "BusinessHours", "Clock"]

#: ``Clock.add`` gives up (ValueError) when the due time would be further away than this,
#: so a calendar with no open time (e.g. everything a holiday) cannot loop forever.
MAX_SEARCH_DAYS = 3660  # ~10 years

#: Default upper bound on the number of windows ``Clock.segments`` returns (a year of days).
MAX_SEGMENTS = 366

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = {name: i for i, full in enumerate(_WEEKDAYS) for name in (full, full[:3])}
_DAY_NAMES.update(tues=1, thur=3, thurs=3)


def _parse_day(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in _DAY_NAMES:
        return _DAY_NAMES[value.strip().lower()]
    raise ValueError(f"unknown day {value!r} (use mon, tue, wed, thu, fri, sat, sun)")


def _parse_days(value: Any) -> frozenset[int]:
    items: list[Any]
    if isinstance(value, str):
        items = [p for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ValueError("expected a list of days like [mon, tue] or 'mon-fri'")
    days: set[int] = set()
    for item in items:
        if isinstance(item, str) and "-" in item:
            first, _, last = item.partition("-")
            lo, hi = _parse_day(first), _parse_day(last)
            # Ranges may wrap around the week, e.g. "fri-mon".
            days.update((lo + i) % 7 for i in range((hi - lo) % 7 + 1))
        else:
            days.add(_parse_day(item))
    if not days:
        raise ValueError("at least one open day is required")
    return frozenset(days)


def _parse_holidays(value: Any) -> frozenset[date]:
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValueError("expected a list of dates like ['2026-12-25']")
    out: set[date] = set()
    for item in value:
        # YAML turns unquoted dates into date objects; a datetime is a date subclass, refuse it.
        if isinstance(item, date) and not isinstance(item, datetime):
            out.add(item)
            continue
        try:
            out.add(date.fromisoformat(item.strip()))
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"invalid date {item!r} (expected YYYY-MM-DD)") from None
    return frozenset(out)


@dataclass(frozen=True)
class BusinessHours:
    """Weekly opening hours in one time zone; the SLA clock only runs while open.

    ``days`` uses ``date.weekday()`` numbering (0 = Monday); ``holidays`` are local dates.
    Each open day has one window ``[start, end)`` in local wall time.
    """

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    days: frozenset[int] = frozenset(range(5))
    start: time = time(9, 0)
    end: time = time(17, 0)
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError(f"business hours: days must be a non-empty subset of 0-6: {self.days}")
        if self.end <= self.start:
            raise ValueError(
                f"business hours: end {self.end:%H:%M} must be after start {self.start:%H:%M}"
            )

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | None,
                    section: Section | None = None) -> BusinessHours:
        """Read the ``business_hours`` settings (defaults: Monday to Friday, 09:00-17:00,
        UTC, no holidays); a ConfigError names the key that is wrong."""
        sec = section or Section(mapping, None, "business_hours")
        tz = ZoneInfo(sec.zone("timezone", "UTC"))
        days = sec.convert("days", _parse_days, frozenset(range(5)))
        start = sec.time_of_day("start", time(9, 0))
        end = sec.time_of_day("end", time(17, 0))
        if end <= start:
            raise sec.error("end", f"{end:%H:%M} must be after start {start:%H:%M} "
                                   "(windows crossing midnight are not supported)")
        holidays = sec.convert("holidays", _parse_holidays, frozenset[date]())
        sec.reject_unknown()
        return cls(tz=tz, days=days, start=start, end=end, holidays=holidays)

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC open window on local date ``day``, or None if closed that day.

        Boundaries are local wall times converted to UTC, so a window that spans a DST
        change is correspondingly shorter or longer in real time. Nonexistent local times
        resolve with ``fold=0``; a window that collapses to nothing is treated as closed.
        """
        if day.weekday() not in self.days or day in self.holidays:
            return None
        opens = datetime.combine(day, self.start, tzinfo=self.tz).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=self.tz).astimezone(UTC)
        if closes <= opens:
            return None
        return opens, closes

    def windows(self, after: datetime, max_days: int) -> Iterator[tuple[datetime, datetime]]:
        """Yield open windows (UTC, ascending, non-overlapping) that end after ``after``.

        The first one is clipped to begin no earlier than ``after``. Scans at most
        ``max_days`` local dates, one step per date.
        """
        # Start a day early: the window containing ``after`` belongs to its local date,
        # but being defensive costs one iteration.
        day = after.astimezone(self.tz).date() - timedelta(days=1)
        previous_close = after
        for _ in range(max_days + 1):
            win = self.window(day)
            if win is not None and win[1] > previous_close:
                opens = max(win[0], previous_close)
                yield opens, win[1]
                previous_close = win[1]
            try:
                day += timedelta(days=1)
            except OverflowError:
                return


# --------------------------------------------------------------------------- clock


@dataclass(frozen=True)
class Clock:
    """SLA clock: wall-clock (24/7) when ``hours`` is None, otherwise business hours only."""

    hours: BusinessHours | None = None

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """Due time: the earliest instant at which ``amount`` of SLA time has run since ``start``.

        With business hours the clock starts at the next opening if ``start`` is in a closed
        period, and a due time that exactly fills a window is that window's close (not the
        next opening). Raises ValueError if that lies more than ~10 years
        (:data:`MAX_SEARCH_DAYS`) away.
        """
        start = as_utc(start, "start")
        if amount < timedelta(0):
            raise ValueError(f"SLA amount must not be negative: {amount}")
        if self.hours is None:
            return start + amount
        if not amount:
            return start
        remaining = amount
        for opens, closes in self.hours.windows(start, MAX_SEARCH_DAYS):
            available = closes - opens
            if remaining <= available:
                return opens + remaining
            remaining -= available
        raise ValueError(
            f"no due time within {MAX_SEARCH_DAYS} days of {start.isoformat()} for "
            f"{format_duration(amount)} of business time; check business_hours days and holidays"
        )

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """SLA time that ran between ``start`` and ``end`` (zero if ``end <= start``)."""
        total = timedelta(0)
        for opens, closes in self.segments(start, end, limit=None):
            total += closes - opens
        return total

    def segments(
        self, start: datetime, end: datetime, limit: int | None = MAX_SEGMENTS
    ) -> list[tuple[datetime, datetime]]:
        """The UTC intervals in which the clock ran between ``start`` and ``end``.

        Meant for explaining a due time ("ran Mon 09:00-17:00, paused over the weekend").
        At most ``limit`` intervals are returned (default :data:`MAX_SEGMENTS`, about a year
        of working days); later ones are silently dropped, so callers that need the full
        total should use :meth:`elapsed`. ``limit=None`` means unbounded.
        """
        start = as_utc(start, "start")
        end = as_utc(end, "end")
        if end <= start:
            return []
        if self.hours is None:
            return [(start, end)]
        out: list[tuple[datetime, datetime]] = []
        max_days = (end - start).days + 2
        for opens, closes in self.hours.windows(start, max_days):
            if opens >= end or (limit is not None and len(out) >= limit):
                break
            out.append((opens, min(closes, end)))
        return out


