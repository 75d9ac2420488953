"""The planner: windows, lookback, retention clamp, and the time-zone coverage rule."""

from __future__ import annotations

import calendar
import logging
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from zoom_ingest.plan import (
    SINGLE_WINDOW_MAX_DATES,
    Window,
    cut_windows,
    plan_stream,
)
from zoom_ingest.settings import Secret, Settings
from zoom_ingest.tables import UTC
from zoom_ingest.zoom.rules import add_months, retention_start

# Every test here runs under each host time zone of conftest.HOST_TIME_ZONES: the plan
# is made of UTC instants and dates, whatever the machine's zone.
pytestmark = pytest.mark.usefixtures("host_time_zone")

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)


def settings(**changes: object) -> Settings:
    base = Settings(account_id="acct", client_id="cid", client_secret=Secret("s3cret"))
    return base.with_changes(**changes)


def covered_dates(plan) -> set[date]:
    days: set[date] = set()
    for w in plan.windows:
        d = w.from_date
        while d <= w.to_date:
            days.add(d)
            d += timedelta(days=1)
    return days


def test_backfill_from_a_start_date_cuts_day_windows_oldest_first():
    plan = plan_stream(settings(backfill_start=date(2026, 11, 1)), "activity_logs", None, NOW)
    assert plan.mode == "backfill"
    assert plan.floor == datetime(2026, 11, 1, tzinfo=UTC)
    assert plan.windows[0].from_date == date(2026, 10, 31)  # UTC−12 reads 11-01 00:00Z as 10-31
    assert plan.windows[-1].to_date == date(2026, 11, 23)  # UTC+14 is already on the 23rd
    assert all(w.from_date == w.to_date for w in plan.windows)
    assert [w.from_date for w in plan.windows] == sorted(w.from_date for w in plan.windows)
    assert all(w.stop_before == plan.floor for w in plan.windows)
    assert plan.cursor_after_all == NOW


def test_window_days_groups_days_but_never_exceeds_a_month():
    plan = plan_stream(
        settings(backfill_start=date(2026, 7, 1), window_days=28), "operation_logs", None, NOW
    )
    assert all((w.to_date - w.from_date).days <= 27 for w in plan.windows)
    assert covered_dates(plan) == {
        date(2026, 6, 30) + timedelta(days=i)
        for i in range((date(2026, 11, 23) - date(2026, 6, 30)).days + 1)
    }


def test_incremental_run_is_one_short_chain_from_cursor_minus_lookback():
    cursor = NOW - timedelta(hours=1)
    plan = plan_stream(settings(lookback=timedelta(hours=2)), "activity_logs", cursor, NOW)
    assert plan.mode == "incremental"
    assert plan.start == cursor - timedelta(hours=2)
    assert len(plan.windows) == 1
    (window,) = plan.windows
    assert window.stop_before == plan.start
    assert window.from_date == (plan.start - timedelta(hours=12)).date()
    assert window.to_date == (NOW + timedelta(hours=14)).date()
    assert plan.floor is None


def test_reconcile_rereads_full_days_without_early_stop():
    plan = plan_stream(
        settings(mode="reconcile", reconcile_days=3),
        "activity_logs",
        NOW - timedelta(minutes=5),
        NOW,
    )
    assert plan.mode == "reconcile"
    assert plan.start == datetime(2026, 11, 19, tzinfo=UTC)
    assert all(w.stop_before is None for w in plan.windows)
    assert min(covered_dates(plan)) == date(2026, 11, 18)


def test_reconcile_after_a_gap_longer_than_n_days_starts_at_the_cursor():
    """A stopped backfill, failed runs, an outage: the range since the cursor is owed,
    whatever N says. Reconcile covers from min(cursor − lookback, today − N)."""
    cursor = NOW - timedelta(days=9, hours=3)
    plan = plan_stream(
        settings(mode="reconcile", reconcile_days=3, lookback=timedelta(hours=2)),
        "activity_logs",
        cursor,
        NOW,
    )
    assert plan.mode == "reconcile"
    assert plan.start == cursor - timedelta(hours=2)
    assert min(covered_dates(plan)) == (plan.start - timedelta(hours=12)).date()
    assert all(w.stop_before is None for w in plan.windows)
    assert plan.cursor_after_all == NOW


