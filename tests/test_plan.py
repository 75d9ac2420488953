"""The planner: windows, lookback, retention clamp, and the time-zone coverage rule."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from zoom_ingest.plan import add_months, plan_stream, retention_start
from zoom_ingest.settings import Secret, Settings
from zoom_ingest.tables import UTC

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
    assert "retention" in caplog.text and "2025-01-01" in caplog.text


def test_first_run_without_start_takes_all_zoom_holds():
    plan = plan_stream(settings(), "activity_logs", None, NOW)
    assert plan.floor is None
    assert plan.windows[0].from_date == date(2026, 5, 23)


def test_add_months_clamps_to_month_end():
    assert add_months(date(2026, 8, 31), -6) == date(2026, 2, 28)
    assert add_months(date(2026, 1, 15), -6) == date(2025, 7, 15)


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
