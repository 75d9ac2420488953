"""The Spark engine on real Delta Lake: the job end to end, both engines on one warehouse,
liquid clustering, time zones.

Everything here needs the Delta jars (`make test` fetches them into .cache/jars); without
them each test skips saying how to get them, and under CI=true fails instead. All tests
share the process's one SparkSession (conftest.py's `delta_spark`); the tables are
path-based, `delta.`<warehouse>/<table>``, the layout `zoom-ingest run --engine spark`
writes and the local engine reads.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")

from click.testing import CliRunner
from deltalake import DeltaTable

from support import soak  # the soak harness: process runner, kills, ground truth
from support.sim_settings import simulator_settings
from zoom_ingest import cli, exit_codes
from zoom_ingest.engines import LocalEngine, UnsupportedTable
from zoom_ingest.engines.spark import SparkEngine, table_differences
from zoom_ingest.engines.spark_session import DELTA_JARS_ENV
from zoom_ingest.job import RunSummary, run
from zoom_ingest.normalise import Batch
from zoom_ingest.settings import Settings
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    ALL_TABLES,
    CHECKPOINTS,
    LOG_TABLES,
    OPERATION_LOGS,
    RUNS,
    UTC,
    format_time,
)

DAYS = 4


def settings_for(sim: Simulator, start: datetime, **changes: object) -> Settings:
    options: dict[str, object] = {
        "backfill_start": start.date(),
        "requests_per_second": 300,
        "concurrency": 4,
        "timeout": 5,
        "max_retries": 4,
    }
    return simulator_settings(sim, **{**options, **changes})


def backfill_start(days: int = DAYS) -> datetime:
    day = datetime.now(UTC).date() - timedelta(days=days - 2)
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def expected_ids(sim: Simulator, stream: str, start: datetime) -> set[str]:
    batch = Batch(LOG_TABLES[stream])
    batch.add(sim.ground_truth(stream, start=start))
    assert not batch.rejects
    return set(batch.rows)


def assert_equals_truth(warehouse: Path, sim: Simulator, start: datetime) -> soak.Comparison:
    """Read back with the local engine (delta-rs), row by row against the simulator."""
    state = soak.compare(warehouse, sim, start)
    assert state.equal, state.describe()
    assert state.rows == state.expected > 0
    return state


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=61, days=DAYS, activity_per_day=120, operation_per_day=30) as s:
        yield s


@pytest.fixture
def spark(delta_spark: Any) -> Any:
    return delta_spark


def spark_engine(spark: Any, warehouse: Path, **options: Any) -> SparkEngine:
    return SparkEngine(spark, warehouse=warehouse, conflict_backoff_seconds=0.05, **options)


def history(spark: Any, engine: SparkEngine, spec: Any) -> list[dict[str, Any]]:
    rows = spark.sql(f"DESCRIBE HISTORY {engine.table_name(spec)}").collect()
    return [row.asDict() for row in rows]


# -- the job end to end ------------------------------------------------------------------------


def test_backfill_equals_the_truth_a_second_run_adds_nothing_and_runs_record_merge_counts(
    sim: Simulator, spark: Any, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    engine = spark_engine(spark, warehouse)
    start = backfill_start()
    settings = settings_for(sim, start, batch_rows=100)  # several merges per table

    first = run(settings, engine, progress=False)
    assert first.exit_code == exit_codes.OK, first.lines()
    assert_equals_truth(warehouse, sim, start)
    inserted = {s.name: s.inserted for s in first.streams}
    for stream in LOG_TABLES:
        assert inserted[stream] == len(expected_ids(sim, stream, start)), stream

    second = run(settings, engine, progress=False)
    assert second.exit_code == exit_codes.OK, second.lines()
    assert [s.inserted for s in second.streams] == [0, 0]
    assert all(s.plan.mode == "incremental" for s in second.streams)
    assert_equals_truth(warehouse, sim, start)

    # What MERGE reported to Delta is what zoom_ingest_runs recorded, run by run.
    runs = engine.read_table(RUNS).to_pylist()
    assert len(runs) == 4 and {r["status"] for r in runs} == {"succeeded"}
    for spec in LOG_TABLES.values():
        merges = [h for h in history(spark, engine, spec) if h["operation"] == "MERGE"]
        # batch_rows=100: activity_logs (~290 rows) takes several merges.
        assert len(merges) >= (2 if spec is ACTIVITY_LOGS else 1), spec.name
        merged = sum(int(h["operationMetrics"]["numTargetRowsInserted"]) for h in merges)
        recorded = sum(r["records_inserted"] for r in runs if r["stream"] == spec.name)
        assert merged == recorded == inserted[spec.name], spec.name
    cursors = engine.read_checkpoints(sim.account_id)
    assert set(cursors) == set(LOG_TABLES)


def test_late_records_are_caught_by_lookback_and_by_reconcile(
    sim: Simulator, spark: Any, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    engine = spark_engine(spark, warehouse)
    start = backfill_start()
    settings = settings_for(sim, start, lookback=timedelta(hours=2))
    assert run(settings, engine, progress=False).exit_code == exit_codes.OK

    now = datetime.now(UTC).replace(microsecond=0)

    def record(email: str, age: timedelta) -> dict[str, str]:
        # Never before the backfill's floor (records older than it are not stored): just
        # after midnight UTC, two days and three hours ago is the day before it.
        at = max(now - age, start + timedelta(hours=1))
        return {
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "operator": email,
            "category_type": "Role",
            "action": "Update",
            "operation_detail": f"Change Role  - {email}: from Member to Admin",
        }

    sim.add_records(
        "operation_logs",
        [
            record("recent@example.com", timedelta(minutes=90)),
            record("old@example.com", timedelta(days=2, hours=3)),
        ],
    )
    incremental = run(settings, engine, progress=False)
    assert {s.name: s.inserted for s in incremental.streams}["operation_logs"] == 1
    operators = set(engine.read_table(OPERATION_LOGS)["operator"].to_pylist())
    assert "recent@example.com" in operators and "old@example.com" not in operators

    reconcile = run(
        settings.with_changes(mode="reconcile", reconcile_days=3), engine, progress=False
    )
    assert reconcile.exit_code == exit_codes.OK
    assert {s.name: s.inserted for s in reconcile.streams}["operation_logs"] == 1
    assert_equals_truth(warehouse, sim, start)


class UnlockedSparkEngine(SparkEngine):
    """No run lock: two whole jobs write the same tables at once, as two Databricks jobs
    (or a job and a notebook) would; only Delta's optimistic commits keep them apart."""

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[None]:
        yield