def test_reconcile_without_a_checkpoint_is_a_backfill_from_the_start_date():
    start = date(2026, 11, 1)
    plan = plan_stream(
        settings(mode="reconcile", reconcile_days=2, backfill_start=start),
        "operation_logs",
        None,
        NOW,
    )
    assert plan.mode == "backfill"
    assert plan.start == plan.floor == datetime(2026, 11, 1, tzinfo=UTC)
    assert min(covered_dates(plan)) == date(2026, 10, 31)


def test_backfill_older_than_retention_is_clamped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="zoom_ingest"):
        plan = plan_stream(settings(backfill_start=date(2025, 1, 1)), "activity_logs", None, NOW)
    assert plan.windows[0].from_date == retention_start(NOW.date()) == date(2026, 5, 23)
    assert plan.floor == datetime(2026, 5, 23, tzinfo=UTC)
    assert [r.getMessage() for r in caplog.records] == [
        "activity_logs: backfill start 2025-01-01 is older than Zoom's 6-month retention; "
        "starting at 2026-05-23"
    ]


def test_first_run_without_start_takes_all_zoom_holds():
    plan = plan_stream(settings(), "activity_logs", None, NOW)
    assert plan.floor is None
    assert plan.windows[0].from_date == date(2026, 5, 23)


def test_add_months_clamps_to_month_end():
    assert add_months(date(2026, 8, 31), -6) == date(2026, 2, 28)
    assert add_months(date(2026, 1, 15), -6) == date(2025, 7, 15)


@hypothesis_settings(deadline=None)  # timing is benchmarks' business; CI boxes are busy
@given(
    start_offset=st.integers(min_value=0, max_value=20 * 24 * 3600),
    record_offset=st.integers(min_value=0, max_value=30 * 24 * 3600),
    tz_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
)
def test_every_instant_of_the_run_is_on_a_requested_date_in_any_time_zone(
    start_offset, record_offset, tz_minutes
):
    cursor = NOW - timedelta(seconds=start_offset)
    plan = plan_stream(settings(lookback=timedelta(0)), "activity_logs", cursor, NOW)
    record_time = plan.start + timedelta(seconds=record_offset)
    if record_time > NOW:
        return
    local_date = (record_time + timedelta(minutes=tz_minutes)).date()
    assert local_date in covered_dates(plan)


@hypothesis_settings(deadline=None)  # timing is benchmarks' business; CI boxes are busy
@given(
    done=st.integers(min_value=1, max_value=20),
    tz_minutes=st.integers(-720, 840),
    seconds_before=st.integers(min_value=1, max_value=40 * 24 * 3600),
)
def test_a_window_covers_only_instants_every_time_zone_has_fetched(
    done, tz_minutes, seconds_before
):
    plan = plan_stream(settings(backfill_start=date(2026, 10, 20)), "activity_logs", None, NOW)
    window = plan.windows[min(done, len(plan.windows)) - 1]
    instant = window.covers_until - timedelta(seconds=seconds_before)
    if instant < plan.start:
        return
    local_date = (instant + timedelta(minutes=tz_minutes)).date()
    assert plan.windows[0].from_date <= local_date <= window.to_date


def test_resumed_backfill_keeps_the_backfill_start_as_a_floor():
    start = date(2026, 11, 20)
    cursor = datetime(2026, 11, 20, 6, tzinfo=UTC)  # an interrupted first run got this far
    plan = plan_stream(
        settings(backfill_start=start, lookback=timedelta(hours=2)), "activity_logs", cursor, NOW
    )
    assert plan.mode == "incremental"
    assert plan.floor == datetime(2026, 11, 20, tzinfo=UTC)


# -- the time-zone edges: UTC−12 reads an instant as the day before until 12:00Z -------------


