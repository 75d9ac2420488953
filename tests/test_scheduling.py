"""Issue 14: the fetch scheduler, the runs table's rate columns and their evolution."""

from __future__ import annotations

import math
import time
from datetime import date, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from test_job import assert_equals_ground_truth, backfill_start, settings_for
from test_writer import backfill_plan, writer_for
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import StreamRun, run
from zoom_ingest.plan import Plan, Window
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import RUNS, UTC
from zoom_ingest.zoom import STREAMS_BY_NAME, schedule
from zoom_ingest.zoom.schedule import Chain, DateStarts, Scheduler
from zoom_ingest.zoom.streams import Page


def _chains(lengths: list[float]) -> list[Chain]:
    stream = STREAMS_BY_NAME["activity_logs"]
    day = date(2026, 1, 1)
    windows = []
    for i in range(len(lengths)):
        d = day + timedelta(days=i)
        until = datetime.combine(d, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
        windows.append(Window("activity_logs", d, d, None, until))
    plan = Plan(
        stream="activity_logs",
        mode="backfill",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 2, 1, tzinfo=UTC),
        windows=tuple(windows),
        floor=None,
        cursor_before=None,
    )
    s = StreamRun(stream, plan)
    chains = [Chain(s.stream, i, w, s.counters, i) for i, w in enumerate(windows)]
    for chain, remaining in zip(chains, lengths, strict=True):
        chain.pages = iter(())  # started
        chain.remaining = remaining
        chain.fraction_left = min(1.0, remaining / 100)
        chain.last_page_at = time.monotonic()
    return chains


def test_largest_share_left_goes_first_and_new_windows_are_probed_first():
    chains = _chains([3, 40, 12])
    fresh = _chains([1])[0]
    fresh.pages, fresh.remaining, fresh.order = None, math.inf, 9
    scheduler = Scheduler([*chains, fresh], max_in_flight=4, open_limit=10, rate=10)
    order = [scheduler.take() for _ in range(4)]
    assert order == [fresh, chains[1], chains[2], chains[0]]


def test_in_flight_follows_rate_times_latency():
    chains = _chains([5.0] * 30)
    scheduler = Scheduler(chains, max_in_flight=26, open_limit=64, rate=40)
    first = scheduler.take()
    assert first is not None
    scheduler.release(first, finished=False, seconds=0.3)
    # 40/s × 0.3 s × slack, plus one: far below the 26 allowed.
    expected = math.ceil(40 * 0.3 * 1.3) + 1
    taken = []
    while (scheduler._in_flight < 26) and len(taken) < 26:
        if scheduler._ready and scheduler._in_flight >= scheduler.target():
            break
        taken.append(scheduler.take())
    assert len(taken) == expected


def test_open_windows_are_bounded_and_opened_oldest_first():
    chains = _chains([1.0] * 10)
    for chain in chains:
        chain.pages, chain.remaining = None, math.inf
    scheduler = Scheduler(chains, max_in_flight=2, open_limit=3, rate=10)
    a, b = scheduler.take(), scheduler.take()
    assert (a.order, b.order) == (0, 1)
    scheduler.release(a, finished=True, seconds=0.1)
    c = scheduler.take()
    assert c.order == 2
    scheduler.release(b, finished=True, seconds=0.1)
    scheduler.release(c, finished=True, seconds=0.1)
    # Window 3 opened when window 0 finished; the other six wait their turn.
    assert scheduler._open == 1 and len(scheduler._waiting) == 6


def test_chain_estimates_remaining_pages_from_the_time_span():
    chain = _chains([1.0])[0]
    start = datetime.combine(chain.window.from_date, datetime.min.time(), tzinfo=UTC)
    # 300 records spanning the newest 6 hours of the day: 3 more pages to go.
    page = Page(
        records=[{}] * 300,
        next_page_token="t",
        newest=start + timedelta(hours=24),
        oldest=start + timedelta(hours=18),
    )
    chain.observe(page)
    assert chain.remaining == 3.0
    assert chain.fraction_left == 0.75
    exact = Page([{}] * 300, "t", None, None, total_records=1500)
    chain.observe(exact)
    assert chain.remaining == (1500 - 600) / 300
    assert chain.fraction_left == 0.6


