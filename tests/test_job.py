"""End to end: the job against the simulator over real sockets, into local Delta tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from support.sim_settings import simulator_settings
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import INSERT_NEW, LocalEngine
from zoom_ingest.job import run
from zoom_ingest.normalise import Batch
from zoom_ingest.settings import Settings
from zoom_ingest.simulator import Fault, Simulator
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    CHECKPOINTS,
    LOG_TABLES,
    OPERATION_LOGS,
    REJECTS,
    RUNS,
    UTC,
)

DAYS = 12


def settings_for(sim: Simulator, **changes: object) -> Settings:
    defaults: dict[str, object] = {
        "requests_per_second": 200,
        "concurrency": 6,
        "timeout": 5,
        "max_retries": 4,
    }
    return simulator_settings(sim, **{**defaults, **changes})


def expected_ids(sim: Simulator, stream: str, start: datetime | None = None) -> set[str]:
    """lw_ids of the simulator's ground truth, computed by the documented normaliser."""
    batch = Batch(LOG_TABLES[stream])
    batch.add(sim.ground_truth(stream, start=start))
    assert not batch.rejects
    return set(batch.rows)


def table_ids(engine: LocalEngine, stream: str) -> list[str]:
    return engine.read_table(LOG_TABLES[stream])["lw_id"].to_pylist()


def assert_equals_ground_truth(engine: LocalEngine, sim: Simulator, start: datetime) -> None:
    for stream in LOG_TABLES:
        ids = table_ids(engine, stream)
        assert len(ids) == len(set(ids)), f"{stream}: duplicate lw_id"
        assert set(ids) == expected_ids(sim, stream, start), f"{stream}: differs from Zoom"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=11, days=DAYS, activity_per_day=300, operation_per_day=60) as s:
        yield s


def backfill_start(days: int = DAYS) -> datetime:
    return datetime.combine(
        datetime.now(UTC).date() - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC
    )


def test_backfill_equals_ground_truth_and_second_run_adds_nothing(sim, tmp_path):
    engine = LocalEngine(tmp_path)
    start = backfill_start()
    settings = settings_for(sim, backfill_start=start.date())

    first = run(settings, engine, progress=False)
    assert first.exit_code == exit_codes.OK, first.lines()
    assert_equals_ground_truth(engine, sim, start)
    inserted = {s.name: s.inserted for s in first.streams}
    assert inserted["activity_logs"] == len(expected_ids(sim, "activity_logs", start))
    assert all(s.status == "succeeded" for s in first.streams)
    # The job merges under its run lock, so by appends: no MERGE in the log tables.
    # Each such append says in its commit info what merge it stands for.
    for spec in LOG_TABLES.values():
        history = DeltaTable(engine.table_path(spec)).history()
        operations = {c["operation"] for c in history}
        assert "WRITE" in operations and "MERGE" not in operations, operations
        summaries = [c[INSERT_NEW] for c in history if INSERT_NEW in c]
        assert sum(s["num_target_rows_inserted"] for s in summaries) == inserted[spec.name]
        assert all("time" in s["predicate"] for s in summaries), summaries

    sim.stats.reset()
    second = run(settings, engine, progress=False)
    assert second.exit_code == exit_codes.OK
    assert [s.inserted for s in second.streams] == [0, 0]
    assert all(s.plan.mode == "incremental" for s in second.streams)
    # One short window per stream, stopped after its first newest-first page.
    assert sim.stats.calls == 2, sim.stats.requests
    assert_equals_ground_truth(engine, sim, start)

    runs = engine.read_table(RUNS).to_pylist()
    assert len(runs) == 4
    assert {r["status"] for r in runs} == {"succeeded"}
    last = [r for r in runs if r["run_id"] == second.run_id]
    assert sum(r["api_calls"] for r in last) == 2


