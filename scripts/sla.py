"""SLA clock: durations, business hours and due-time arithmetic.

Pure functions over timezone-aware datetimes; no I/O. Every datetime returned is in UTC.
Business-hours windows are built as local wall times on each local date and only then
converted to UTC, so DST changes are handled by ``zoneinfo`` rather than by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_SEARCH_DAYS",
    "MAX_SEGMENTS",
    "BusinessHours",
    "Clock",
    "format_duration",
    "parse_duration",
    "parse_now",
    "parse_when",
]

#: ``Clock.add`` gives up (ValueError) when the due time would be further away than this,
#: so a calendar with no open time (e.g. everything a holiday) cannot loop forever.
MAX_SEARCH_DAYS = 3660  # ~10 years

#: Default upper bound on the number of windows ``Clock.segments`` returns (a year of days).
MAX_SEGMENTS = 366

_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_UNIT_ORDER = "wdhms"
_DURATION_PART = re.compile(r"(\d+)\s*([a-z])\s*")
_DURATION_HELP = "use a number followed by s, m, h, d or w, e.g. 4h or 2d"

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = {name: i for i, full in enumerate(_WEEKDAYS) for name in (full, full[:3])}
_DAY_NAMES.update(tues=1, thur=3, thurs=3)
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


# --------------------------------------------------------------------------- durations


def parse_duration(text: str) -> timedelta:
    """Parse a compact duration such as ``45m``, ``4h``, ``3d``, ``1w`` or ``1d4h30m``.

    Units must appear largest first and at most once; whitespace between parts is allowed so
    that the output of :func:`format_duration` (``"3d 4h"``) parses back. A bare number is
    rejected because "24" could mean hours or days depending on who wrote it.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: expected text like 4h or 2d")
    raw = text
    text = text.strip().lower()
    if not text:
        raise ValueError(f"invalid duration {raw!r}: empty; {_DURATION_HELP}")
    if text.isdigit():
        raise ValueError(
            f"invalid duration {raw!r}: a bare number needs a unit (s, m, h, d or w), "
            f"e.g. {text}h or {text}d"
        )
    seconds = 0
    pos = 0
    last_rank = -1
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or match.group(2) not in _UNIT_SECONDS:
            raise ValueError(f"invalid duration {raw!r}: {_DURATION_HELP}")
        unit = match.group(2)
        rank = _UNIT_ORDER.index(unit)
        if rank <= last_rank:
            raise ValueError(
                f"invalid duration {raw!r}: give each unit once, largest first, e.g. 1d4h30m"
            )
        last_rank = rank
        seconds += int(match.group(1)) * _UNIT_SECONDS[unit]
        pos = match.end()
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"invalid duration {raw!r}: too large") from None


def format_duration(td: timedelta) -> str:
    """Render a duration compactly for reports: ``"3d 4h"``, ``"45m"``, ``"0m"``.

    Days, hours and minutes are shown (zero parts omitted); seconds only when the whole
    duration is under a minute. Negative durations (overdue) get a leading ``-``.
    """
    total = int(td.total_seconds())  # truncates toward zero: sub-second noise is irrelevant
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 60:
        return f"{sign}{total}s" if total else "0m"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return sign + " ".join(parts)


# --------------------------------------------------------------------------- business hours


def _parse_day(value: Any, key: str) -> int:
    if isinstance(value, str) and value.strip().lower() in _DAY_NAMES:
        return _DAY_NAMES[value.strip().lower()]
    raise ValueError(f"{key}: unknown day {value!r} (use mon, tue, wed, thu, fri, sat, sun)")


