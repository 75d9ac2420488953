"""The writer's rules, one at a time: which windows count as committed, when rows are
flushed, where the cursor may move, what a stop or a failed window does, and what the
runs table says about it all.

These run in-process against an in-memory engine and a scripted Zoom (no sockets, no
Delta), so each rule is checked exactly and fast; test_job.py checks the same job end to
end against the simulator. A wrong answer to any of these loses data for good (a cursor
past an uncommitted window), calls Zoom after a stop, or misreports a run.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace

import pyarrow as pa
import pytest

from zoom_ingest import exit_codes, job
from zoom_ingest.engines.base import LeaseHolder
from zoom_ingest.job import (
    FLUSH_EVERY_SECONDS,
    RunSummary,
    StreamRun,
    _runs_rows,
    _Writer,
)
from zoom_ingest.normalise import Reject, raw_json
from zoom_ingest.plan import Plan, Window, plan_stream
from zoom_ingest.run_state import runs_rows
from zoom_ingest.settings import Secret, Settings
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    OPERATION_LOGS,
    REJECTS,
    RUNS,
    UTC,
    TableSpec,
    format_time,
    reject_id,
)
from zoom_ingest.zoom import (
    STREAMS_BY_NAME,
    CallCounters,
    DailyLimitReached,
    ZoomAuthError,
    ZoomError,
    fetcher,
    schedule,
)
from zoom_ingest.zoom.errors import IncompleteAnswer
from zoom_ingest.zoom.fetcher import Fetcher, WindowToFetch
from zoom_ingest.zoom.rules import CATEGORY_TYPES
from zoom_ingest.zoom.schedule import Chain, Scheduler
from zoom_ingest.zoom.streams import Page, Stray

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
ACTIVITY = STREAMS_BY_NAME["activity_logs"]
BACKFILL_START = date(2026, 11, 20)


def settings(**changes: object) -> Settings:
    base = Settings(account_id="acct", client_id="cid", client_secret=Secret("s3cret"))
    return base.with_changes(**{"backfill_start": BACKFILL_START, "concurrency": 1, **changes})


def sign_in(when: datetime, who: str = "ada") -> dict[str, str]:
    return {"time": format_time(when), "email": f"{who}@example.com", "type": "Sign in"}


class MemoryEngine:
    """An engine that keeps its tables in dicts and remembers every call."""

    name = "memory"
    exclusive_runs = True
    batch_rows = 100_000

    def __init__(self, cursors: dict[str, datetime] | None = None) -> None:
        self.tables: dict[str, dict[tuple, dict]] = {}
        self.cursors: dict[str, datetime] = dict(cursors or {})
        self.saved: list[tuple[str, datetime]] = []
        self.checkpoint_rows: list[tuple[str, str, datetime, str]] = []
        self.merges: list[tuple[str, int]] = []
        self.appended: dict[str, list[dict]] = {}
        self.fail_merges = False

    def describe(self) -> str:
        return "memory"

    def write_lease(self, lease: pa.Table) -> list[LeaseHolder]:
        """The lease rule in memory: the row is taken when free, expired or the writer's."""
        (row,) = lease.to_pylist()
        leases = self.tables.setdefault("zoom_ingest_leases", {})
        held = leases.get((row["account_id"],))
        if (
            held is None
            or held["run_id"] == row["run_id"]
            or held["expires_at"] <= row["renewed_at"]
        ):
            leases[(row["account_id"],)] = row
        kept = leases[(row["account_id"],)]
        return [LeaseHolder(kept["run_id"], kept["expires_at"])]

    def ensure_tables(self) -> None:
        pass

    def run_lock(self) -> nullcontext:
        return nullcontext()

    def merge_new(self, spec: TableSpec, batch: pa.Table) -> int:
        if self.fail_merges:
            raise OSError("disk full")
        self.merges.append((spec.name, batch.num_rows))
        table = self.tables.setdefault(spec.name, {})
        inserted = 0
        for row in batch.to_pylist():
            key = tuple(row[k] for k in spec.key)
            if key not in table:
                table[key] = row
                inserted += 1
        return inserted

    def append(self, spec: TableSpec, batch: pa.Table) -> None:
        self.appended.setdefault(spec.name, []).extend(batch.to_pylist())

    def upsert(self, spec: TableSpec, batch: pa.Table) -> None:
        rows = self.appended.setdefault(spec.name, [])
        for row in batch.to_pylist():
            key = tuple(row[k] for k in spec.key)
            rows[:] = [r for r in rows if tuple(r[k] for k in spec.key) != key]
            rows.append(row)

    def read_table(self, spec: TableSpec) -> pa.Table:
        return pa.Table.from_pylist(self.appended.get(spec.name, []), schema=spec.schema)

    def read_checkpoints(self, account_id: str) -> dict[str, datetime]:
        return dict(self.cursors)

    def save_checkpoint(self, account_id: str, stream: str, cursor: datetime, run_id: str) -> None:
        self.saved.append((stream, cursor))
        self.checkpoint_rows.append((account_id, stream, cursor, run_id))
        self.cursors[stream] = cursor

    def rows(self, spec: TableSpec) -> list[dict]:
        return list(self.tables.get(spec.name, {}).values())


@dataclass
class ScriptedZoom:
    """Stands in for `fetch_pages`: the pages (or the error) each window of a stream gets,
    keyed by the window's first date; a window not in the script has no records."""

    pages: dict[tuple[str, date], list[list[dict]]] = field(default_factory=dict)
    errors: dict[tuple[str, date], BaseException] = field(default_factory=dict)
    asked: list[tuple[str, date]] = field(default_factory=list)

    def __call__(
        self, client, stream, window: Window, category_type, counters, *, max_pages: int
    ) -> Iterator:
        # What a window is fetched with: the run's client, its operation-log filter, the
        # stream's tallies and the page limit of the settings.
        assert isinstance(client, FakeClient) and category_type in CATEGORY_TYPES
        assert max_pages == Settings.max_pages_per_window
        assert isinstance(counters, CallCounters) and stream.name in STREAMS_BY_NAME
        key = (stream.name, window.from_date)
        self.asked.append(key)
        script = self.pages.get(key, [])
        for n, records in enumerate(script):
            counters.add("api_calls")
            counters.add("pages")
            last = n == len(script) - 1 and key not in self.errors
            yield Page(records, "" if last else f"token-{n + 1}", None, None)
        if key in self.errors:
            counters.add("api_calls")
            raise self.errors[key]


class FakeClient:
    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass


class WaitingClient(FakeClient):
    """A client that says how long its thread has waited for the rate limiter."""

    def __init__(self, waited) -> None:
        self.thread_waited = waited


class FakeBar:
    def __init__(self) -> None:
        self.records_seen = 0
        self.windows_done = 0

    def records(self, stream: str, count: int) -> None:
        assert stream == "activity_logs"
        self.records_seen += count

    def window_done(self, stream: str) -> None:
        assert stream == "activity_logs"
        self.windows_done += 1


def backfill_plan(**changes: object) -> Plan:
    return plan_stream(settings(**changes), "activity_logs", None, NOW)


def writer_for(
    plan: Plan, engine: MemoryEngine | None = None, **changes: object
) -> tuple[_Writer, StreamRun, MemoryEngine]:
    engine = engine or MemoryEngine()
    s = StreamRun(ACTIVITY, plan)
    writer = _Writer(settings(**changes), engine, "run-1", [s], FakeClient(), False)  # type: ignore[arg-type]
    return writer, s, engine


def event(kind: str, stream: str, index: int, payload: object = None) -> fetcher.WindowEvent:
    """A fetch thread's event, from the short form these tests write it in."""
    if kind == "records":
        assert isinstance(payload, list)
        return fetcher.Records(stream, index, payload)
    if kind == "failed":
        assert isinstance(payload, BaseException)
        return fetcher.WindowFailed(stream, index, payload)
    return {"done": fetcher.WindowDone, "cancelled": fetcher.WindowCancelled}[kind](stream, index)