def test_two_jobs_at_once_on_the_same_tables_neither_duplicate_nor_lose_a_checkpoint(
    spark: Any, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    start = backfill_start()
    with Simulator(
        seed=62, days=DAYS, activity_per_day=200, operation_per_day=40, latency=0.01
    ) as sim:
        settings = settings_for(sim, start, concurrency=2, batch_rows=200)
        spark_engine(spark, warehouse).ensure_tables()
        barrier = threading.Barrier(2)
        summaries: list[RunSummary] = []
        errors: list[BaseException] = []
        engines: list[SparkEngine] = []

        def one_job(index: int) -> None:
            engine = UnlockedSparkEngine(
                spark, warehouse=warehouse, conflict_backoff_seconds=0.05, commit_attempts=40
            )
            # Each its own lease: the account's lease would otherwise turn one away (busy),
            # and this is about two writers of the same tables at once.
            leases = SparkEngine(spark, warehouse=tmp_path / f"leases-{index}")
            engines.append(engine)
            barrier.wait(timeout=60)
            try:
                summaries.append(run(settings, engine, progress=False, lease_engine=leases))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one_job, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not errors, errors
        assert [s.exit_code for s in summaries] == [exit_codes.OK, exit_codes.OK], [
            s.lines() for s in summaries
        ]
        assert_equals_truth(warehouse, sim, start)
        local = LocalEngine(warehouse)
        checkpoints = local.read_table(CHECKPOINTS).to_pylist()
        assert sorted(r["stream"] for r in checkpoints) == sorted(LOG_TABLES)
        assert local.read_table(RUNS).num_rows == 4
        for name, spec in LOG_TABLES.items():
            inserted = sum(
                s.inserted for summary in summaries for s in summary.streams if s.name == name
            )
            assert inserted == local.read_table(spec).num_rows, name


def test_sigkill_mid_run_then_a_rerun_gives_exactly_the_truth(tmp_path: Path) -> None:
    """`zoom-ingest run --engine spark` as a process, SIGKILLed while it fetches and merges."""
    warehouse = tmp_path / "wh"
    start = backfill_start()
    jars = os.environ.get(DELTA_JARS_ENV)
    with Simulator(
        seed=63,
        days=DAYS,
        activity_per_day=200,
        operation_per_day=40,
        latency=0.05,
        client_secret=soak.FAKE_SECRET,
    ) as sim:
        runner = soak.Runner(sim, tmp_path)
        args = soak.run_args(
            warehouse,
            start.date(),
            "--engine",
            "spark",
            "--batch-rows",
            "150",
            "--concurrency",
            "1",
            "--requests-per-second",
            "300",
        )
        env = soak.cli_env(sim, **({DELTA_JARS_ENV: jars} if jars else {}))
        result = soak.kill_and_resume(
            runner,
            args,
            env,
            kills=2,
            rng=random.Random(8),
            max_calls=12,  # a run takes ~25 calls, 50 ms each, after the JVM starts
            max_delay=0.5,
            floor=start,
            warehouse=warehouse,
        )
        text = "\n".join(p.describe() for p in result.kills)
        print(text)
        assert not result.finished_early, text
        assert any(p.calls > 0 for p in result.kills), text  # killed mid-fetch
        assert all(p.consistent for p in result.kills), text
        assert result.final.returncode == soak.EXIT_OK, result.final.output[-2000:]
        assert result.comparison.equal, result.comparison.describe()
        assert result.comparison.checkpoint_rows == 2
        assert soak.leaks(sim, [a.output for a in runner.attempts], None) == []


# -- both engines, one warehouse ---------------------------------------------------------------


def test_tables_the_local_engine_wrote_are_read_and_appended_to_by_spark_and_back(
    sim: Simulator, spark: Any, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    start = backfill_start()
    local = LocalEngine(warehouse)
    assert run(settings_for(sim, start), local, progress=False).exit_code == exit_codes.OK

    engine = spark_engine(spark, warehouse)
    for spec in ALL_TABLES.values():  # Spark reads what delta-rs wrote, exactly
        got, want = engine.read_table(spec), local.read_table(spec)
        key = [(k, "ascending") for k in spec.key]
        assert got.sort_by(key).equals(want.sort_by(key)), spec.name
    assert engine.read_checkpoints(sim.account_id) == local.read_checkpoints(sim.account_id)

    sim.add_records("activity_logs", soak.recent_records(sim, 40, timedelta(minutes=30), 3))
    second = run(settings_for(sim, start), engine, progress=False)  # Spark appends
    assert second.exit_code == exit_codes.OK, second.lines()
    assert {s.name: s.inserted for s in second.streams}["activity_logs"] == 40
    assert_equals_truth(warehouse, sim, start)
    assert local.read_table(RUNS).num_rows == 4  # and delta-rs reads what Spark added

    sim.add_records("activity_logs", soak.recent_records(sim, 10, timedelta(minutes=20), 4))
    third = run(settings_for(sim, start), local, progress=False)  # and delta-rs again
    assert third.exit_code == exit_codes.OK, third.lines()
    assert_equals_truth(warehouse, sim, start)
    assert engine.read_table(RUNS).num_rows == 6


def test_tables_spark_wrote_are_read_by_the_local_engine_which_refuses_to_write_them(
    sim: Simulator, spark: Any, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    start = backfill_start()
    engine = spark_engine(spark, warehouse)
    assert run(settings_for(sim, start), engine, progress=False).exit_code == exit_codes.OK

    local = LocalEngine(warehouse)
    for spec in ALL_TABLES.values():  # delta-rs reads what Spark wrote, exactly
        got, want = local.read_table(spec), engine.read_table(spec)
        key = [(k, "ascending") for k in spec.key]
        assert got.sort_by(key).equals(want.sort_by(key)), spec.name
    assert_equals_truth(warehouse, sim, start)
    # The commands that read a warehouse read this one.
    runner = CliRunner()
    status = runner.invoke(cli.main, ["status", "--warehouse", str(warehouse)])
    assert status.exit_code == 0, status.output
    assert f"{local.read_table(ACTIVITY_LOGS).num_rows:,}" in status.output
    query = runner.invoke(
        cli.main,
        [
            "query",
            "--warehouse",
            str(warehouse),
            "--format",
            "csv",
            "SELECT count(*) AS n FROM operation_logs",
        ],
    )
    assert query.exit_code == 0, query.output
    assert query.output.split() == ["n", str(local.read_table(OPERATION_LOGS).num_rows)]
    report = runner.invoke(cli.main, ["report", "--warehouse", str(warehouse)])
    assert report.exit_code == 0 and (warehouse / "zoom-report.html").is_file(), report.output

    versions = {s.name: DeltaTable(str(warehouse / s.name)).version() for s in ALL_TABLES.values()}
    sim.add_records("activity_logs", soak.recent_records(sim, 5, timedelta(minutes=20), 5))
    with pytest.raises(UnsupportedTable) as refused:
        run(settings_for(sim, start), local, progress=False)
    message = str(refused.value)
    assert "clustering" in message and "nothing was written" in message, message
    assert "--engine spark" in message
    after = {s.name: DeltaTable(str(warehouse / s.name)).version() for s in ALL_TABLES.values()}
    assert after == versions  # not one commit, in any table


# -- liquid clustering -------------------------------------------------------------------------


def day_batch(day: int, rows: int, tag: str) -> pa.Table:
    base = datetime(2025, 8, 1, tzinfo=UTC) + timedelta(days=day)
    batch = Batch(ACTIVITY_LOGS)
    batch.add(
        [
            {
                "email": f"{tag}{i}@example.com",
                "time": format_time(base + timedelta(seconds=97 * i)),
                "type": "Sign in",
                "ip_address": f"203.0.113.{i % 200}",
                "client_type": "Browser",
                "version": "6.1.0",
            }
            for i in range(rows)
        ]
    )
    return batch.to_arrow()


def test_log_tables_are_clustered_on_time_and_a_one_day_merge_skips_other_files(
    spark: Any, tmp_path: Path
) -> None:
    engine = spark_engine(spark, tmp_path / "wh")
    engine.ensure_tables()
    for spec in ALL_TABLES.values():
        detail = spark.sql(f"DESCRIBE DETAIL {engine.table_name(spec)}").first()
        assert detail["format"] == "delta"
        assert list(detail["clusteringColumns"]) == ([spec.cluster_by] if spec.cluster_by else [])
    for spec in LOG_TABLES.values():
        detail = spark.sql(f"DESCRIBE DETAIL {engine.table_name(spec)}").first()
        assert list(detail["clusteringColumns"]) == ["time"], spec.name

    table = engine.table_name(ACTIVITY_LOGS)
    for day in range(6):  # six days, merged out of order, several files each
        engine.merge_new(ACTIVITY_LOGS, day_batch((day * 5) % 6, 600, "a"))
    # Small target files so that OPTIMIZE lays the six days out over several files.
    spark.conf.set("spark.databricks.delta.optimize.maxFileSize", str(24 * 1024))
    try:
        engine.maintain()
    finally:
        spark.conf.unset("spark.databricks.delta.optimize.maxFileSize")
    optimize = engine.last_commit_metrics(ACTIVITY_LOGS)
    assert optimize["operation"] == "OPTIMIZE", optimize
    files = spark.sql(
        f"SELECT input_file_name() AS f, unix_micros(min(time)) AS lo, "
        f"unix_micros(max(time)) AS hi FROM {table} GROUP BY 1"
    ).collect()
    assert len(files) >= 4, files

    before = spark.sql(f"DESCRIBE DETAIL {table}").first()["numFiles"]
    assert before == len(files)

    day3 = day_batch(3, 50, "late")  # new rows, all within 2025-08-04
    assert engine.merge_new(ACTIVITY_LOGS, day3) == 50
    metrics = engine.last_commit_metrics(ACTIVITY_LOGS)
    assert metrics["operation"] == "MERGE", metrics
    assert int(metrics["numTargetRowsInserted"]) == 50
    assert int(metrics["numTargetFilesRemoved"]) == 0  # insert-only: nothing rewritten
    # Delta's insert-only MERGE reads the target only to find the keys already there; the
    # scan's own metrics show how many files it read after skipping on file statistics.
    read = merge_files_read(spark)
    lo, hi = (micros(day3["time"][i].as_py()) for i in (0, -1))
    overlapping = [f for f in files if f["hi"] >= lo and f["lo"] <= hi]
    assert 0 < read == len(overlapping) < before, (read, len(overlapping), before)
    print(f"one-day merge after OPTIMIZE: read {read} of {before} files, skipped {before - read}")


def micros(instant: datetime) -> int:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def merge_files_read(spark: Any) -> int:
    """`number of files read` by the target scan of this session's latest MERGE (Spark's
    SQL metrics, from the session's status store)."""
    store = spark._jsparkSession.sharedState().statusStore()
    executions = store.executionsList()
    for index in range(executions.size() - 1, -1, -1):
        execution = executions.apply(index)
        if not str(execution.description()).startswith("MERGE operation"):
            continue
        values = store.executionMetrics(execution.executionId())
        metrics = execution.metrics()
        read = [
            int(str(values.get(m.accumulatorId()).get()).replace(",", ""))
            for m in (metrics.apply(i) for i in range(metrics.size()))
            if m.name() == "number of files read" and values.get(m.accumulatorId()).isDefined()
        ]
        if read:
            return max(read)
    raise AssertionError("no MERGE with a target scan in this session's SQL executions")


# -- time stays time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "conf",
    [
        {"spark.sql.session.timeZone": "America/Los_Angeles"},
        {"spark.sql.session.timeZone": "Asia/Kolkata", "spark.sql.timestampType": "TIMESTAMP_NTZ"},
    ],
    ids=["los-angeles", "kolkata-ntz"],
)
def test_the_same_records_keep_their_instants_and_ids_in_any_session_time_zone(
    sim: Simulator, spark: Any, tmp_path: Path, conf: dict[str, str]
) -> None:
    warehouse = tmp_path / "wh"
    start = backfill_start()
    previous = {key: spark.conf.get(key, None) for key in conf}
    try:
        for key, value in conf.items():
            spark.conf.set(key, value)
        engine = spark_engine(spark, warehouse)  # creates the tables in that session
        first = run(settings_for(sim, start), engine, progress=False)
        assert first.exit_code == exit_codes.OK, first.lines()
        for spec in ALL_TABLES.values():  # TIMESTAMP_LTZ and NOT NULL, as declared
            schema = spark.read.format("delta").load(str(warehouse / spec.name)).schema
            assert table_differences(spec, schema) == [], spec.name
        second = run(settings_for(sim, start), spark_engine(spark, warehouse), progress=False)
        assert second.exit_code == exit_codes.OK, second.lines()  # no schema mismatch
        assert [s.inserted for s in second.streams] == [0, 0]
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    # The instants and lw_ids are the ground truth's, read back by delta-rs.
    assert_equals_truth(warehouse, sim, start)
    rows = LocalEngine(warehouse).read_table(ACTIVITY_LOGS).to_pylist()
    truth = Batch(ACTIVITY_LOGS)
    truth.add(sim.ground_truth("activity_logs", start=start))
    want = {r["lw_id"]: r["time"] for r in truth.to_arrow().to_pylist()}
    assert {r["lw_id"]: r["time"] for r in rows} == want
