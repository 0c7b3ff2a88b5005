"""daily_stats and "Last 14 days": the pure parts, then what `triage run` writes and the
report shows, on a real Dovecot mailbox."""

from __future__ import annotations

import datetime as dt

import pytest

from mailtriage.config import load_config
from mailtriage.dailystats import day_bounds, recent, response_hours, text_bar, trend
from mailtriage.store import open_db

from support.cli import ok
from support.mailfactory import NOW, put, write_config

TODAY = dt.date(2026, 11, 30)


def row(day: str, overdue: int, new: int) -> dict[str, object]:
    return {"day": day, "overdue": overdue, "new": new, "open": overdue + 1}


def test_trend_has_every_day_and_marks_days_without_a_run():
    out = trend([row("2026-11-30", 2, 4), row("2026-11-25", 1, 0)], TODAY)
    days = out["days"]
    assert [d["day"] for d in days][0] == "2026-11-17" and days[-1]["day"] == "2026-11-30"
    assert len(days) == 14 and days[-1]["today"] and not days[0]["today"]
    assert out["recorded"] == 2
    assert days[0]["new"] is None and days[0]["overdue_pct"] == 0.0
    assert days[-6]["day"] == "2026-11-25" and days[-6]["overdue"] == 1


def test_trend_bars_share_one_scale_so_lengths_compare():
    days = trend([row("2026-11-30", 2, 4), row("2026-11-29", 1, 0)], TODAY)["days"]
    assert (days[-1]["new_pct"], days[-1]["overdue_pct"]) == (100.0, 50.0)
    assert (days[-2]["overdue_pct"], days[-2]["new_pct"]) == (25.0, 0.0)


def test_trend_of_only_zeros_draws_nothing():
    days = trend([row("2026-11-30", 0, 0)], TODAY)["days"]
    assert days[-1]["overdue_pct"] == days[-1]["new_pct"] == 0.0


def test_rows_older_than_the_window_are_left_out():
    assert trend([row("2026-11-16", 9, 9)], TODAY)["recorded"] == 0


def test_text_bar_shows_any_count_above_zero():
    assert text_bar(0) == ""
    assert text_bar(1) == "#"  # 1% of 20 characters rounds to 0: still one
    assert text_bar(50) == "#" * 10 and text_bar(100, width=8) == "#" * 8


def test_response_hours_skips_incomplete_and_out_of_order_pairs():
    pairs = [("2026-11-30T08:00:00Z", "2026-11-30T10:30:00Z"), (None, "2026-11-30T10:00:00Z"),
             ("2026-11-30T08:00:00Z", None), ("2026-11-30T09:00:00Z", "2026-11-30T08:00:00Z")]
    assert response_hours(pairs) == [2.5]


def test_a_local_day_in_berlin_starts_at_23_utc_and_dst_days_are_longer():
    start, end = day_bounds(dt.date(2026, 11, 30), "Europe/Berlin")
    assert start == dt.datetime(2026, 11, 29, 23, tzinfo=dt.UTC)
    assert end - start == dt.timedelta(hours=24)
    start, end = day_bounds(dt.date(2026, 10, 25), "Europe/Berlin")
    assert end - start == dt.timedelta(hours=25)


@pytest.fixture
def cfg(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
    put(mailbox, "INBOX", msgid="old@c.test", subject="Login broken",
        date=NOW - dt.timedelta(hours=30))
    put(mailbox, "INBOX", msgid="q2@c.test", subject="Invoice wrong", frm="Bo <bo@b.test>",
        date=NOW - dt.timedelta(hours=3))
    put(mailbox, "Sent", flags=["\\Seen"], msgid="a2@example.com", subject="Re: Invoice wrong",
        frm="Support <support@example.com>", to="bo@b.test", in_reply_to="q2@c.test",
        references=["q2@c.test"], date=NOW - dt.timedelta(hours=1))
    return write_config(tmp_path, mailbox, imap={"folders": ["INBOX", "Sent"]},
                        report={"timezone": "UTC"})


def stats(cfg):
    config = load_config(cfg)
    return recent(open_db(config.db_path), NOW.date())


def test_run_writes_one_row_a_day_and_leaves_past_days_alone(cfg):
    ok(cfg, "run", "--no-notify", now=NOW - dt.timedelta(days=1))
    [yesterday] = stats(cfg)
    ok(cfg, "run", "--no-notify", now=NOW - dt.timedelta(hours=1))
    ok(cfg, "run", "--no-notify")
    rows = stats(cfg)
    assert [r["day"] for r in rows] == ["2026-11-22", "2026-11-23"]  # one per day
    assert rows[0] == yesterday  # a day that is over is not written again
    today = rows[1]
    assert today["updated_at"] == NOW.isoformat().replace("+00:00", "Z")
    # the numbers are the commands': overdue lists one, one thread started today (the
    # other yesterday at 06:00), one answered (after 2 h), the oldest customer waited 30 h
    assert (today["open"], today["overdue"], today["new"], today["answered"]) == (1, 1, 1, 1)
    assert today["first_responses"] == 1
    assert today["median_first_response_hours"] == today["p90_first_response_hours"] == 2.0
    assert today["oldest_wait_hours"] == 30.0


def test_report_text_and_html_show_the_last_14_days(cfg, tmp_path):
    ok(cfg, "run", "--no-notify", now=NOW - dt.timedelta(days=2))
    ok(cfg, "run", "--no-notify")
    out = tmp_path / "report.html"
    text = ok(cfg, "report", "--output", str(out)).output
    section = text[text.index("LAST 14 DAYS"):].split("\n\n")[0].splitlines()
    assert len(section) == 2 + 14  # heading, column names, one line a day
    assert "(no run that day)" in section[-2]  # the 22nd
    # today: 1 overdue and 1 new, the peak of the fortnight: full-width bars
    assert section[-1].split() == ["Mon", "23", "1", "#" * 20, "1", "#" * 20]
    assert section[-3].split() == ["Sat", "21", "0", "0"]  # a run, nothing to draw
    html = out.read_text()
    trend_html = html[html.index("Last 14 days"):html.index("Open threads by tag")
                      if "Open threads by tag" in html else html.index("Completeness")]
    assert 'width="100%" height="12" style="background:#c0392b' in trend_html
    for banned in ("<svg", "<img", "<script", "<style"):
        assert banned not in trend_html


def test_report_before_any_run_says_nothing_is_recorded(cfg):
    ok(cfg, "sync")
    assert "nothing recorded yet" in ok(cfg, "report").output


def test_todays_row_is_rewritten_at_most_every_half_hour(cfg):
    """Each row's queries scan every open thread: a run five minutes after the last leaves
    the row as it was; one half an hour later writes it again."""
    ok(cfg, "run", "--no-notify", now=NOW - dt.timedelta(minutes=40))
    first = stats(cfg)[-1]["updated_at"]
    ok(cfg, "run", "--no-notify", now=NOW - dt.timedelta(minutes=35))
    assert stats(cfg)[-1]["updated_at"] == first
    ok(cfg, "run", "--no-notify")
    assert stats(cfg)[-1]["updated_at"] == NOW.isoformat().replace("+00:00", "Z")