def short(posted: fetcher.WindowEvent) -> tuple:
    """An event in the short form: (kind, stream, window index, payload or None)."""
    match posted:
        case fetcher.Records(stream, index, records):
            return ("records", stream, index, records)
        case fetcher.WindowFailed(stream, index, error):
            return ("failed", stream, index, error)
        case fetcher.WindowDone(stream, index):
            return ("done", stream, index, None)
        case fetcher.WindowCancelled(stream, index):
            return ("cancelled", stream, index, None)
    raise AssertionError(f"not an event: {posted!r}")


def commit_handed(writer: _Writer) -> int:
    """Do the committer thread's work, in this thread: commit every batch `_flush` has
    handed over (as `_commit_loop` does). Returns how many there were."""
    n = 0
    while True:
        try:
            item = writer.commits.get_nowait()
        except queue.Empty:
            return n
        assert item is not None
        try:
            writer._commit(item)
        finally:
            writer.pending_commits -= 1
        n += 1


def flush(writer: _Writer, s: StreamRun) -> None:
    """A flush and the commit it hands over."""
    writer._flush(s)
    commit_handed(writer)


def test_the_example_plan_has_five_day_windows():
    """The plan most tests here use: a backfill from 2026-11-20 at 10:30Z on the 22nd."""
    plan = backfill_plan()
    assert [w.from_date.day for w in plan.windows] == [19, 20, 21, 22, 23]
    assert all(w.from_date == w.to_date for w in plan.windows)


# -- the cursor moves only across contiguous committed windows, oldest first ---------------


def test_no_cursor_while_the_oldest_window_is_uncommitted():
    """Every window but the first is committed: the first one's records are not stored,
    so the cursor must not claim anything (not even the first window's range)."""
    writer, s, engine = writer_for(backfill_plan())
    s.committed = set(range(1, len(s.plan.windows)))
    writer._advance_cursor(s)
    assert engine.saved == [] and s.cursor is None


def test_the_cursor_stops_at_the_first_gap():
    writer, s, engine = writer_for(backfill_plan())
    windows = s.plan.windows
    s.committed = {0, 1, 3}
    writer._advance_cursor(s)
    assert s.cursor == windows[1].covers_until == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert engine.saved == [("activity_logs", s.cursor)]


def test_one_committed_oldest_window_moves_the_cursor_to_what_it_covers():
    writer, s, engine = writer_for(backfill_plan())
    s.committed = {0}
    writer._advance_cursor(s)
    assert engine.saved == [("activity_logs", s.plan.windows[0].covers_until)]


def test_all_windows_committed_moves_the_cursor_to_the_run_start_not_beyond():
    """The last window covers until tomorrow 10:00Z, but nothing newer than the run's
    start was promised: the cursor is `now`."""
    writer, s, engine = writer_for(backfill_plan())
    assert s.plan.windows[-1].covers_until > NOW
    s.committed = set(range(len(s.plan.windows)))
    writer._advance_cursor(s)
    assert engine.saved == [("activity_logs", NOW)] and s.cursor == NOW


def test_all_but_the_newest_window_committed_stops_before_it():
    writer, s, engine = writer_for(backfill_plan())
    windows = s.plan.windows
    s.committed = set(range(len(windows) - 1))
    writer._advance_cursor(s)
    assert s.cursor == windows[-2].covers_until < NOW
    assert engine.saved == [("activity_logs", windows[-2].covers_until)]


def test_a_window_covering_past_the_run_start_is_capped_at_the_run_start():
    """Windows are cut by date; one that is not the last can still reach past `now` when
    the plan ends early (a hand-made plan). The cursor never claims the future."""
    plan = backfill_plan()
    early_end = plan.windows[1].covers_until - timedelta(minutes=5)
    plan = Plan(**{**plan.__dict__, "end": early_end})
    writer, s, engine = writer_for(plan)
    s.committed = {0, 1}
    writer._advance_cursor(s)
    assert engine.saved == [("activity_logs", early_end)]


@pytest.mark.parametrize("ahead", [timedelta(0), timedelta(hours=3)])
def test_the_cursor_never_moves_back_nor_is_saved_again_unchanged(ahead):
    """A reconcile or a lookback re-read commits windows below the cursor it started
    from: the checkpoint stays where it was, and an equal cursor is not re-written."""
    writer, s, engine = writer_for(backfill_plan())
    s.cursor = s.plan.windows[1].covers_until + ahead
    s.committed = {0, 1}
    writer._advance_cursor(s)
    assert engine.saved == []
    assert s.cursor == s.plan.windows[1].covers_until + ahead


def test_the_cursor_moves_forward_from_an_earlier_one():
    writer, s, engine = writer_for(backfill_plan())
    s.cursor = s.plan.windows[0].covers_until
    s.committed = {0, 1}
    writer._advance_cursor(s)
    assert engine.saved == [("activity_logs", s.plan.windows[1].covers_until)]


def test_the_checkpoint_names_the_account_and_the_run():
    writer, s, engine = writer_for(backfill_plan())
    s.committed = {0}
    writer._advance_cursor(s)
    assert engine.checkpoint_rows == [
        ("acct", "activity_logs", s.plan.windows[0].covers_until, "run-1")
    ]


# -- flushes: merge, then commit the windows that were in the batch, then the cursor -------


def test_a_flush_with_nothing_to_write_writes_nothing():
    writer, s, engine = writer_for(backfill_plan())
    writer._flush(s)
    assert writer.commits.empty() and writer.pending_commits == 0
    assert engine.merges == [] and engine.saved == []


def test_a_window_without_records_is_committed_by_the_next_flush():
    writer, s, engine = writer_for(backfill_plan())
    s.done_in_batch = {0}
    writer._flush(s)
    assert s.done_in_batch == set() and s.committed == set()  # handed over, not merged
    assert engine.saved == [] and writer.pending_commits == 1
    assert commit_handed(writer) == 1
    assert engine.merges == []  # nothing to merge, but the window counts
    assert s.committed == {0} and writer.pending_commits == 0
    assert engine.saved == [("activity_logs", s.plan.windows[0].covers_until)]


def test_a_window_is_committed_only_once_its_merge_succeeded():
    writer, s, engine = writer_for(backfill_plan())
    s.batch.add([sign_in(datetime(2026, 11, 20, 1, tzinfo=UTC))])
    s.done_in_batch = {0}
    engine.fail_merges = True
    writer._flush(s)
    with pytest.raises(OSError, match="disk full"):
        commit_handed(writer)
    assert s.committed == set() and engine.saved == [] and s.cursor is None


def test_after_a_failed_merge_the_committer_commits_nothing_more():
    """The committer thread keeps the first error, stops the run and drops later batches
    (their windows stay uncommitted, the checkpoint stays at the data); the writer then
    re-raises the error."""
    writer, s, engine = writer_for(backfill_plan())
    committer = threading.Thread(target=writer._commit_loop, daemon=True)
    committer.start()
    s.batch.add([sign_in(datetime(2026, 11, 20, 1, tzinfo=UTC))])
    s.done_in_batch = {0}
    engine.fail_merges = True
    writer._flush(s)
    s.done_in_batch = {1}
    writer._flush(s)  # an empty batch: no merge of its own to fail
    writer.commits.put(None, timeout=5)
    committer.join(timeout=5)
    assert not committer.is_alive()
    assert isinstance(writer.commit_error, OSError) and writer.stop.is_set()
    assert s.committed == set() and engine.saved == [] and writer.pending_commits == 0
    with pytest.raises(OSError, match="disk full"):
        writer._raise_commit_error()


def test_the_committer_commits_batches_in_hand_off_order():
    writer, s, engine = writer_for(backfill_plan())
    committer = threading.Thread(target=writer._commit_loop, daemon=True)
    committer.start()
    for index in range(3):
        s.batch.add([sign_in(datetime(2026, 11, 20 + index, 1, tzinfo=UTC))])
        s.done_in_batch = {index}
        writer._flush(s)
    writer.commits.put(None, timeout=5)
    committer.join(timeout=5)
    assert not committer.is_alive() and writer.commit_error is None
    assert s.committed == {0, 1, 2} and writer.pending_commits == 0
    assert [c for _, c in engine.saved] == [w.covers_until for w in s.plan.windows[:3]]
    writer._raise_commit_error()  # nothing to raise