def test_an_east_of_utc_chain_counts_its_hours_before_utc_midnight():
    """Issue 22: in Asia/Kolkata (UTC+5:30) a date's records begin at 18:30 UTC the day
    before. Taken as UTC's midnight, the estimate fell to nothing with about a fifth of
    the day still to fetch; the first page's newest record (just before the local
    midnight that ends the date) tells how far ahead of UTC the dates are, for every
    chain of the run."""
    starts = DateStarts()
    first, second = _chains([1.0, 1.0])
    first.date_starts = second.date_starts = starts
    utc_midnight = datetime.combine(first.window.from_date, datetime.min.time(), tzinfo=UTC)
    local_end = utc_midnight + timedelta(hours=24 - 5.5)  # the date ends at 18:30 UTC
    # 300 records over the date's last 6 hours (local): 18 hours, 3 pages to go.
    first.observe(
        Page(
            [{}] * 300,
            "t",
            local_end - timedelta(minutes=1),
            local_end - timedelta(hours=6, minutes=1),
        )
    )
    assert first.remaining == 3.0 and first.fraction_left == 0.75
    # Below UTC midnight, 2 hours above the local one: not nothing left.
    below = utc_midnight - timedelta(hours=3, minutes=31)
    first.observe(Page([{}] * 300, "t", below + timedelta(hours=1), below))
    assert first.fraction_left == pytest.approx(2 / 24)  # 2 of 24 hours
    assert first.remaining == pytest.approx(600 * 2 / 22 / 300)
    # The next date's chain learned the zone from the first one's page.
    day = datetime.combine(second.window.from_date, datetime.min.time(), tzinfo=UTC)
    assert starts.start(second.window.from_date) == day - timedelta(hours=5, minutes=31)
    # West of UTC (a later newest record) a date begins after its UTC midnight.
    west = DateStarts()
    west.bound(second.window, day + timedelta(hours=24 + 8) - timedelta(seconds=1))
    assert west.start(second.window.from_date) == day + timedelta(hours=8) - timedelta(seconds=1)
    # No record beyond the zones that exist moves it further.
    west.bound(second.window, day + timedelta(days=3))
    assert west.start(second.window.from_date) == day + timedelta(hours=12)


def test_the_window_holding_the_span_goes_first_while_newer_windows_wait():
    """Issue 22: windows past the span open only when the oldest open one is done. With
    every chain evened out by its share left, the oldest finished with the others, so
    the last windows of the plan opened near the end and the longest paged alone; now
    the window that keeps them waiting goes first (after first pages)."""
    chains = _chains([3, 5, 12, 6, 6, 6])
    for chain in chains[3:]:
        chain.fraction_left = 0.3  # share left: 0.03, 0.05, 0.12, then 0.3
    scheduler = Scheduler(chains, max_in_flight=2, open_limit=3, rate=10)
    holder = scheduler.take()
    assert holder is chains[0]  # the smallest share left, but windows 3-5 wait on it
    assert scheduler.take() is chains[2]  # then the largest share left
    scheduler.release(holder, finished=True, seconds=0.3)
    # Window 3 opens; window 1 holds the span now and goes before window 3.
    assert scheduler.take() is chains[1]
    assert {c.order for c in scheduler._opened} == {1, 2, 3}
    # Once no window waits, the share left decides again (then the order).
    scheduler.release(chains[1], finished=True, seconds=0.3)
    scheduler.release(chains[2], finished=True, seconds=0.3)
    assert [scheduler.take().order, scheduler.take().order] == [3, 4]
    assert not scheduler._waiting


def test_a_chain_that_would_page_alone_at_the_end_goes_first():
    """A chain whose pages, one at a time, take longer than all the work left at the
    rate limit goes before chains with a larger share left: otherwise it pages alone at
    the end while the limiter idles. Windows not open yet count at the typical first
    estimate."""
    chains = _chains([30, 5, 5, 5])
    long_one = chains[0]
    long_one.fraction_left = 0.1  # a busy day: a small share left is many pages
    for chain in chains[1:]:
        chain.fraction_left = 0.5
    scheduler = Scheduler(chains, max_in_flight=8, open_limit=10, rate=10)
    probe = scheduler.take()
    scheduler.release(probe, finished=False, seconds=0.3)
    # 45 pages at 10/s: 4.5 s; one chain's page every 0.5 s (5 in flight at 10/s) makes
    # 9 pages in that time, and the long chain holds 30.
    assert scheduler.take() is long_one
    assert scheduler.take() in chains[1:]
    # With most of the work elsewhere it is not critical: the share left decides.
    many = _chains([30] + [40] * 10)
    many[0].fraction_left = 0.1
    scheduler = Scheduler(many, max_in_flight=8, open_limit=20, rate=10)
    probe = scheduler.take()
    scheduler.release(probe, finished=False, seconds=0.3)
    assert scheduler.take() is not many[0]
    # 20 windows waiting beyond the span, at the typical estimate (1 page here): 45 + 20
    # pages at 10/s is 6.5 s, 13 pages of one chain.
    waiting = _chains([30, 5, 5, 5] + [1.0] * 20)
    scheduler = Scheduler(waiting, max_in_flight=8, open_limit=4, rate=10)
    probe = scheduler.take()
    scheduler.release(probe, finished=False, seconds=0.3)
    assert len(scheduler._waiting) == 20
    assert scheduler._critical_pages() == pytest.approx((45 + 20) / 10 / 0.5)