@pytest.mark.parametrize(
    ("start", "first_date"),
    [
        (datetime(2026, 11, 22, 11, 0, tzinfo=UTC), date(2026, 11, 21)),
        (datetime(2026, 11, 22, 11, 59, 59, tzinfo=UTC), date(2026, 11, 21)),
        (datetime(2026, 11, 22, 12, 0, tzinfo=UTC), date(2026, 11, 22)),
    ],
)
def test_an_incremental_run_asks_for_the_previous_date_until_noon_utc(start, first_date):
    """In a UTC−12 account, 11:30Z on the 22nd is 23:30 on the 21st: the 21st must be
    requested. From 12:00Z on, every time zone is on the 22nd already."""
    plan = plan_stream(
        settings(lookback=timedelta(0)), "activity_logs", start, NOW + timedelta(hours=3)
    )
    assert plan.windows[0].from_date == first_date


@pytest.mark.parametrize(
    ("now", "last_date"),
    [
        (datetime(2026, 11, 22, 9, 59, 59, tzinfo=UTC), date(2026, 11, 22)),
        (datetime(2026, 11, 22, 10, 0, tzinfo=UTC), date(2026, 11, 23)),
    ],
)
def test_a_run_asks_for_tomorrow_once_utc_plus_14_is_there(now, last_date):
    """From 10:00Z a UTC+14 account is on the next date: its records of the last hours
    are filed under tomorrow."""
    cursor = now - timedelta(hours=1)
    plan = plan_stream(settings(lookback=timedelta(0)), "activity_logs", cursor, now)
    assert plan.windows[-1].to_date == last_date


@pytest.mark.parametrize("hours", [-11, 14])
def test_a_cursor_and_clock_in_another_zone_give_the_same_plan(hours):
    """`now` and the cursor in another zone (a caller's local clock) are the same
    instants: the dates asked of Zoom are reckoned from UTC, not from their zone's date."""
    zone = timezone(timedelta(hours=hours))
    cursor = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    expected = plan_stream(settings(), "activity_logs", cursor, NOW)
    got = plan_stream(settings(), "activity_logs", cursor.astimezone(zone), NOW.astimezone(zone))
    assert got.windows == expected.windows
    assert (got.windows[0].from_date, got.windows[-1].to_date) == (
        date(2026, 11, 21),
        date(2026, 11, 23),
    )
    assert (got.start, got.end, got.cursor_after_all) == (expected.start, NOW, NOW)


def test_a_first_run_started_with_a_non_utc_clock_keeps_six_utc_months():
    elsewhere = NOW.astimezone(timezone(timedelta(hours=-11)))  # 2026-11-21 23:30 there
    first = plan_stream(settings(), "activity_logs", None, elsewhere)
    assert first.windows[0].from_date == retention_start(date(2026, 11, 22)) == date(2026, 5, 23)


# -- each run's plan, field by field ------------------------------------------------------


def test_an_incremental_plan_field_by_field():
    cursor = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    plan = plan_stream(settings(lookback=timedelta(hours=2)), "operation_logs", cursor, NOW)
    assert (plan.stream, plan.mode, plan.start, plan.end) == (
        "operation_logs",
        "incremental",
        datetime(2026, 11, 22, 7, 0, tzinfo=UTC),
        NOW,
    )
    assert (plan.floor, plan.cursor_before) == (None, cursor)
    assert plan.windows == (
        Window(
            stream="operation_logs",
            from_date=date(2026, 11, 21),
            to_date=date(2026, 11, 23),
            stop_before=datetime(2026, 11, 22, 7, 0, tzinfo=UTC),
            covers_until=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        ),
    )
    assert plan.cursor_after_all == NOW


def test_a_backfill_plan_field_by_field():
    plan = plan_stream(settings(backfill_start=date(2026, 11, 21)), "activity_logs", None, NOW)
    start = datetime(2026, 11, 21, tzinfo=UTC)
    assert (plan.mode, plan.start, plan.end, plan.floor, plan.cursor_before) == (
        "backfill",
        start,
        NOW,
        start,
        None,
    )
    # 11-20 … 11-23 is four dates: more than SINGLE_WINDOW_MAX_DATES, so one per day.
    assert [(w.from_date.day, w.to_date.day) for w in plan.windows] == [
        (20, 20),
        (21, 21),
        (22, 22),
        (23, 23),
    ]
    assert [w.covers_until for w in plan.windows] == [
        datetime(2026, 11, d, 10, tzinfo=UTC) for d in (20, 21, 22, 23)
    ]
    assert {w.stop_before for w in plan.windows} == {start}
    assert {w.stream for w in plan.windows} == {"activity_logs"}