def test_windows_committed_by_successive_flushes_add_up():
    writer, s, _engine = writer_for(backfill_plan())
    s.done_in_batch = {0}
    flush(writer, s)
    s.done_in_batch = {1}
    flush(writer, s)
    assert s.committed == {0, 1}
    assert s.cursor == s.plan.windows[1].covers_until


def test_records_inserted_add_up_over_every_flush():
    """A long backfill flushes many times: the runs table must count every flush, and
    only the rows that were new."""
    writer, s, engine = writer_for(backfill_plan())
    first = [sign_in(datetime(2026, 11, 20, h, tzinfo=UTC)) for h in (1, 2, 3)]
    second = [sign_in(datetime(2026, 11, 21, h, tzinfo=UTC)) for h in (1, 2)]
    s.batch.add(first)
    flush(writer, s)
    s.batch.add([*second, first[0]])  # first[0] is stored already
    flush(writer, s)
    assert s.inserted == 5
    assert len(engine.rows(ACTIVITY_LOGS)) == 5


def test_records_before_the_backfill_start_are_not_stored_and_its_midnight_is_kept():
    """The first window (2026-11-19) holds records from before the backfill start; the
    floor drops them. A record exactly at the start's midnight is inside the range."""
    writer, s, engine = writer_for(backfill_plan())
    floor = datetime(2026, 11, 20, tzinfo=UTC)
    assert s.plan.floor == floor
    s.batch.add(
        [
            sign_in(floor - timedelta(hours=3), "early"),
            sign_in(floor - timedelta(microseconds=1), "just-before"),
            sign_in(floor, "at-midnight"),
            sign_in(floor + timedelta(hours=1), "after"),
        ]
    )
    flush(writer, s)
    stored = sorted(r["email"] for r in engine.rows(ACTIVITY_LOGS))
    assert stored == ["after@example.com", "at-midnight@example.com"]
    assert s.inserted == 2 and s.before_floor == 2
    s.batch.add([sign_in(floor - timedelta(hours=5), "earlier")])
    flush(writer, s)
    assert s.inserted == 2 and s.before_floor == 3  # tallied over every flush
    lines = summary_of(s).lines()
    assert "    3 fetched records before the start not stored" in lines


def test_the_summary_says_nothing_of_the_floor_when_no_record_was_before_it():
    _writer, s, _engine = writer_for(backfill_plan())
    assert not any("before the start" in line for line in summary_of(s).lines())


def test_without_a_floor_every_record_is_stored():
    plan = plan_stream(
        settings(backfill_start=None), "activity_logs", NOW - timedelta(hours=2), NOW
    )
    assert plan.floor is None
    writer, s, _engine = writer_for(plan)
    s.batch.add([sign_in(datetime(2026, 1, 1, tzinfo=UTC))])
    flush(writer, s)
    assert s.inserted == 1 and s.before_floor == 0


def test_rejects_are_stored_counted_and_add_up_over_flushes():
    writer, s, engine = writer_for(backfill_plan())
    s.batch.add([{"email": "no-time@example.com"}, {"time": "yesterday"}])
    flush(writer, s)
    assert s.rejected == 2 and engine.merges == [(REJECTS.name, 2)]
    s.batch.add([{"time": 42}])
    flush(writer, s)
    assert s.rejected == 3
    assert len(engine.rows(REJECTS)) == 3
    assert s.batch.rejects == [] and len(s.batch) == 0  # each flush starts a fresh batch


