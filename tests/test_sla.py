"""Unit and property tests for the SLA clock (mailtriage.sla)."""

from __future__ import annotations

import time as _time
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.sla import MAX_SEGMENTS, BusinessHours, Clock
from mailtriage.times import format_duration, parse_duration, parse_now, parse_when

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0,
          minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def berlin_office(**kw) -> Clock:
    return Clock(BusinessHours.from_config({"timezone": "Europe/Berlin", **kw}))


def round_the_clock(tz: str, start: str = "00:00", end: str = "06:00") -> Clock:
    """Open every day (no weekend) so DST Sundays are business days."""
    return Clock(
        BusinessHours.from_config({"timezone": tz, "days": "mon-sun", "start": start, "end": end})
    )


# ------------------------------------------------------------------ parse/format duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("45m", timedelta(minutes=45)),
        ("4h", 4 * H),
        ("24h", 24 * H),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1d4h30m", timedelta(days=1, hours=4, minutes=30)),
        ("1d 4h", timedelta(days=1, hours=4)),
        (" 2H ", 2 * H),
        ("0m", timedelta(0)),
    ],
)
def test_parse_duration_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["4x", "", "h", "-4h", "4.5h", "4h1d", "4h4h", "1 day", "4 h x"])
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_duration_error_message_is_helpful() -> None:
    with pytest.raises(ValueError) as exc:
        parse_duration("4x")
    assert str(exc.value) == (
        "invalid duration '4x': use a number followed by s, m, h, d or w, e.g. 4h or 2d"
    )


def test_parse_duration_rejects_bare_number() -> None:
    with pytest.raises(ValueError, match="bare number"):
        parse_duration("24")


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(0), "0m"),
        (timedelta(minutes=45), "45m"),
        (timedelta(days=3, hours=4), "3d 4h"),
        (timedelta(days=1, minutes=5), "1d 5m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=1, seconds=30), "1m"),
        (-2 * H, "-2h"),
    ],
)
def test_format_duration(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


@given(st.integers(min_value=0, max_value=400 * 24 * 60))
@settings(max_examples=50, deadline=None)
def test_format_then_parse_round_trips_whole_minutes(minutes: int) -> None:
    td = timedelta(minutes=minutes)
    assert parse_duration(format_duration(td)) == td


# ------------------------------------------------------------------ BusinessHours config


def test_from_config_defaults() -> None:
    bh = BusinessHours.from_config({})
    assert bh.tz == ZoneInfo("UTC")
    assert bh.days == frozenset(range(5))
    assert (bh.start, bh.end) == (time(9), time(17))
    assert bh.holidays == frozenset()
    assert BusinessHours.from_config(None) == bh


def test_from_config_full() -> None:
    bh = BusinessHours.from_config(
        {
            "timezone": "Europe/Berlin",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "start": "08:30",
            "end": "18:00",
            "holidays": ["2026-12-25", date(2026, 12, 26)],
        }
    )
    assert bh.tz == BERLIN
    assert bh.days == frozenset(range(5))
    assert (bh.start, bh.end) == (time(8, 30), time(18))
    assert bh.holidays == {date(2026, 12, 25), date(2026, 12, 26)}


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        (["mon-wed", "fri"], {0, 1, 2, 4}),
        ("sat,sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        (["Monday", "TUE"], {0, 1}),
    ],
)
def test_from_config_days(days, expected: set[int]) -> None:
    assert BusinessHours.from_config({"days": days}).days == expected


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"timezone": "Mars/Base"}, "business_hours.timezone: unknown time zone 'Mars/Base'"),
        ({"days": ["mon", "funday"]}, "business_hours.days: unknown day 'funday'"),
        ({"days": []}, "business_hours.days"),
        ({"start": "17:00", "end": "09:00"}, "business_hours.end"),
        ({"start": "09:00", "end": "09:00"}, "business_hours.end"),
        ({"start": "9am"}, "business_hours.start: invalid time"),
        ({"end": "25:00"}, "business_hours.end: invalid time"),
        ({"end": 1020}, "business_hours.end: got the number 1020; quote"),
        ({"holidays": ["2026-13-01"]}, "business_hours.holidays: invalid date '2026-13-01'"),
        ({"holidays": "2026-12-25"}, "business_hours.holidays"),
        ({"hollidays": []}, "business_hours.hollidays: unknown key"),
    ],
)
def test_from_config_errors_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        BusinessHours.from_config(config)
    assert message in str(exc.value)