def test_runs_table_records_calls_per_second_against_the_limit(tmp_path):
    with Simulator(seed=5, days=4, activity_per_day=900, operation_per_day=90) as sim:
        engine = LocalEngine(tmp_path)
        start = backfill_start(4)
        settings = settings_for(sim, backfill_start=start.date(), requests_per_second=150)
        summary = run(settings, engine, progress=False)
        assert summary.exit_code == exit_codes.OK, summary.lines()
        assert_equals_ground_truth(engine, sim, start)
        rows = engine.read_table(RUNS).to_pylist()
        assert {r["rate_limit"] for r in rows} == {150.0}
        achieved = {r["calls_per_second"] for r in rows}
        assert len(achieved) == 1
        (rate,) = achieved
        assert rate is not None and 0 < rate <= 150 * 1.05
        assert summary.calls_per_second == rate
        assert any("of the 150/s limit" in line for line in summary.lines())


def test_runs_table_of_an_earlier_version_gains_the_new_columns(tmp_path):
    engine = LocalEngine(tmp_path)
    old_schema = pa.schema(
        [
            f
            for f in RUNS.schema
            if f.name not in ("rate_limit", "calls_per_second", "failed_window")
        ]
    )
    path = engine.table_path(RUNS)
    DeltaTable.create(path, old_schema, name=RUNS.name)
    old_row = {name: None for name in old_schema.names}
    old_row.update(run_id="old", account_id="acc", stream="activity_logs", status="succeeded")
    write_deltalake(str(path), pa.Table.from_pylist([old_row], schema=old_schema), mode="append")
    with Simulator(seed=6, days=2, activity_per_day=60, operation_per_day=10) as sim:
        start = backfill_start(2)
        summary = run(settings_for(sim, backfill_start=start.date()), engine, progress=False)
        assert summary.exit_code == exit_codes.OK, summary.lines()
    rows = {
        (r["run_id"], r["stream"]): r for r in LocalEngine(tmp_path).read_table(RUNS).to_pylist()
    }
    assert rows[("old", "activity_logs")]["rate_limit"] is None
    new = [r for key, r in rows.items() if key[0] != "old"]
    assert len(new) == 2 and all(r["rate_limit"] == 200.0 for r in new)
    assert pa.schema(DeltaTable(str(path)).schema().to_arrow()).names == RUNS.schema.names


def test_no_window_opens_beyond_the_span_of_the_oldest_open_one():
    """Memory (issue 14): a lagging window holds the span. Window 0 stays open while the
    others finish; no window `open_limit` or more places after it opens, whatever the
    estimates say, until window 0 is done."""
    chains = _chains([1.0] * 12)
    for chain in chains:
        chain.pages, chain.remaining = None, 0.5  # tiny estimates: the horizon never fills
    scheduler = Scheduler(chains, max_in_flight=2, open_limit=4, rate=10)
    lagging = scheduler.take()
    assert lagging.order == 0
    opened = {lagging.order}
    for _ in range(3):  # windows 1-3 come and go; window 0 is never released
        chain = scheduler.take()
        opened.add(chain.order)
        scheduler.release(chain, finished=True, seconds=0.1)
    assert opened == {0, 1, 2, 3}
    assert scheduler._open == 1 and len(scheduler._waiting) == 8  # window 4 waits
    assert max(c.order for c in scheduler._opened) - lagging.order < 4
    scheduler.release(lagging, finished=True, seconds=0.1)
    assert scheduler.take().order == 4


def test_the_writer_bounds_the_open_span_and_its_queues():
    """What the job holds at once does not grow with the backfill: the open windows'
    span, the queue of pages (4 per fetch thread) and one batch waiting to be merged."""
    writer, _s, _engine = writer_for(backfill_plan())
    concurrency = writer.settings.effective_concurrency
    assert writer.fetcher.events.maxsize == 4 * concurrency
    assert writer.commits.maxsize == 1
    assert schedule.OPEN_WINDOWS_PER_FETCH_THREAD == 2


def test_a_low_rate_still_opens_enough_windows_for_uneven_days():
    # 2 per fetch thread is 16 windows at 10 requests/s: a long day holding the span
    # pages alone (0.80 of the ceiling on the Pro shape); the floor keeps 48 open. At
    # 40 requests/s (26 threads) the per-thread span governs.
    writer, _s, _engine = writer_for(backfill_plan())
    pro = writer.settings.with_changes(requests_per_second=10.0, concurrency=None)
    assert schedule.open_span(pro.effective_concurrency) == 48
    busy = pro.with_changes(requests_per_second=40.0).effective_concurrency
    assert schedule.open_span(busy) == 2 * busy > schedule.MIN_OPEN_WINDOWS