def test_a_flush_restarts_the_flush_clock(monkeypatch):
    monkeypatch.setattr(job, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    writer, s, _engine = writer_for(backfill_plan())
    s.last_flush = 0.0
    writer._flush(s)  # even with nothing to write
    assert s.last_flush == 1000.0


@pytest.mark.parametrize(("elapsed", "flushed"), [(FLUSH_EVERY_SECONDS, True), (29.999, False)])
def test_a_timed_flush_is_due_after_flush_every_seconds(monkeypatch, elapsed, flushed):
    """A slow backfill still commits (and checkpoints) every FLUSH_EVERY_SECONDS."""
    assert FLUSH_EVERY_SECONDS == 30.0
    monkeypatch.setattr(job, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    writer, s, engine = writer_for(backfill_plan())
    s.last_flush = 1000.0 - elapsed
    s.done_in_batch = {0}
    writer._flush_if_due()
    assert commit_handed(writer) == int(flushed)
    assert (s.committed == {0}) is flushed
    assert bool(engine.saved) is flushed


def test_a_busy_streams_flushes_do_not_hold_back_a_quiet_streams_timed_flush(monkeypatch):
    """Each stream flushes on its own clock: a stream whose batches fill (and flush) every
    few seconds does not keep the other's batch, and its checkpoint, waiting for the end
    of the run."""
    clock = [1000.0]
    monkeypatch.setattr(job, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    engine = MemoryEngine()
    busy = StreamRun(ACTIVITY, backfill_plan())
    quiet = StreamRun(
        STREAMS_BY_NAME["operation_logs"], plan_stream(settings(), "operation_logs", None, NOW)
    )
    writer = _Writer(settings(), engine, "run-1", [busy, quiet], FakeClient(), False)  # type: ignore[arg-type]
    busy.last_flush = quiet.last_flush = 1000.0
    quiet.done_in_batch = {0}
    for _ in range(3):  # the busy stream's batch fills every 10 s
        clock[0] += 10.0
        busy.done_in_batch = {0}
        writer._flush(busy)
        commit_handed(writer)
        writer._flush_if_due()
    assert quiet.done_in_batch == set()  # flushed at 30 s, though the busy one flushed at 30
    assert commit_handed(writer) == 1
    assert quiet.committed == {0} and quiet.last_flush == 1030.0


@pytest.mark.parametrize(
    ("end_game", "pending", "elapsed", "flushed"),
    [
        (True, 0, job.END_GAME_FLUSH_SECONDS, True),
        (True, 0, job.END_GAME_FLUSH_SECONDS - 0.001, False),
        (True, 1, job.END_GAME_FLUSH_SECONDS, False),  # the committer is busy
        (False, 0, job.END_GAME_FLUSH_SECONDS, False),
    ],
)
def test_the_end_game_flushes_sooner_while_the_committer_is_idle(
    monkeypatch, end_game, pending, elapsed, flushed
):
    assert job.END_GAME_FLUSH_SECONDS == 3.0
    monkeypatch.setattr(job, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    writer, s, _engine = writer_for(backfill_plan())
    writer.fetcher = SimpleNamespace(end_game=lambda: end_game)  # type: ignore[assignment]
    writer.pending_commits = pending
    s.last_flush = 1000.0 - elapsed
    s.done_in_batch = {0}
    writer._flush_if_due()
    assert (s.done_in_batch == set()) is flushed
    assert writer.commits.qsize() == int(flushed)


# -- events: records, done, cancelled, failed ----------------------------------------------


def test_records_from_outside_their_window_become_rejects_as_zoom_sent_them():
    """The source hands on a stray as the record and its reason; the writer stores it
    as a reject with the record's JSON, counts it as fetched, and never as a row."""
    writer, s, engine = writer_for(backfill_plan())
    inside = sign_in(datetime(2026, 11, 20, 1, tzinfo=UTC))
    outside = sign_in(datetime(2025, 1, 1, tzinfo=UTC), "eve")
    reason = "time: 2025-01-01T00:00:00Z is outside the window 2026-11-20..2026-11-20"
    records = fetcher.Records("activity_logs", 1, [inside], (Stray(reason, outside),))
    assert writer._handle(records, FakeBar()) == 0
    assert s.fetched == 2 and len(s.batch) == 1
    assert s.batch.rejects == [Reject(reason=reason, raw_json=raw_json(outside))]
    flush(writer, s)
    (reject,) = engine.rows(REJECTS)
    assert reject["reason"] == reason and json.loads(reject["raw_json"]) == outside
    assert s.rejected == 1 and s.inserted == 1


def test_records_are_buffered_until_the_batch_is_full():
    writer, s, engine = writer_for(backfill_plan(), batch_rows=3)
    bar = FakeBar()
    day = datetime(2026, 11, 20, tzinfo=UTC)
    page = [sign_in(day + timedelta(hours=h)) for h in (1, 2)]
    assert writer._handle(event("records", "activity_logs", 0, page), bar) == 0
    assert engine.merges == [] and s.fetched == 2 and bar.records_seen == 2
    assert writer.commits.empty()
    more = [sign_in(day + timedelta(hours=3))]
    assert writer._handle(event("records", "activity_logs", 0, more), bar) == 0
    assert writer.commits.qsize() == 1 and len(s.batch) == 0  # exactly batch_rows: flushed
    commit_handed(writer)
    assert engine.merges == [(ACTIVITY_LOGS.name, 3)]
    assert s.fetched == 3 and s.inserted == 3
    assert s.committed == set()  # the window is not done: its cursor waits


@pytest.mark.parametrize(("setting", "engines", "full"), [(None, 2, 2), (3, 2, 3)])
def test_a_batch_holds_the_engines_rows_unless_the_settings_say(
    setting: int | None, engines: int, full: int
):
    """batch_rows unset: each engine's own (the local engine's small, Spark's large)."""
    engine = MemoryEngine()
    engine.batch_rows = engines
    writer, s, _ = writer_for(backfill_plan(), engine, batch_rows=setting)
    day = datetime(2026, 11, 20, tzinfo=UTC)
    for hour in range(1, full):
        page = [sign_in(day + timedelta(hours=hour))]
        writer._handle(event("records", "activity_logs", 0, page), FakeBar())
        assert writer.commits.empty()
    writer._handle(event("records", "activity_logs", 0, [sign_in(day)]), FakeBar())
    assert writer.commits.qsize() == 1 and len(s.batch) == 0


def test_the_engines_batches_are_small_where_a_merge_is_cheap():
    from zoom_ingest.engines import LocalEngine, SparkEngine

    assert LocalEngine.batch_rows == 20_000 and SparkEngine.batch_rows == 100_000
    assert Settings.__dataclass_fields__["batch_rows"].default is None


@pytest.mark.parametrize("quiet_rows", [1, 2])
def test_a_full_batch_takes_the_other_streams_batches_along(quiet_rows: int):
    """A quiet stream's batch of a quarter batch or more does not wait for its timed
    flush beside full batches of the busy one: it goes to the committer first, then the
    full batch. A smaller one stays (a merge has a fixed cost)."""
    engine = MemoryEngine()
    busy = StreamRun(ACTIVITY, backfill_plan())
    quiet = StreamRun(
        STREAMS_BY_NAME["operation_logs"], plan_stream(settings(), "operation_logs", None, NOW)
    )
    writer = _Writer(settings(batch_rows=8), engine, "run-1", [busy, quiet], FakeClient(), False)  # type: ignore[arg-type]
    bar = SimpleNamespace(records=lambda stream, count: None)
    day = datetime(2026, 11, 20, tzinfo=UTC)
    operations = [
        {"time": format_time(day + timedelta(minutes=n)), "operator": "ada@example.com"}
        for n in range(quiet_rows)
    ]
    writer._handle(event("records", "operation_logs", 0, operations), bar)  # type: ignore[arg-type]
    page = [sign_in(day + timedelta(hours=h)) for h in range(1, 8)]
    writer._handle(event("records", "activity_logs", 0, page), bar)  # type: ignore[arg-type]
    assert writer.commits.empty()  # neither is full
    committer = threading.Thread(target=writer._commit_loop)  # takes one batch at a time
    committer.start()
    writer._handle(event("records", "activity_logs", 0, [sign_in(day, "eve")]), bar)  # type: ignore[arg-type]
    taken = quiet_rows * 4 >= 8
    assert (len(busy.batch), len(quiet.batch)) == (0, 0 if taken else quiet_rows)
    writer.commits.put(None)
    committer.join(timeout=30)
    along = [(OPERATION_LOGS.name, quiet_rows)] if taken else []
    assert engine.merges == [*along, (ACTIVITY_LOGS.name, 8)]


def test_fetched_counts_every_record_even_duplicates_and_rejects():
    writer, s, _engine = writer_for(backfill_plan())
    record = sign_in(datetime(2026, 11, 20, 1, tzinfo=UTC))
    writer._handle(
        event("records", "activity_logs", 0, [record, record, {"time": None}]), FakeBar()
    )
    assert s.fetched == 3 and len(s.batch) == 1


def test_a_done_window_waits_in_the_batch_until_the_flush():
    writer, s, _engine = writer_for(backfill_plan())
    bar = FakeBar()
    assert writer._handle(event("done", "activity_logs", 2, None), bar) == 1
    assert s.done_in_batch == {2} and s.committed == set() and bar.windows_done == 1
    assert s.windows_finished == 1


def test_a_cancelled_window_ends_but_is_never_committed():
    writer, s, engine = writer_for(backfill_plan())
    bar = FakeBar()
    assert writer._handle(event("cancelled", "activity_logs", 0, None), bar) == 1
    assert s.windows_finished == 1 and s.done_in_batch == set() and bar.windows_done == 0
    assert writer._handle(event("cancelled", "activity_logs", 1, None), bar) == 1
    assert s.windows_finished == 2
    flush(writer, s)
    assert s.committed == set() and engine.saved == []


def test_a_failed_window_ends_and_fails_the_stream():
    writer, s, _engine = writer_for(backfill_plan())
    exc = ZoomError("activity_logs 2026-11-20: Zoom said no")
    assert writer._handle(event("failed", "activity_logs", 1, exc), FakeBar()) == 1
    assert s.error == "activity_logs 2026-11-20: Zoom said no" and s.aborted
    assert s.done_in_batch == set()


def test_the_stream_is_finished_when_its_last_window_ends():
    writer, s, _engine = writer_for(backfill_plan())
    n = len(s.plan.windows)
    for index in range(n - 1):
        writer._handle(event("done", "activity_logs", index, None), FakeBar())
        assert s.finished is None
    writer._handle(event("cancelled", "activity_logs", n - 1, None), FakeBar())
    assert s.finished is not None and s.windows_finished == n


# -- stop and abort: no call to Zoom once the run or the stream has stopped ---------------


@pytest.fixture
def zoom(monkeypatch) -> ScriptedZoom:
    scripted = ScriptedZoom()
    monkeypatch.setattr(fetcher, "fetch_pages", scripted)
    return scripted


def fetcher_over(writer: _Writer, s: StreamRun, *indexes: int) -> Fetcher:
    """The writer's fetcher, made again over the given windows of `s` only, as the writer
    makes it (its settings, its stop), with one fetch thread."""
    writer.fetcher = Fetcher(
        FakeClient(),  # type: ignore[arg-type]
        [WindowToFetch(s.stream, i, s.plan.windows[i], s.counters) for i in indexes],
        category_type=writer.settings.category_type,
        max_pages=writer.settings.max_pages_per_window,
        concurrency=1,
        rate=10.0,
        stop=writer.stop,
    )
    writer.fetcher.events = queue.Queue()  # unbounded: nobody drains it while the thread runs
    return writer.fetcher


def fetch_events(fetched: Fetcher) -> list[fetcher.WindowEvent]:
    """Run one fetch thread (`Fetcher._fetch`) under its real scheduler until every chain
    has ended; return the events it posted, in order, whole (strays included)."""
    thread = threading.Thread(target=fetched._fetch, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the fetch thread did not finish"
    out = []
    while not fetched.events.empty():
        out.append(fetched.events.get_nowait())
    return out


def fetch_all(fetched: Fetcher) -> list[tuple]:
    """Run one fetch thread (`Fetcher._fetch`) under its real scheduler until every chain
    has ended; return the events it posted, in order, each in short (`short`)."""
    return [short(event) for event in fetch_events(fetched)]


def fetch(writer: _Writer, s: StreamRun, *indexes: int) -> list[tuple]:
    """`fetch_all` over the given windows of `s`."""
    return fetch_all(fetcher_over(writer, s, *indexes))


def test_a_window_queued_after_a_stop_never_calls_zoom(zoom):
    writer, s, _engine = writer_for(backfill_plan())
    zoom.pages[("activity_logs", s.plan.windows[3].from_date)] = [[sign_in(NOW)]]
    writer.stop.set()  # the daily limit, an interrupt, bad credentials
    got = fetch(writer, s, 3, 4)
    assert zoom.asked == [] and s.counters.api_calls == 0
    assert got == [("cancelled", "activity_logs", 3, None), ("cancelled", "activity_logs", 4, None)]


def test_a_window_queued_after_its_stream_failed_never_calls_zoom(zoom):
    writer, s, _engine = writer_for(backfill_plan())
    zoom.pages[("activity_logs", s.plan.windows[3].from_date)] = [[sign_in(NOW)]]
    fetching = fetcher_over(writer, s, 3)
    fetching.abort(s.name)  # an earlier window failed: later ones cannot move the cursor
    got = fetch_all(fetching)
    assert zoom.asked == [] and s.counters.api_calls == 0
    assert got == [("cancelled", "activity_logs", 3, None)]


def test_a_failed_stream_stops_the_others_windows_not_calling_zoom(zoom, monkeypatch):
    """The window that fails aborts the stream (as the writer does on its event): every
    window of the stream the fetch thread takes afterwards is cancelled unasked."""
    writer, s, _engine = writer_for(backfill_plan())
    first = s.plan.windows[0].from_date
    zoom.errors[("activity_logs", first)] = ZoomError("activity_logs 2026-11-19: 500")
    original = zoom.__call__

    def failing_aborts(client, stream, window, *rest, **limits):
        try:
            yield from original(client, stream, window, *rest, **limits)
        except ZoomError:
            writer.fetcher.abort(s.name)
            raise

    monkeypatch.setattr(fetcher, "fetch_pages", failing_aborts)
    got = fetch(writer, s, 0, 1, 2)
    assert zoom.asked == [("activity_logs", first)]
    assert [(e[0], e[2]) for e in got] == [("failed", 0), ("cancelled", 1), ("cancelled", 2)]


@pytest.mark.parametrize("how", ["stop", "abort"])
def test_a_window_stops_paging_after_the_page_in_flight(zoom, monkeypatch, how):
    writer, s, _engine = writer_for(backfill_plan())
    window = s.plan.windows[1]
    day = datetime(2026, 11, 20, tzinfo=UTC)
    zoom.pages[("activity_logs", window.from_date)] = [
        [sign_in(day + timedelta(hours=2))],
        [sign_in(day + timedelta(hours=1))],
    ]
    original = zoom.__call__

    def stop_during_the_first_page(*args, **limits):
        for page in original(*args, **limits):
            if how == "stop":
                writer.stop.set()
            else:
                writer.fetcher.abort(s.name)
            yield page

    monkeypatch.setattr(fetcher, "fetch_pages", stop_during_the_first_page)
    got = fetch(writer, s, 1)
    assert [e[0] for e in got] == ["records", "cancelled"]
    assert got[0][3] == [sign_in(day + timedelta(hours=2))]  # the page in flight is kept
    assert s.counters.pages == 1  # the second page was never asked for


def test_a_window_posts_its_pages_then_done(zoom):
    writer, s, _engine = writer_for(backfill_plan())
    window = s.plan.windows[1]
    day = datetime(2026, 11, 20, tzinfo=UTC)
    zoom.pages[("activity_logs", window.from_date)] = [[sign_in(day)], [], [sign_in(day, "b")]]
    got = fetch(writer, s, 1)
    assert [(e[0], e[2]) for e in got] == [
        ("records", 1),
        ("records", 1),  # the empty page posts nothing
        ("done", 1),
    ]
    assert s.counters.pages == 3


def test_a_window_without_records_is_done_after_one_call(zoom):
    writer, s, _engine = writer_for(backfill_plan())
    assert fetch(writer, s, 2) == [("done", "activity_logs", 2, None)]
    assert zoom.asked == [("activity_logs", s.plan.windows[2].from_date)]


@pytest.mark.parametrize("pages_before", [0, 2])
def test_a_window_that_raises_posts_exactly_one_failed_event(zoom, pages_before):
    writer, s, _engine = writer_for(backfill_plan())
    window = s.plan.windows[0]
    boom = ZoomError("activity_logs 2026-11-19: 500")
    key = ("activity_logs", window.from_date)
    zoom.pages[key] = [[sign_in(NOW - timedelta(days=3, hours=h))] for h in range(pages_before)]
    zoom.errors[key] = boom
    got = fetch(writer, s, 0)
    assert [e[0] for e in got] == ["records"] * pages_before + ["failed"]
    assert got[-1] == ("failed", "activity_logs", 0, boom)


class RecordingScheduler:
    """Hands out the given chains one page at a time and records every release."""

    def __init__(self, chains: list[Chain]) -> None:
        self.ready = list(chains)
        self.released: list[tuple[int, bool, float | None]] = []

    def take(self) -> Chain | None:
        return self.ready.pop(0) if self.ready else None

    def release(self, chain: Chain, *, finished: bool, seconds: float | None) -> None:
        self.released.append((chain.index, finished, seconds))
        if not finished:
            self.ready.append(chain)


def test_a_pages_time_goes_to_the_scheduler_without_the_rate_limiters_wait(zoom, monkeypatch):
    """Each page takes 2 s of which 0.5 s waiting for the rate limiter: the scheduler
    sizes the pages in flight from the 1.5 s of latency, and learns when a chain ends."""
    clock = {"now": 100.0, "waited": 10.0}
    monkeypatch.setattr(fetcher, "time", SimpleNamespace(monotonic=lambda: clock["now"]))
    original = zoom.__call__

    def slow_pages(*args, **limits):
        for page in original(*args, **limits):
            clock["now"] += 2.0
            clock["waited"] += 0.5
            yield page

    monkeypatch.setattr(fetcher, "fetch_pages", slow_pages)
    writer, s, _engine = writer_for(backfill_plan())
    fetching = fetcher_over(writer, s, 1)
    fetching.client = WaitingClient(lambda: clock["waited"])  # type: ignore[assignment]
    zoom.pages[("activity_logs", s.plan.windows[1].from_date)] = [[sign_in(NOW)], []]
    scheduler = RecordingScheduler([Chain(s.stream, 1, s.plan.windows[1], s.counters, 0)])
    fetching.scheduler = scheduler  # type: ignore[assignment]
    fetching._fetch()
    assert scheduler.released == [(1, False, 1.5), (1, True, 1.5)]


def test_the_scheduler_opens_windows_oldest_first_and_ends_when_all_are_released():
    s = StreamRun(ACTIVITY, backfill_plan())
    chains = [Chain(s.stream, i, w, s.counters, i) for i, w in enumerate(s.plan.windows)]
    scheduler = Scheduler(chains, max_in_flight=1, open_limit=256, rate=10.0)
    taken = []
    while (chain := scheduler.take()) is not None:
        taken.append(chain.index)
        scheduler.release(chain, finished=True, seconds=0.01)
    assert taken == list(range(len(chains)))  # every window once, oldest first
    assert scheduler.take() is None and scheduler.peak_in_flight == 1


def test_the_daily_limit_stops_the_run_but_does_not_fail_the_stream():
    writer, s, _engine = writer_for(backfill_plan())
    retry_at = NOW + timedelta(hours=13)
    writer._window_failed(s, s.plan.windows[2], DailyLimitReached("daily", retry_at=retry_at))
    assert writer.stop.is_set() and writer.daily_limit_retry_at == retry_at
    assert s.error is None and not s.aborted


def test_an_interrupt_in_a_worker_stops_the_run_as_an_interrupt():
    writer, s, _engine = writer_for(backfill_plan())
    writer._window_failed(s, s.plan.windows[2], KeyboardInterrupt())
    assert writer.stop.is_set() and writer.interrupted
    assert s.error is None and not s.aborted


def test_the_daily_limit_is_logged_once_however_many_windows_meet_it(caplog):
    writer, s, _engine = writer_for(backfill_plan())
    retry_at = NOW + timedelta(hours=13)
    expected = ["Zoom's daily rate limit reached: daily; run again after 2026-11-22T23:30:00Z"]
    with caplog.at_level(logging.WARNING, logger="zoom_ingest"):
        writer._window_failed(s, s.plan.windows[2], DailyLimitReached("daily", retry_at=retry_at))
        assert [r.getMessage() for r in caplog.records] == expected  # the first one says so
        writer._window_failed(s, s.plan.windows[3], DailyLimitReached("daily", retry_at=retry_at))
    assert [r.getMessage() for r in caplog.records] == expected  # and only the first


def test_a_failed_window_is_logged_with_its_name_and_only_unexpected_errors_get_a_traceback(
    caplog,
):
    writer, s, _engine = writer_for(backfill_plan())
    with caplog.at_level(logging.DEBUG, logger="zoom_ingest"):
        writer._window_failed(s, s.plan.windows[1], ValueError("bad page"))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "activity_logs 2026-11-20 failed: ValueError: bad page"),
        ("DEBUG", "unexpected error in activity_logs 2026-11-20"),
    ]
    assert isinstance(caplog.records[1].exc_info[1], ValueError)
    caplog.clear()
    other = StreamRun(ACTIVITY, s.plan)
    with caplog.at_level(logging.DEBUG, logger="zoom_ingest"):
        writer._window_failed(other, s.plan.windows[2], ZoomError("Zoom answered 500"))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "activity_logs 2026-11-21 failed: Zoom answered 500"),
    ]


def test_a_failed_window_stops_its_stream_only():
    writer, s, _engine = writer_for(backfill_plan())
    writer._window_failed(s, s.plan.windows[2], ZoomError("Zoom answered 500"))
    assert s.aborted and not writer.stop.is_set()
    assert s.error == "activity_logs 2026-11-21: Zoom answered 500"  # names the window


def test_a_failed_window_cancels_its_streams_later_windows_unasked(zoom):
    """The writer's `_window_failed` tells its fetcher: a window of the stream taken
    afterwards ends cancelled without a call (it could not move the cursor past the gap)."""
    writer, s, _engine = writer_for(backfill_plan())
    fetching = fetcher_over(writer, s, 3)
    zoom.pages[("activity_logs", s.plan.windows[3].from_date)] = [[sign_in(NOW)]]
    writer._window_failed(s, s.plan.windows[2], ZoomError("Zoom answered 500"))
    assert fetch_all(fetching) == [("cancelled", "activity_logs", 3, None)]
    assert zoom.asked == [] and s.counters.api_calls == 0


def test_bad_credentials_stop_every_stream():
    writer, s, _engine = writer_for(backfill_plan())
    writer._window_failed(s, s.plan.windows[2], ZoomAuthError("invalid_client"))
    assert s.aborted and writer.stop.is_set()


def test_an_unexpected_error_names_its_type_and_the_first_error_is_kept():
    writer, s, _engine = writer_for(backfill_plan())
    writer._window_failed(s, s.plan.windows[1], ValueError("bad page"))
    writer._window_failed(s, s.plan.windows[2], ZoomError("later"))
    assert s.error == "activity_logs 2026-11-20: ValueError: bad page"
    assert s.aborted and not writer.stop.is_set()


# -- the runs table -------------------------------------------------------------------------


def run_rows(engine: MemoryEngine) -> list[dict]:
    return engine.appended[RUNS.name]


def run_job(cfg: Settings, engine: MemoryEngine, now: datetime) -> RunSummary:
    """A whole `job.run` (fetch threads, committer) against the scripted Zoom, bounded."""
    result: list[RunSummary | BaseException] = []

    def target() -> None:
        try:
            result.append(job.run(cfg, engine, progress=False, client=FakeClient(), now=now))  # type: ignore[arg-type]
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the run did not finish"
    (out,) = result
    if isinstance(out, BaseException):
        raise out
    return out


def test_runs_rows_record_the_cursor_before_and_after_each_run(zoom):
    """The first run (a backfill) has no cursor before it and ends at its start time; the
    next one starts from there."""
    engine = MemoryEngine()
    day = datetime(2026, 11, 20, tzinfo=UTC)
    zoom.pages[("activity_logs", date(2026, 11, 20))] = [[sign_in(day + timedelta(hours=1))]]
    cfg = settings(streams=("activity_logs",))
    first = run_job(cfg, engine, NOW)
    later = NOW + timedelta(hours=1)
    second = run_job(cfg, engine, later)
    assert first.exit_code == second.exit_code == exit_codes.OK
    one, two = run_rows(engine)
    assert (one["mode"], one["cursor_before"], one["cursor_after"]) == ("backfill", None, NOW)
    assert (two["mode"], two["cursor_before"], two["cursor_after"]) == ("incremental", NOW, later)
    assert one["records_inserted"] == 1 and two["records_inserted"] == 0
    assert engine.cursors == {"activity_logs": later}


def test_a_stopped_run_reports_the_cursor_it_reached(zoom):
    """Windows 0–1 done, window 2 failed: the cursor after is what windows 0–1 cover."""
    engine = MemoryEngine()
    zoom.errors[("activity_logs", date(2026, 11, 21))] = ZoomError("Zoom answered 500")
    cfg = settings(streams=("activity_logs",))
    summary = run_job(cfg, engine, NOW)
    (row,) = run_rows(engine)
    (s,) = summary.streams
    assert row["status"] == "failed" and "Zoom answered 500" in row["error"]
    assert row["cursor_before"] is None
    assert row["cursor_after"] == s.plan.windows[1].covers_until == s.cursor
    assert zoom.asked[:3] == [("activity_logs", date(2026, 11, d)) for d in (19, 20, 21)]
    assert zoom.asked.count(("activity_logs", date(2026, 11, 21))) == 1
    # Windows 3-4 may have been fetched (and committed) before the failure was handled;
    # the cursor stays at the gap all the same.
    assert {0, 1} <= s.committed and 2 not in s.committed
    assert engine.cursors == {"activity_logs": s.cursor}


def test_a_whole_run_with_many_flushes_adds_every_tally_up(zoom):
    """Through the real fetch and committer threads, with a batch of 2 rows: several
    merges, and the runs row counts all of them."""
    engine = MemoryEngine()
    floor = datetime(2026, 11, 20, tzinfo=UTC)
    zoom.pages[("activity_logs", date(2026, 11, 19))] = [
        [sign_in(floor - timedelta(hours=h), f"early{h}") for h in (1, 2)],
        [sign_in(floor, "midnight")],
    ]
    zoom.pages[("activity_logs", date(2026, 11, 20))] = [
        [sign_in(floor + timedelta(hours=h), f"u{h}") for h in (6, 5)],
        [sign_in(floor + timedelta(hours=h), f"u{h}") for h in (4, 3)] + [{"time": "bad"}],
        [sign_in(floor + timedelta(hours=2), "u2")],
    ]
    cfg = settings(streams=("activity_logs",), batch_rows=2)
    summary = run_job(cfg, engine, NOW)
    (s,) = summary.streams
    (row,) = run_rows(engine)
    assert summary.exit_code == exit_codes.OK
    assert len([m for m in engine.merges if m[0] == ACTIVITY_LOGS.name]) >= 3
    assert s.fetched == row["records_fetched"] == 9
    assert s.inserted == row["records_inserted"] == 6 == len(engine.rows(ACTIVITY_LOGS))
    assert s.rejected == row["records_rejected"] == 1 and s.before_floor == 2
    assert s.committed == set(range(len(s.plan.windows))) and s.cursor == NOW
    assert row["cursor_after"] == NOW and engine.saved[-1] == ("activity_logs", NOW)
    assert [c for _, c in engine.saved] == sorted({c for _, c in engine.saved})  # forward only


def stream_run(**tallies: object) -> StreamRun:
    s = StreamRun(ACTIVITY, backfill_plan())
    for name, value in tallies.items():
        setattr(s, name, value)
    return s


def summary_of(
    *streams: StreamRun,
    retry_at: datetime | None = None,
    rate_limit: float = 0.0,
    calls_per_second: float | None = None,
) -> RunSummary:
    return RunSummary(
        rate_limit=rate_limit,
        calls_per_second=calls_per_second,
        run_id="run-1",
        account_id="acct",
        engine="memory",
        streams=list(streams),
        started_at=NOW,
        duration=1.0,
        daily_limit_retry_at=retry_at,
    )


@pytest.mark.usefixtures("host_time_zone")
def test_runs_row_has_every_tally_of_the_stream():
    before = datetime.now(UTC)
    s = stream_run(fetched=7, inserted=5, rejected=1, cursor=NOW - timedelta(hours=1))
    s.counters.add("pages", 3)
    s.counters.add("api_calls", 4)
    s.counters.add("retries", 2)
    s.counters.add("rate_limited", 1)
    s.committed = set(range(len(s.plan.windows)))
    s.finished = s.started + 2.5
    table = _runs_rows(summary_of(s), settings())
    assert table.schema.equals(RUNS.schema)
    (row,) = table.to_pylist()
    assert row == {
        **row,
        "run_id": "run-1",
        "account_id": "acct",
        "stream": "activity_logs",
        "mode": "backfill",
        "started_at": NOW,
        "window_start": datetime(2026, 11, 20, tzinfo=UTC),
        "window_end": NOW,
        "windows": 5,
        "pages": 3,
        "api_calls": 4,
        "records_fetched": 7,
        "records_inserted": 5,
        "records_rejected": 1,
        "retries": 2,
        "rate_limited": 1,
        "duration_seconds": pytest.approx(2.5),
        "cursor_before": None,
        "cursor_after": NOW - timedelta(hours=1),
        "status": "succeeded",
        "error": None,
    }
    assert before <= row["finished_at"] <= datetime.now(UTC)  # the UTC clock, not the host's
    assert row["rate_limit"] == settings().requests_per_second  # the summary has none
    assert row["calls_per_second"] is None


def test_runs_row_has_the_rate_limit_and_the_calls_per_second_achieved():
    s = stream_run()
    summary = summary_of(s, rate_limit=7.5, calls_per_second=6.25)
    (row,) = _runs_rows(summary, settings(requests_per_second=3.0)).to_pylist()
    assert (row["rate_limit"], row["calls_per_second"]) == (7.5, 6.25)
    (row,) = _runs_rows(summary_of(s), settings(requests_per_second=3.0)).to_pylist()
    assert (row["rate_limit"], row["calls_per_second"]) == (3.0, None)


def test_a_stream_still_running_reports_its_duration_so_far():
    s = stream_run()
    s.started -= 4.0
    (row,) = _runs_rows(summary_of(s), settings()).to_pylist()
    assert 4.0 <= row["duration_seconds"] < 60.0


def test_the_daily_limit_is_named_in_the_rows_of_streams_it_stopped():
    retry_at = NOW + timedelta(hours=13)
    done = stream_run()
    done.committed = set(range(len(done.plan.windows)))
    stopped = stream_run()
    failed = stream_run(error="activity_logs 2026-11-20: 500")
    rows = _runs_rows(summary_of(done, stopped, failed, retry_at=retry_at), settings())
    errors = [r["error"] for r in rows.to_pylist()]
    assert errors == [
        None,
        f"daily rate limit; retry after {format_time(retry_at)}",
        "activity_logs 2026-11-20: 500",
    ]
    assert [r["status"] for r in rows.to_pylist()] == ["succeeded", "stopped", "failed"]


def test_a_stopped_stream_without_the_daily_limit_has_no_error_text():
    (row,) = _runs_rows(summary_of(stream_run()), settings()).to_pylist()
    assert row["status"] == "stopped" and row["error"] is None


def test_the_scheduler_has_at_most_max_in_flight_pages_out():
    s = StreamRun(ACTIVITY, backfill_plan())
    chains = [Chain(s.stream, i, w, s.counters, i) for i, w in enumerate(s.plan.windows)]
    scheduler = Scheduler(chains, max_in_flight=2, open_limit=256, rate=10.0)
    first, second = scheduler.take(), scheduler.take()
    assert first is not None and second is not None
    got: list[Chain | None] = []
    waiter = threading.Thread(target=lambda: got.append(scheduler.take()), daemon=True)
    waiter.start()
    waiter.join(timeout=0.1)
    assert waiter.is_alive() and got == []  # a third page waits for one to come back
    scheduler.release(first, finished=True, seconds=None)
    waiter.join(timeout=5)
    assert not waiter.is_alive() and got[0] is not None and scheduler.peak_in_flight == 2
    another = threading.Thread(target=lambda: got.append(scheduler.take()), daemon=True)
    another.start()
    another.join(timeout=0.1)
    assert another.is_alive() and len(got) == 1  # one came back: one more went out, no more
    scheduler.release(second, finished=True, seconds=None)
    another.join(timeout=5)
    assert not another.is_alive() and got[1] is not None


def test_a_fetch_thread_waits_for_a_chain_in_flight_rather_than_ending():
    """One window, two fetch threads: while the first has its page out, the second waits
    (its next page may follow), and ends only once the chain has finished."""
    s = StreamRun(ACTIVITY, backfill_plan())
    (chain,) = [Chain(s.stream, 0, s.plan.windows[0], s.counters, 0)]
    scheduler = Scheduler([chain], max_in_flight=2, open_limit=256, rate=10.0)
    assert scheduler.take() is chain
    got: list[Chain | None] = []
    waiter = threading.Thread(target=lambda: got.append(scheduler.take()), daemon=True)
    waiter.start()
    waiter.join(timeout=0.1)
    assert waiter.is_alive() and got == []
    scheduler.release(chain, finished=False, seconds=0.2)  # more pages to come
    waiter.join(timeout=5)
    assert got == [chain]
    scheduler.release(chain, finished=True, seconds=0.2)
    assert scheduler.take() is None


def test_the_addresses_of_new_activity_rows_get_their_countries():
    writer, s, engine = writer_for(backfill_plan())
    s.batch.add([{**sign_in(datetime(2026, 11, 20, 1, tzinfo=UTC)), "ip_address": "8.8.8.8"}])
    flush(writer, s)
    (row,) = engine.rows(job.IP_COUNTRIES)
    assert row["ip_address"] == "8.8.8.8"
    assert [name for name, _ in engine.merges] == [ACTIVITY_LOGS.name, job.IP_COUNTRIES.name]
    s.batch.add([sign_in(datetime(2026, 11, 20, 2, tzinfo=UTC))])  # no address: no merge
    flush(writer, s)
    assert [name for name, _ in engine.merges][2:] == [ACTIVITY_LOGS.name]


def test_the_pages_in_flight_follow_the_latency_seen():
    """Little's law: rate × seconds per page (a moving average, weight 0.1 on the newest
    page) × IN_FLIGHT_SLACK, plus one; `max_in_flight` until a page has been timed."""
    assert schedule.IN_FLIGHT_SLACK == 1.3
    s = StreamRun(ACTIVITY, backfill_plan())
    chains = [Chain(s.stream, i, w, s.counters, i) for i, w in enumerate(s.plan.windows)]
    scheduler = Scheduler(chains, max_in_flight=48, open_limit=256, rate=10.0)
    assert scheduler.target() == 48
    chain = scheduler.take()
    assert chain is not None
    scheduler.release(chain, finished=False, seconds=None)  # an untimed page: no change
    assert scheduler.target() == 48
    chain = scheduler.take()
    scheduler.release(chain, finished=False, seconds=2.0)  # type: ignore[arg-type]
    assert scheduler.target() == 27  # ceil(10 × 2.0 × 1.3) + 1
    chain = scheduler.take()
    scheduler.release(chain, finished=False, seconds=0.5)  # type: ignore[arg-type]
    assert scheduler.target() == 26  # ceil(10 × (0.9 × 2.0 + 0.1 × 0.5) × 1.3) + 1


def test_a_finished_chain_no_longer_counts_as_work_left():
    s = StreamRun(ACTIVITY, backfill_plan())
    (chain,) = [Chain(s.stream, 0, s.plan.windows[0], s.counters, 0)]
    scheduler = Scheduler([chain], max_in_flight=1, open_limit=256, rate=10.0)
    assert scheduler.take() is chain
    chain.remaining = 1000.0  # far more than END_GAME_SECONDS of calls
    scheduler.release(chain, finished=False, seconds=0.1)
    assert not scheduler.end_game()
    assert scheduler.take() is chain
    scheduler.release(chain, finished=True, seconds=0.1)
    assert scheduler.end_game() and scheduler.take() is None


# -- what the mutation run found untested (docs/mutation.md) ---------------------------------


def test_a_batchs_rejects_are_stored_under_the_run_the_account_and_the_stream():
    writer, s, engine = writer_for(backfill_plan())
    record = {"email": "no-time@example.com"}
    s.batch.add([record])
    flush(writer, s)
    (row,) = engine.rows(REJECTS)
    assert (row["run_id"], row["account_id"], row["stream"]) == ("run-1", "acct", "activity_logs")
    assert row["reject_id"] == reject_id("activity_logs", raw_json(record))
    assert row["raw_json"] == raw_json(record)


def test_a_window_not_proven_complete_is_named_with_its_dates_and_why(caplog):
    """The runs row's `failed_window` says which dates and why, and the log says it was
    not proven complete (not merely "failed")."""
    writer, s, _engine = writer_for(backfill_plan())
    window = s.plan.windows[1]
    exc = IncompleteAnswer("Zoom's pages are out of order", reason="records out of order")
    with caplog.at_level(logging.DEBUG, logger="zoom_ingest"):
        writer._window_failed(s, window, exc)
    assert s.failed_window == "2026-11-20..2026-11-20: records out of order"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            "activity_logs 2026-11-20 could not be proven complete: Zoom's pages are out of order",
        ),
    ]
    assert s.aborted and s.error == "activity_logs 2026-11-20: Zoom's pages are out of order"
    (row,) = _runs_rows(summary_of(s), settings()).to_pylist()
    assert (row["status"], row["failed_window"]) == ("incomplete", s.failed_window)