def test_a_reconcile_plan_reads_n_full_utc_days_back_from_today():
    cursor = NOW - timedelta(minutes=5)
    plan = plan_stream(
        settings(mode="reconcile", reconcile_days=2, lookback=timedelta(hours=1)),
        "activity_logs",
        cursor,
        NOW,
    )
    assert (plan.mode, plan.start, plan.cursor_before, plan.floor) == (
        "reconcile",
        datetime(2026, 11, 20, tzinfo=UTC),
        cursor,
        None,
    )
    assert (plan.windows[0].from_date, plan.windows[-1].to_date) == (
        date(2026, 11, 19),
        date(2026, 11, 23),
    )
    assert all(w.stop_before is None for w in plan.windows)


def test_a_reconcile_keeps_the_backfill_start_as_its_floor():
    plan = plan_stream(
        settings(mode="reconcile", reconcile_days=5, backfill_start=date(2026, 11, 20)),
        "activity_logs",
        NOW - timedelta(minutes=5),
        NOW,
    )
    assert plan.floor == datetime(2026, 11, 20, tzinfo=UTC)
    assert plan.start == datetime(2026, 11, 17, tzinfo=UTC)


def test_a_reconcile_logs_that_a_first_run_is_a_backfill(caplog):
    with caplog.at_level(logging.INFO, logger="zoom_ingest"):
        plan_stream(settings(mode="reconcile"), "operation_logs", None, NOW)
    assert [r.getMessage() for r in caplog.records] == [
        "operation_logs: no checkpoint yet, so this reconcile run is a backfill"
    ]


def test_a_checkpoint_older_than_retention_is_clamped_with_a_warning(caplog):
    cursor = datetime(2026, 3, 1, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="zoom_ingest"):
        plan = plan_stream(settings(backfill_start=date(2026, 2, 1)), "activity_logs", cursor, NOW)
    oldest = datetime(2026, 5, 23, tzinfo=UTC)
    assert (plan.mode, plan.start, plan.floor) == ("incremental", oldest, oldest)
    assert plan.windows[0].from_date == date(2026, 5, 23)
    assert [r.getMessage() for r in caplog.records] == [
        "activity_logs: checkpoint 2026-03-01 00:00:00+00:00 is older than Zoom's 6-month "
        "retention; records between it and 2026-05-23 can no longer be fetched"
    ]


def test_a_checkpoint_just_inside_retention_is_read_from_without_a_warning(caplog):
    """The first date is clamped to the retention start (the lookback reaches beyond it),
    but the checkpoint itself is still within reach: nothing was lost, nothing to say."""
    cursor = datetime(2026, 5, 23, 6, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="zoom_ingest"):
        plan = plan_stream(settings(lookback=timedelta(hours=1)), "activity_logs", cursor, NOW)
    assert plan.windows[0].from_date == date(2026, 5, 23)
    assert plan.start == datetime(2026, 5, 23, 5, tzinfo=UTC)
    assert caplog.text == ""


def test_a_checkpoint_at_the_retention_start_is_not_warned_about(caplog):
    cursor = datetime(2026, 5, 23, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="zoom_ingest"):
        plan_stream(settings(lookback=timedelta(0)), "activity_logs", cursor, NOW)
    assert caplog.text == ""


def test_a_first_run_without_a_start_is_not_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="zoom_ingest"):
        plan = plan_stream(settings(), "activity_logs", None, NOW)
    assert caplog.text == ""
    assert plan.start == datetime(2026, 5, 23, tzinfo=UTC) and plan.floor is None