def test_business_hours_constructor_validates() -> None:
    with pytest.raises(ValueError, match="after start"):
        BusinessHours(tz=BERLIN, start=time(17), end=time(9))


# ------------------------------------------------------------------ Clock.add, Berlin office


def test_friday_1755_with_8h_is_due_monday_1700() -> None:
    clock = berlin_office()
    start = local(BERLIN, 2026, 6, 5, 17, 55)  # Friday, after closing
    due = clock.add(start, 8 * H)
    assert due == local(BERLIN, 2026, 6, 8, 17, 0)  # Monday: counts from 09:00
    assert due.tzinfo == UTC
    assert due == datetime(2026, 6, 8, 15, 0, tzinfo=UTC)


def test_friday_1655_with_8h_is_due_monday_1655() -> None:
    clock = berlin_office()
    due = clock.add(local(BERLIN, 2026, 6, 5, 16, 55), 8 * H)
    assert due == local(BERLIN, 2026, 6, 8, 16, 55)  # 5m Friday + 7h55m Monday


def test_start_on_weekend_begins_monday_morning() -> None:
    clock = berlin_office()
    assert clock.add(local(BERLIN, 2026, 6, 6, 12, 0), 2 * H) == local(BERLIN, 2026, 6, 8, 11, 0)


def test_start_before_opening() -> None:
    clock = berlin_office()
    assert clock.add(local(BERLIN, 2026, 6, 9, 7, 0), 2 * H) == local(BERLIN, 2026, 6, 9, 11, 0)


def test_start_at_night_continues_next_morning() -> None:
    clock = berlin_office()
    assert clock.add(local(BERLIN, 2026, 6, 9, 23, 30), H) == local(BERLIN, 2026, 6, 10, 10, 0)


def test_exactly_filling_a_window_is_due_at_close() -> None:
    clock = berlin_office()
    assert clock.add(local(BERLIN, 2026, 6, 9, 9, 0), 8 * H) == local(BERLIN, 2026, 6, 9, 17, 0)


def test_zero_amount_is_due_immediately_even_when_closed() -> None:
    start = local(BERLIN, 2026, 6, 6, 12, 0)
    assert berlin_office().add(start, timedelta(0)) == start


def test_holidays_are_skipped() -> None:
    clock = berlin_office(holidays=["2026-12-25"])
    # Thursday 24th 16:00: 1h that day, Friday 25th is a holiday, 3h on Monday 28th.
    due = clock.add(local(BERLIN, 2026, 12, 24, 16, 0), 4 * H)
    assert due == local(BERLIN, 2026, 12, 28, 12, 0)


def test_forty_business_hours_is_a_working_week() -> None:
    clock = berlin_office()
    assert clock.add(local(BERLIN, 2026, 6, 8, 9), 40 * H) == local(BERLIN, 2026, 6, 12, 17)
    assert clock.add(local(BERLIN, 2026, 6, 10, 13), 40 * H) == local(BERLIN, 2026, 6, 17, 13)


def test_input_in_another_zone_gives_same_instant() -> None:
    clock = berlin_office()
    start = local(BERLIN, 2026, 6, 5, 16, 55)
    assert clock.add(start.astimezone(NEW_YORK), 8 * H) == clock.add(start, 8 * H)


def test_naive_and_negative_inputs_are_rejected() -> None:
    clock = berlin_office()
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.add(datetime(2026, 6, 5, 9), H)
    with pytest.raises(ValueError, match="negative"):
        clock.add(local(BERLIN, 2026, 6, 5, 9), -H)


def test_add_gives_up_when_there_is_never_open_time() -> None:
    first = date(2026, 1, 1)
    all_holidays = [(first + timedelta(days=i)).isoformat() for i in range(11 * 366)]
    clock = berlin_office(holidays=all_holidays)
    t0 = _time.process_time()
    with pytest.raises(ValueError, match="no due time"):
        clock.add(local(BERLIN, 2026, 1, 1, 9), H)
    assert _time.process_time() - t0 < 2


def test_long_sla_is_fast() -> None:
    clock = berlin_office()
    start = local(BERLIN, 2026, 1, 5, 9)  # Monday
    t0 = _time.process_time()
    due = clock.add(start, 52 * 40 * H)  # a year of working weeks, ~365 days to scan
    assert _time.process_time() - t0 < 0.5
    assert clock.elapsed(start, due) == 52 * 40 * H
    assert due.astimezone(BERLIN).weekday() == 4  # ends on a Friday ...
    assert due.astimezone(BERLIN).time() == time(17)  # ... at closing time