def test_a_running_row_has_no_end_and_no_outcome_yet():
    """The row written before the first call: the run and its plan, no end, no cursor
    after, status `running` (whatever the stream's tallies say so far)."""
    s = stream_run(cursor=NOW - timedelta(hours=1))
    s.committed = set(range(len(s.plan.windows)))
    s.finished = s.started + 2.5
    (row,) = _runs_rows(summary_of(s), settings(), running=True).to_pylist()
    assert row["status"] == "running" and row["started_at"] == NOW
    assert row["finished_at"] is None and row["duration_seconds"] is None
    assert row["cursor_after"] is None and row["cursor_before"] == s.plan.cursor_before


def test_runs_rows_are_the_rows_of_the_end_unless_the_run_is_said_running():
    s = stream_run()
    s.committed = set(range(len(s.plan.windows)))
    (row,) = runs_rows(
        [s],
        run_id="run-1",
        account_id="acct",
        started_at=NOW,
        rate_limit=10.0,
        calls_per_second=None,
        daily_limit_retry_at=None,
    ).to_pylist()
    assert row["status"] == "succeeded" and row["finished_at"] is not None


def test_a_pages_records_from_outside_its_window_go_on_with_its_records(monkeypatch):
    stray = Stray("outside the window", sign_in(NOW + timedelta(days=1)))

    def pages(*args, **limits) -> Iterator[Page]:
        yield Page([sign_in(NOW)], "", None, None, strays=(stray,))

    monkeypatch.setattr(fetcher, "fetch_pages", pages)
    writer, s, _engine = writer_for(backfill_plan())
    assert fetch_events(fetcher_over(writer, s, 1)) == [
        fetcher.Records("activity_logs", 1, [sign_in(NOW)], (stray,)),
        fetcher.WindowDone("activity_logs", 1),
    ]


