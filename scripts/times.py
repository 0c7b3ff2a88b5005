"""Durations, times of day and moments as people write them, in the config and on the
command line: parsed here once, each with one wording for what went wrong.

Every parser raises ValueError with a message that says what was expected; the caller
(the config reader, a click parameter type) adds where the value came from.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_UNIT_ORDER = "wdhms"
_DURATION_PART = re.compile(r"(\d+)\s*([a-z])\s*")
_DURATION_HELP = "use a number followed by s, m, h, d or w, e.g. 4h or 2d"
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


# --------------------------------------------------------------------------- times of day


def parse_time_of_day(value: Any) -> time:
    """A local wall-clock time, ``"09:00"`` or ``"17:30:00"`` (a ``time`` passes through).

    PyYAML reads an unquoted ``17:00`` as the base-60 number 1020; that is refused with
    the quoted value it must have meant.
    """
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError("give a local time without a time zone")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        meant = f"'{value // 60:02d}:{value % 60:02d}'" if 0 <= value < 24 * 60 else "'17:00'"
        raise ValueError(f"got the number {value}; quote times in YAML, e.g. {meant}")
    if isinstance(value, str):
        match = _TIME_RE.fullmatch(value.strip())
        if match:
            hour, minute, second = (int(g or 0) for g in match.groups())
            try:
                return time(hour, minute, second)
            except ValueError:
                pass
    raise ValueError(f"invalid time {value!r} (expected HH:MM, e.g. '09:00')")


def parse_zone(value: Any) -> ZoneInfo:
    """An IANA time zone by name."""
    if isinstance(value, ZoneInfo):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(amount: timedelta) -> int:
    """A duration in whole microseconds: exact, for SQL arithmetic on times."""
    return amount // timedelta(microseconds=1)


def epoch_micros(moment: datetime) -> int:
    """Microseconds since 1970 UTC, exact (a naive moment is UTC, as ``store.iso`` takes it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return micros(moment - _EPOCH)


def as_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    # Converting first matters: ``aware + timedelta`` is wall-time arithmetic in its own zone.
    return value.astimezone(UTC)



# --------------------------------------------------------------------------- moments


def parse_when(text: str, now: datetime, tz: ZoneInfo | None = None,
               past: bool = False) -> datetime:
    """Parse an ``--until``/``--since`` value into an aware UTC datetime.

    Accepts a duration relative to ``now`` (``3d``, ``4h``; a leading ``-`` means before
    ``now``, and so does any duration with ``past``, as ``--since 3d`` wants), an ISO date
    (midnight in ``tz``) or an ISO datetime (naive ones are read in ``tz``; ``tz``
    defaults to UTC).
    """
    now = as_utc(now, "now")
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


def parse_now(text: str) -> datetime:
    """The global ``--now`` option, ISO-8601; naive values are UTC, so test fixtures and
    cron runs agree."""
    try:
        value = datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        raise ValueError(
            f"invalid --now value {text!r}: expected ISO-8601, e.g. 2026-12-01T09:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