def _parse_days(value: Any, key: str) -> frozenset[int]:
    items: list[Any]
    if isinstance(value, str):
        items = [p for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ValueError(f"{key}: expected a list of days like [mon, tue] or 'mon-fri'")
    days: set[int] = set()
    for item in items:
        if isinstance(item, str) and "-" in item:
            first, _, last = item.partition("-")
            lo, hi = _parse_day(first, key), _parse_day(last, key)
            # Ranges may wrap around the week, e.g. "fri-mon".
            days.update((lo + i) % 7 for i in range((hi - lo) % 7 + 1))
        else:
            days.add(_parse_day(item, key))
    if not days:
        raise ValueError(f"{key}: at least one open day is required")
    return frozenset(days)


def _parse_time(value: Any, key: str) -> time:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError(f"{key}: give a local time without a time zone")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # PyYAML reads an unquoted 17:00 as the base-60 integer 1020.
        raise ValueError(f"{key}: got the number {value}; quote times in YAML, e.g. '17:00'")
    if isinstance(value, str):
        match = _TIME_RE.fullmatch(value.strip())
        if match:
            hour, minute, second = (int(g or 0) for g in match.groups())
            try:
                return time(hour, minute, second)
            except ValueError:
                pass
    raise ValueError(f"{key}: invalid time {value!r} (expected HH:MM, e.g. '09:00')")


def _parse_holidays(value: Any, key: str) -> frozenset[date]:
    if value is None:
        return frozenset()
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"{key}: expected a list of dates like ['2026-12-25']")
    out: set[date] = set()
    for item in value:
        # YAML turns unquoted dates into date objects; a datetime is a date subclass, refuse it.
        if isinstance(item, date) and not isinstance(item, datetime):
            out.add(item)
            continue
        try:
            out.add(date.fromisoformat(item.strip()))
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{key}: invalid date {item!r} (expected YYYY-MM-DD)") from None
    return frozenset(out)


def _parse_zone(value: Any, key: str) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValueError(f"{key}: unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')")


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
    def from_config(cls, mapping: Mapping[str, Any] | None) -> BusinessHours:
        """Build from the ``business_hours`` config section, reporting errors by key.

        Defaults: Monday to Friday, 09:00-17:00, UTC, no holidays.
        """
        prefix = "business_hours"
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{prefix}: expected a mapping with timezone, days, start, end")
        known = {"timezone", "days", "start", "end", "holidays"}
        unknown = sorted(str(k) for k in mapping if k not in known)
        if unknown:
            raise ValueError(
                f"{prefix}: unknown key {unknown[0]!r} (expected {', '.join(sorted(known))})"
            )
        tz = _parse_zone(mapping.get("timezone", "UTC"), f"{prefix}.timezone")
        days = _parse_days(mapping.get("days", "mon-fri"), f"{prefix}.days")
        start = _parse_time(mapping.get("start", "09:00"), f"{prefix}.start")
        end = _parse_time(mapping.get("end", "17:00"), f"{prefix}.end")
        if end <= start:
            raise ValueError(
                f"{prefix}.end: {end:%H:%M} must be after start {start:%H:%M} "
                "(windows crossing midnight are not supported)"
            )
        holidays = _parse_holidays(mapping.get("holidays"), f"{prefix}.holidays")
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


def _as_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    # Converting first matters: ``aware + timedelta`` is wall-time arithmetic in its own zone.
    return value.astimezone(UTC)


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
        start = _as_utc(start, "start")
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
        start = _as_utc(start, "start")
        end = _as_utc(end, "end")
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


# --------------------------------------------------------------------------- CLI values


def parse_when(text: str, now: datetime, tz: ZoneInfo | None = None,
               past: bool = False) -> datetime:
    """Parse an ``--until``/``--since`` value into an aware UTC datetime.

    Accepts a duration relative to ``now`` (``3d``, ``4h``; a leading ``-`` means before
    ``now``, and so does any duration with ``past``, as ``--since 3d`` wants), an ISO date
    (midnight in ``tz``) or an ISO datetime (naive ones are read in ``tz``; ``tz``
    defaults to UTC).
    """
    now = _as_utc(now, "now")
    zone = tz or UTC
    raw = text
    text = text.strip() if isinstance(text, str) else ""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if past:
        sign = -1
    if body[:1].isdigit():
        try:
            return now + sign * parse_duration(body)
        except ValueError:
            pass  # not a duration; maybe an ISO date such as 20261201
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is not None:
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)
    hint = "use a duration like 3d or 4h, a date like 2026-12-01 or a time like 2026-12-01T09:00"
    if body.isdigit():
        raise ValueError(f"invalid time {raw!r}: a bare number needs a unit; {hint}")
    raise ValueError(f"invalid time {raw!r}: {hint}")


def parse_now(text: str | None) -> datetime:
    """Resolve the global ``--now`` option: None is the real current time, else ISO-8601.

    Naive values are taken as UTC so test fixtures and cron runs agree.
    """
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        raise ValueError(
            f"invalid --now value {text!r}: expected ISO-8601, e.g. 2026-12-01T09:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