def test_a_page_that_ends_its_window_unproven_posts_its_records_then_the_failure(monkeypatch):
    """The window ends failed after its records (which may be stored), and the fetch
    thread goes on to the next window."""
    failure = IncompleteAnswer("Zoom's pages are out of order", reason="records out of order")
    windows = backfill_plan().windows

    def pages(client, stream, window, *args, **limits) -> Iterator[Page]:
        if window == windows[1]:  # a token to follow, but the window ends here unproven
            yield Page([sign_in(NOW)], "token-2", None, None, failure=failure)
        else:
            yield Page([], "", None, None)

    monkeypatch.setattr(fetcher, "fetch_pages", pages)
    writer, s, _engine = writer_for(backfill_plan())
    assert fetch_events(fetcher_over(writer, s, 1, 2)) == [
        fetcher.Records("activity_logs", 1, [sign_in(NOW)]),
        fetcher.WindowFailed("activity_logs", 1, failure),
        fetcher.WindowDone("activity_logs", 2),
    ]


def first_page(scheduler: Scheduler, chain: Chain, records: int, total: int | None) -> None:
    """`chain`'s page is in (`records` of a window of `total`): observed, then released."""
    chain.pages = iter(())  # paging has begun
    chain.observe(Page([sign_in(NOW)] * records, "more", None, None, total_records=total))
    scheduler.release(chain, finished=False, seconds=None)