# ------------------------------------------------------------------ DST


def test_office_hours_on_berlin_spring_forward_weekend() -> None:
    clock = berlin_office()
    # Friday 27 March 12:00 CET (+01), Monday 30 March is CEST (+02): still 12:00 local.
    due = clock.add(local(BERLIN, 2026, 3, 27, 12), 8 * H)
    assert due == local(BERLIN, 2026, 3, 30, 12)
    assert due == datetime(2026, 3, 30, 10, tzinfo=UTC)
    assert clock.elapsed(local(BERLIN, 2026, 3, 27, 12), due) == 8 * H


def test_office_hours_on_berlin_dst_sundays_are_eight_hours() -> None:
    clock = Clock(BusinessHours.from_config({"timezone": "Europe/Berlin", "days": "mon-sun"}))
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        start = local(BERLIN, day.year, day.month, day.day)
        end = start + timedelta(days=1)  # wall-time arithmetic: next local midnight
        assert clock.elapsed(start, end) == 8 * H
        assert clock.add(start, 8 * H) == local(BERLIN, day.year, day.month, day.day, 17)


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("Europe/Berlin", date(2026, 3, 29), 5),
        ("Europe/Berlin", date(2026, 10, 25), 7),
        ("America/New_York", date(2026, 3, 8), 5),
        ("America/New_York", date(2026, 11, 1), 7),
        ("Europe/Berlin", date(2026, 3, 28), 6),
    ],
)
def test_window_spanning_the_change_hour(tz: str, day: date, hours: int) -> None:
    clock = round_the_clock(tz)
    zone = ZoneInfo(tz)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    noon = datetime.combine(day, time(12), tzinfo=zone)
    assert clock.elapsed(midnight, noon) == hours * H
    assert clock.add(midnight, hours * H) == datetime.combine(day, time(6), tzinfo=zone)
    (seg,) = clock.segments(midnight, noon)
    assert seg[1] - seg[0] == hours * H


def test_new_york_office_across_dst_changes() -> None:
    clock = Clock(BusinessHours.from_config({"timezone": "America/New_York"}))
    # Friday 6 March 2026 15:00 EST -> Monday 9 March (EDT): 2h Friday + 6h Monday.
    assert clock.add(local(NEW_YORK, 2026, 3, 6, 15), 8 * H) == local(NEW_YORK, 2026, 3, 9, 15)
    # Friday 30 October 15:00 EDT -> Monday 2 November (EST).
    due = clock.add(local(NEW_YORK, 2026, 10, 30, 15), 8 * H)
    assert due == local(NEW_YORK, 2026, 11, 2, 15)
    assert due == datetime(2026, 11, 2, 20, tzinfo=UTC)


# ------------------------------------------------------------------ elapsed and segments


def test_elapsed_over_a_weekend() -> None:
    clock = berlin_office()
    start = local(BERLIN, 2026, 6, 5, 16)  # Friday
    end = local(BERLIN, 2026, 6, 9, 10)  # Tuesday
    assert clock.elapsed(start, end) == H + 8 * H + H


def test_elapsed_is_zero_when_end_not_after_start() -> None:
    clock = berlin_office()
    t = local(BERLIN, 2026, 6, 9, 10)
    assert clock.elapsed(t, t) == timedelta(0)
    assert clock.elapsed(t, t - H) == timedelta(0)
    assert clock.segments(t, t - H) == []


def test_segments_show_where_the_clock_ran() -> None:
    clock = berlin_office()
    segs = clock.segments(local(BERLIN, 2026, 6, 5, 16), local(BERLIN, 2026, 6, 9, 10))
    assert segs == [
        (local(BERLIN, 2026, 6, 5, 16), local(BERLIN, 2026, 6, 5, 17)),
        (local(BERLIN, 2026, 6, 8, 9), local(BERLIN, 2026, 6, 8, 17)),
        (local(BERLIN, 2026, 6, 9, 9), local(BERLIN, 2026, 6, 9, 10)),
    ]
    assert all(a.tzinfo == UTC and b.tzinfo == UTC for a, b in segs)


def test_segments_are_capped() -> None:
    clock = berlin_office()
    start = local(BERLIN, 2020, 1, 1)
    segs = clock.segments(start, start + timedelta(days=5 * 365))
    assert len(segs) == MAX_SEGMENTS
    assert len(clock.segments(start, start + timedelta(days=30), limit=3)) == 3