def test_new_records_are_picked_up_incrementally(sim, tmp_path):
    engine = LocalEngine(tmp_path)
    start = backfill_start()
    settings = settings_for(sim, backfill_start=start.date())
    assert run(settings, engine, progress=False).exit_code == exit_codes.OK

    now = datetime.now(UTC).replace(microsecond=0)
    fresh = [
        {
            "email": f"new{i}@example.com",
            "time": (now - timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "type": "Sign in",
            "ip_address": "203.0.113.9",
            "client_type": "Mac",
            "version": "6.2.5 (41233)",
        }
        for i in range(5)
    ]
    sim.add_records("activity_logs", fresh)
    summary = run(settings, engine, progress=False)
    assert summary.streams[0].inserted == 5
    assert_equals_ground_truth(engine, sim, start)


def test_late_records_caught_by_lookback_and_by_reconcile(sim, tmp_path):
    engine = LocalEngine(tmp_path)
    start = backfill_start()
    settings = settings_for(sim, backfill_start=start.date(), lookback=timedelta(hours=2))
    assert run(settings, engine, progress=False).exit_code == exit_codes.OK

    now = datetime.now(UTC).replace(microsecond=0)

    def record(email: str, age: timedelta) -> dict[str, str]:
        return {
            "time": (now - age).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "operator": email,
            "category_type": "Role",
            "action": "Update",
            "operation_detail": f"Change Role  - {email}: from Member to Admin",
        }

    within_lookback = record("recent@example.com", timedelta(minutes=90))
    older = record("old@example.com", timedelta(days=2, hours=3))
    sim.add_records("operation_logs", [within_lookback, older])

    incremental = run(settings, engine, progress=False)
    assert incremental.streams[1].inserted == 1  # inside the lookback: caught
    operators = set(engine.read_table(OPERATION_LOGS)["operator"].to_pylist())
    assert "recent@example.com" in operators and "old@example.com" not in operators

    reconcile = run(
        settings.with_changes(mode="reconcile", reconcile_days=3), engine, progress=False
    )
    assert reconcile.exit_code == exit_codes.OK
    assert reconcile.streams[1].plan.mode == "reconcile"
    assert reconcile.streams[1].inserted == 1
    assert_equals_ground_truth(engine, sim, start)


@pytest.mark.parametrize("offset", [14, -12])
def test_account_time_zone_never_loses_boundary_records(tmp_path, offset):
    with Simulator(
        seed=5, days=6, activity_per_day=400, operation_per_day=50, account_utc_offset_hours=offset
    ) as sim:
        now = datetime.now(UTC).replace(microsecond=0)
        midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
        edge = [
            {
                "email": f"edge{i}@example.com",
                "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "type": "Sign out",
            }
            for i, t in enumerate(
                [
                    midnight - timedelta(days=3, seconds=1),
                    midnight - timedelta(days=3),
                    midnight - timedelta(days=1, seconds=1),
                ]
            )
        ]
        sim.add_records("activity_logs", edge)
        engine = LocalEngine(tmp_path)
        start = backfill_start(5)
        summary = run(settings_for(sim, backfill_start=start.date()), engine, progress=False)
        assert summary.exit_code == exit_codes.OK, summary.lines()
        assert_equals_ground_truth(engine, sim, start)
        emails = set(engine.read_table(ACTIVITY_LOGS)["email"].to_pylist())
        assert {r["email"] for r in edge} <= emails


def test_daily_limit_stops_cleanly_and_next_run_finishes(tmp_path):
    with Simulator(seed=3, days=DAYS, activity_per_day=600, operation_per_day=100) as sim:
        engine = LocalEngine(tmp_path)
        start = backfill_start()
        settings = settings_for(sim, backfill_start=start.date(), concurrency=2)
        sim.faults.inject(Fault("daily_429", count=None, after_calls=9))
        stopped = run(settings, engine, progress=False)
        assert stopped.exit_code == exit_codes.DAILY_LIMIT
        assert stopped.daily_limit_retry_at is not None
        assert stopped.daily_limit_retry_at > datetime.now(UTC)
        assert any("daily rate limit" in line for line in stopped.lines())
        # The cursor never claims more than the table holds.
        for cp in engine.read_table(CHECKPOINTS).to_pylist():
            held = engine.read_table(LOG_TABLES[cp["stream"]])
            wanted = expected_ids(sim, cp["stream"], start)
            below = {
                i
                for i, t in zip(held["lw_id"].to_pylist(), held["time"].to_pylist(), strict=True)
                if t < cp["cursor"]
            }
            truth_below = {
                i for i, r in _ids_with_times(sim, cp["stream"], start) if r < cp["cursor"]
            }
            assert truth_below <= below and below <= wanted

        sim.faults.clear()
        finished = run(settings, engine, progress=False)
        assert finished.exit_code == exit_codes.OK, finished.lines()
        assert_equals_ground_truth(engine, sim, start)


def test_a_backfill_stopped_by_the_daily_limit_then_a_short_reconcile_loses_nothing(tmp_path):
    """The reported loss: a 10-day backfill stopped by the daily limit after a few days,
    then `--mode reconcile --reconcile-days 3` and two ordinary runs. The reconcile used
    to plan from today − 3 days and move the cursor past the days it never read."""
    with Simulator(seed=5, days=10, activity_per_day=400, operation_per_day=60) as sim:
        engine = LocalEngine(tmp_path)
        start = backfill_start(10)
        settings = settings_for(sim, backfill_start=start.date(), concurrency=1, window_days=1)
        sim.faults.inject(Fault("daily_429", count=None, after_calls=6))
        stopped = run(settings, engine, progress=False)
        assert stopped.exit_code == exit_codes.DAILY_LIMIT, stopped.lines()
        sim.faults.clear()  # the quota resets
        reconcile = run(
            settings.with_changes(mode="reconcile", reconcile_days=3), engine, progress=False
        )
        assert reconcile.exit_code == exit_codes.OK, reconcile.lines()
        for s in reconcile.streams:
            assert s.plan.start <= s.plan.cursor_before  # it re-read from the cursor
        for _ in range(2):
            assert run(settings, engine, progress=False).exit_code == exit_codes.OK
        assert_equals_ground_truth(engine, sim, start)


def _ids_with_times(sim: Simulator, stream: str, start: datetime) -> list[tuple[str, datetime]]:
    batch = Batch(LOG_TABLES[stream])
    batch.add(sim.ground_truth(stream, start=start))
    return [(i, row["time"]) for i, row in batch.rows.items()]  # type: ignore[misc]


class FailingEngine(LocalEngine):
    """Crashes on the n-th merge into a log table, as a killed process would."""

    def __init__(self, path, fail_on: int) -> None:
        super().__init__(path)
        self.merges = 0
        self.fail_on = fail_on

    def merge_new(self, spec, batch: pa.Table) -> int:
        if spec.name in LOG_TABLES:
            self.merges += 1
            if self.merges == self.fail_on:
                raise RuntimeError("disk on fire")
        return super().merge_new(spec, batch)


def test_crash_mid_backfill_then_rerun_has_no_gap_and_no_duplicate(sim, tmp_path):
    start = backfill_start()
    settings = settings_for(sim, backfill_start=start.date(), batch_rows=500, concurrency=2)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run(settings, FailingEngine(tmp_path, fail_on=4), progress=False)
    engine = LocalEngine(tmp_path)
    partial = {s: len(table_ids(engine, s)) for s in LOG_TABLES}
    assert sum(partial.values()) > 0
    crashed = engine.read_table(RUNS).to_pylist()
    assert {r["status"] for r in crashed} == {"failed"}
    assert all("disk on fire" in r["error"] for r in crashed)
    summary = run(settings, engine, progress=False)
    assert summary.exit_code == exit_codes.OK, summary.lines()
    assert_equals_ground_truth(engine, sim, start)


def test_missing_scope_fails_that_stream_only(tmp_path):
    with Simulator(
        seed=2,
        days=4,
        activity_per_day=50,
        operation_per_day=20,
        scopes=["report:read:user_activities:admin"],
    ) as sim:
        engine = LocalEngine(tmp_path)
        start = backfill_start(4)
        summary = run(settings_for(sim, backfill_start=start.date()), engine, progress=False)
        assert summary.exit_code == exit_codes.STREAM_FAILED
        by_name = {s.name: s for s in summary.streams}
        assert by_name["activity_logs"].status == "succeeded"
        assert by_name["operation_logs"].status == "failed"
        assert "report:read:operation_logs:admin" in by_name["operation_logs"].error
        assert set(table_ids(engine, "activity_logs")) == expected_ids(sim, "activity_logs", start)
        checkpoints = {r["stream"] for r in engine.read_table(CHECKPOINTS).to_pylist()}
        assert checkpoints == {"activity_logs"}
        failed = [r for r in engine.read_table(RUNS).to_pylist() if r["status"] == "failed"]
        assert len(failed) == 1 and "4711" in failed[0]["error"]


def test_bad_records_go_to_rejects_and_the_batch_goes_on(sim, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    good = {
        "email": "fine@example.com",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "type": "Sign in",
    }
    bad = [
        {"email": "no-time@example.com", "type": "Sign in"},
        {"email": "bad-time@example.com", "time": "yesterday", "type": "Sign in"},
        {"email": 42, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "type": "Sign in"},
    ]
    sim.add_records("activity_logs", [good, *bad])
    engine = LocalEngine(tmp_path)
    start = backfill_start()
    summary = run(settings_for(sim, backfill_start=start.date()), engine, progress=False)
    assert summary.exit_code == exit_codes.OK
    assert summary.streams[0].rejected == 3
    assert "fine@example.com" in engine.read_table(ACTIVITY_LOGS)["email"].to_pylist()
    rejects = engine.read_table(REJECTS).to_pylist()
    assert len(rejects) == 3
    reasons = " | ".join(r["reason"] for r in rejects)
    assert "time" in reasons and "email" in reasons
    assert any('"bad-time@example.com"' in r["raw_json"] for r in rejects)
    # Fetched again, the same bad records are not stored twice.
    run(settings_for(sim, mode="reconcile", reconcile_days=1), engine, progress=False)
    assert engine.read_table(REJECTS).num_rows == 3


def test_backfill_without_start_takes_everything_zoom_holds(tmp_path):
    with Simulator(seed=9, days=200, activity_per_day=3, operation_per_day=1) as sim:
        engine = LocalEngine(tmp_path)
        summary = run(settings_for(sim, window_days=14), engine, progress=False)
        assert summary.exit_code == exit_codes.OK, summary.lines()
        # Zoom keeps six months; the simulator holds 200 days but serves only those.
        oldest = min(engine.read_table(ACTIVITY_LOGS)["time"].to_pylist())
        assert oldest >= datetime.now(UTC) - timedelta(days=186)
        assert oldest <= datetime.now(UTC) - timedelta(days=175)
        assert not any(s.error for s in summary.streams)