def test_the_opening_horizon_learns_a_windows_length_from_its_first_page_only():
    """`_should_open` counts a window not yet paged as long as the windows' first pages
    said theirs were (pages left + the one in): one estimate a window, from its first
    page, when that page brought records."""
    s = StreamRun(ACTIVITY, backfill_plan())
    window = s.plan.windows[0]
    scheduler = Scheduler(
        [Chain(s.stream, 0, window, s.counters, 0)], max_in_flight=1, open_limit=8, rate=10.0
    )
    chain = scheduler.take()
    assert chain is not None
    first_page(scheduler, chain, 3, 3 + 2 * schedule.PAGE_SIZE)  # two pages left
    assert scheduler._first_pages == [3.0]
    assert scheduler.take() is chain
    first_page(scheduler, chain, 3, 3 + 2 * schedule.PAGE_SIZE)  # its second page: no more
    assert scheduler._first_pages == [3.0]
    empty = Scheduler(
        [Chain(s.stream, 0, window, s.counters, 0)], max_in_flight=1, open_limit=8, rate=10.0
    )
    chain = empty.take()
    assert chain is not None
    first_page(empty, chain, 0, None)  # a first page without records says nothing
    assert empty._first_pages == []


def test_the_first_page_estimates_kept_are_bounded():
    s = StreamRun(ACTIVITY, backfill_plan())
    window = s.plan.windows[0]
    chains = [Chain(s.stream, n, window, s.counters, n) for n in range(1001)]
    scheduler = Scheduler(chains, max_in_flight=1, open_limit=4, rate=10.0)
    while (chain := scheduler.take()) is not None:
        chain.pages = iter(())
        chain.observe(Page([sign_in(NOW)], "", None, None, total_records=1))
        scheduler.release(chain, finished=True, seconds=None)
    assert scheduler._first_pages == [1.0] * 1000  # the first 1000 windows' estimates


def test_the_oldest_open_window_goes_first_only_while_windows_wait_beyond_it():
    """The span's holder (the oldest open window, while newer ones wait on it) pages before
    a window with a larger share left; with none waiting, the larger share goes first."""
    s = StreamRun(ACTIVITY, backfill_plan())
    window = s.plan.windows[0]

    def started(windows: int, open_limit: int) -> tuple[Scheduler, list[Chain]]:
        chains = [Chain(s.stream, n, window, s.counters, n) for n in range(windows)]
        for chain, share in zip(chains, (0.1, 0.9), strict=False):
            chain.pages = iter(())  # its first page is in
            chain.remaining, chain.fraction_left = 10 * share, share
            chain.last_page_at = time.monotonic()  # not stale
        return Scheduler(chains, max_in_flight=1, open_limit=open_limit, rate=10.0), chains

    scheduler, chains = started(3, open_limit=2)  # window 2 waits on window 0
    assert scheduler.take() is chains[0]
    scheduler, chains = started(2, open_limit=2)  # none waits
    assert scheduler.take() is chains[1]