def test_wall_clock_mode() -> None:
    clock = Clock()
    start = local(BERLIN, 2026, 3, 28, 12)  # DST change overnight: 24h is not "same time"
    assert clock.add(start, 24 * H) == datetime(2026, 3, 29, 11, tzinfo=UTC)
    assert clock.add(start, 24 * H).tzinfo == UTC
    end = start + timedelta(days=3)  # same wall time, but only 71 real hours later
    assert clock.elapsed(start, end) == 71 * H
    assert clock.segments(start, end) == [(start, end)]


# ------------------------------------------------------------------ parse_when / parse_now

NOW = datetime(2026, 6, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("3d", None, NOW + timedelta(days=3)),
        ("4h", BERLIN, NOW + 4 * H),
        ("-2h", None, NOW - 2 * H),
        ("2026-12-01", None, datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01", BERLIN, datetime(2026, 11, 30, 23, tzinfo=UTC)),
        ("2026-12-01T09:00", None, datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T09:00", NEW_YORK, datetime(2026, 12, 1, 14, tzinfo=UTC)),
        ("2026-12-01T09:00:00+01:00", NEW_YORK, datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T09:00Z", BERLIN, datetime(2026, 12, 1, 9, tzinfo=UTC)),
    ],
)
def test_parse_when(text: str, tz: ZoneInfo | None, expected: datetime) -> None:
    result = parse_when(text, NOW, tz)
    assert result == expected
    assert result.tzinfo == UTC


@pytest.mark.parametrize("text", ["tomorrow", "4x", "3", "2026-13-01", ""])
def test_parse_when_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        parse_when(text, NOW)


def test_parse_now() -> None:
    assert parse_now("2026-06-05T12:00:00Z") == NOW
    assert parse_now("2026-06-05T12:00") == NOW
    assert parse_now("2026-06-05T14:00+02:00").tzinfo == UTC
    assert parse_now("2026-06-05T14:00+02:00") == NOW
    with pytest.raises(ValueError, match="--now"):
        parse_now("yesterday")


# ------------------------------------------------------------------ properties

CLOCKS = [
    berlin_office(holidays=["2026-12-25", "2026-12-26", "2027-01-01"]),
    Clock(
        BusinessHours.from_config(
            {
                "timezone": "America/New_York",
                "start": "08:00",
                "end": "20:30",
                "days": ["mon-thu", "sat"],
            }
        )
    ),
    round_the_clock("Europe/Berlin", "01:30", "02:45"),  # boundaries fall in DST gap/overlap
    round_the_clock("America/New_York", "00:00", "06:00"),
]

starts = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(lambda dt: dt.replace(microsecond=0))
amounts = st.integers(min_value=0, max_value=30 * 86400).map(lambda s: timedelta(seconds=s))
clocks = st.sampled_from(CLOCKS)
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@given(clocks, starts, amounts, amounts)
@PROPERTY_SETTINGS
def test_add_is_monotonic_in_amount(clock: Clock, start: datetime, a: timedelta, b: timedelta):
    small, large = sorted((a, b))
    assert clock.add(start, small) <= clock.add(start, large)


@given(clocks, starts, amounts)
@PROPERTY_SETTINGS
def test_elapsed_inverts_add(clock: Clock, start: datetime, amount: timedelta) -> None:
    due = clock.add(start, amount)
    assert clock.elapsed(start, due) == amount
    assert sum((b - a for a, b in clock.segments(start, due, limit=None)), timedelta()) == amount


@given(clocks, starts, amounts)
@PROPERTY_SETTINGS
def test_business_clock_never_runs_faster_than_wall_time(
    clock: Clock, start: datetime, amount: timedelta
) -> None:
    assert clock.add(start, amount) >= start + amount


@given(starts, amounts)
@PROPERTY_SETTINGS
def test_wall_clock_round_trip(start: datetime, amount: timedelta) -> None:
    clock = Clock()
    assert clock.add(start, amount) == start + amount
    assert clock.elapsed(start, clock.add(start, amount)) == amount


def test_parse_when_past_counts_durations_back() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_when("3d", now, past=True) == now - timedelta(days=3)
    assert parse_when("-3d", now, past=True) == now - timedelta(days=3)
    assert parse_when("2026-11-01", now, past=True) == datetime(2026, 11, 1, tzinfo=UTC)