def test_a_backfill_start_inside_retention_is_kept_as_it_is(caplog):
    """The retention starts on 2026-05-23: a start on the 24th asks Zoom for the 23rd (for
    UTC−12 accounts), the oldest date it serves. Nothing is clamped, nothing to warn about."""
    with caplog.at_level(logging.WARNING, logger="zoom_ingest"):
        plan = plan_stream(settings(backfill_start=date(2026, 5, 24)), "activity_logs", None, NOW)
    assert caplog.text == ""
    assert plan.floor == plan.start == datetime(2026, 5, 24, tzinfo=UTC)
    assert plan.windows[0].from_date == date(2026, 5, 23)  # still a valid date for Zoom


# -- windows ------------------------------------------------------------------------------


def dates(first: date, count: int) -> tuple[date, date]:
    return first, first + timedelta(days=count - 1)


def test_up_to_three_dates_are_one_chain_four_are_cut():
    assert SINGLE_WINDOW_MAX_DATES == 3
    first = date(2026, 11, 1)
    (one,) = cut_windows("activity_logs", *dates(first, 3), 1, None)
    assert (one.from_date, one.to_date) == dates(first, 3)
    assert len(cut_windows("activity_logs", *dates(first, 4), 1, None)) == 4
    assert len(cut_windows("activity_logs", *dates(first, 1), 1, None)) == 1


def test_windows_of_several_days_tile_the_range_and_the_last_is_short():
    windows = cut_windows("activity_logs", *dates(date(2026, 11, 1), 8), 3, None)
    assert [(w.from_date.day, w.to_date.day) for w in windows] == [(1, 3), (4, 6), (7, 8)]
    assert [w.covers_until for w in windows] == [
        datetime(2026, 11, d, 10, tzinfo=UTC) for d in (3, 6, 8)
    ]


def test_a_window_reads_as_its_stream_and_dates():
    one_day, three_days = (
        Window("activity_logs", date(2026, 11, 1), date(2026, 11, d), None, NOW) for d in (1, 3)
    )
    assert str(one_day) == "activity_logs 2026-11-01"
    assert str(three_days) == "activity_logs 2026-11-01…2026-11-03"


# -- month arithmetic (the retention start) -----------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 8, 31), -6, date(2026, 2, 28)),  # the 31st → the month's last day
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2028, 3, 31), -1, date(2028, 2, 29)),  # a leap year keeps the 29th
        (date(2026, 5, 31), -1, date(2026, 4, 30)),
        (date(2026, 10, 31), -6, date(2026, 4, 30)),
        (date(2026, 7, 30), -5, date(2026, 2, 28)),
        (date(2028, 2, 29), -12, date(2027, 2, 28)),  # Feb 29 → Feb 28 a year before
        (date(2028, 2, 29), 48, date(2032, 2, 29)),
        (date(2028, 8, 29), -6, date(2028, 2, 29)),
        (date(2026, 1, 15), -6, date(2025, 7, 15)),  # across the year
        (date(2026, 12, 31), 0, date(2026, 12, 31)),
        (date(2026, 12, 1), 1, date(2027, 1, 1)),
        (date(2026, 1, 1), -1, date(2025, 12, 1)),
        (date(2026, 6, 30), -6, date(2025, 12, 30)),
        (date(2026, 7, 31), -1, date(2026, 6, 30)),
    ],
)
def test_add_months_keeps_the_day_or_takes_the_months_last(day, months, expected):
    assert add_months(day, months) == expected


@hypothesis_settings(deadline=None)  # timing is benchmarks' business; CI boxes are busy
@given(day=st.dates(date(1900, 1, 1), date(2200, 12, 31)), months=st.integers(-36, 36))
def test_add_months_lands_in_the_right_month_on_the_nearest_day(day, months):
    got = add_months(day, months)
    assert (got.year * 12 + got.month) - (day.year * 12 + day.month) == months
    assert got.day == min(day.day, calendar.monthrange(got.year, got.month)[1])


@pytest.mark.parametrize(
    ("today", "oldest"),
    [
        (date(2026, 11, 22), date(2026, 5, 23)),
        (date(2026, 8, 31), date(2026, 3, 1)),  # 6 months back is Feb 28, plus a day
        (date(2026, 1, 10), date(2025, 7, 11)),
    ],
)
def test_retention_starts_six_months_back_plus_a_day(today, oldest):
    assert retention_start(today) == oldest
