"""The benchmark's pieces work: a tiny run of every measurement, checked for shape and sense.

Speed is never asserted here (that is what `python -m benchmarks.run` reports); these
tests only show that each measurement runs end to end and its figures hang together.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from benchmarks import per_record, report, versus
from benchmarks.harness import Workload
from benchmarks.incremental import _synthetic_chunks
from benchmarks.run import Plan, render, run_plan
from deltalake import DeltaTable, write_deltalake

from zoom_ingest.engines import local as local_engine
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.tables import ACTIVITY_LOGS, UTC
from zoom_ingest.zoom.rules import PAGE_SIZE

TINY = Plan(
    backfill=Workload(days=1, activity_per_day=900, operation_per_day=150, latency=0.01),
    rates=(10.0, 40.0),
    memory=Workload(days=1, activity_per_day=300, operation_per_day=60, latency=0.01),
    small_batch_rows=100,
    naive_rate=10.0,
    naive_budget_seconds=0.5,
    table_sizes=(2_000, 6_000),
    new_per_hour={"activity_logs": 90, "operation_logs": 15},
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_plan(TINY, tmp_path_factory.mktemp("bench"), say=lambda _: None)


def test_backfill_figures_hang_together(results: dict) -> None:
    assert [b["requests_per_second"] for b in results["backfill"]] == [10.0, 40.0]
    for b in results["backfill"]:
        assert b["records"] > 500
        assert b["inserted"] <= b["records"]
        # Every page but the last of a window is full, so calls are close to records/300.
        assert math.ceil(b["records"] / PAGE_SIZE) <= b["api_calls"] <= b["records"]
        assert b["rate_limited"] == 0
        assert 0 < b["fraction_of_ceiling"] <= 1
        assert b["records_per_second"] == pytest.approx(b["records"] / b["wall_seconds"])
        assert 0 < b["fetch_seconds"] <= b["wall_seconds"]
        assert b["cpu_seconds"] > 0
        # The job's own peak, read in the child: a Python process with pyarrow and
        # deltalake loaded, far below the benchmark process that spawned it.
        assert 50 * 2**20 < b["peak_rss_bytes"] < 4 * 2**30


def test_naive_baseline_pages_thirty_at_a_time(results: dict) -> None:
    naive = results["naive"]
    assert naive["records"] > 0
    assert naive["rows"] == naive["records"]  # the simulator served no duplicates
    assert naive["api_calls"] >= naive["records"] / 30
    assert naive["records_per_second"] > 0


def test_memory_runs_cover_two_sizes_and_two_batches(results: dict) -> None:
    memory = results["memory"]
    assert len(memory) == 4
    default_batch_rows = LocalEngine.batch_rows  # the job's own default, on this engine
    assert {m["batch_rows"] for m in memory} == {default_batch_rows, TINY.small_batch_rows}
    assert all(m["peak_rss_bytes"] > 0 for m in memory)


def test_incremental_inserts_exactly_the_new_hour(results: dict) -> None:
    incremental = results["incremental"]
    assert [r["table_rows"] for r in incremental] == list(TINY.table_sizes)
    for r in incremental:
        assert r["inserted"] == r["new_records"] > 0
        assert r["fetched"] >= r["new_records"]  # the lookback hour is read again
        assert r["api_calls"] <= math.ceil(r["fetched"] / PAGE_SIZE) + 4
        assert 1 <= r["files_scanned"] <= r["table_files"]
        assert r["merge_seconds"] < r["wall_seconds"]
        compaction = r["compaction"]
        assert compaction["small_files"] == LocalEngine(".").compact_after_files + 1
        assert compaction["bytes_rewritten"] > 0


def test_report_names_every_target(results: dict) -> None:
    verdicts = report.verdicts(results)
    assert len(verdicts) == 7
    assert all(v.met in (True, False) for v in verdicts)
    table = report.console_table(results)
    for v in verdicts:
        assert v.target in table


def test_report_renders_the_page_and_its_plots(results: dict, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plots need matplotlib (the bench extra)")
    results = {**results, "command": "python -m benchmarks.run --quick"}
    written = render(results, tmp_path)
    page = (tmp_path / "benchmarks.md").read_text()
    assert "## Against the targets" in page
    assert results["command"] in page
    for path in written[1:]:
        assert path.suffix == ".png" and path.stat().st_size > 10_000
        assert f"]({path.relative_to(tmp_path)})" in page


def test_large_tables_compact_only_their_small_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the compaction figure measures: past SORT_WHOLE_TABLE_BYTES, maintain()
    joins the small files and leaves the big ones as they are."""
    engine = LocalEngine(tmp_path / "warehouse", compact_after_files=4)
    engine.ensure_tables()
    path = str(engine.table_path(ACTIVITY_LOGS))
    rng = random.Random(1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    (big,) = _synthetic_chunks(ACTIVITY_LOGS, rng, start, start + timedelta(days=30), 50_000)
    write_deltalake(path, big, mode="append")
    for hour in range(6):
        first = start + timedelta(days=30, hours=hour)
        (small,) = _synthetic_chunks(ACTIVITY_LOGS, rng, first, first + timedelta(hours=1), 50)
        write_deltalake(path, small, mode="append")
    big_file = _files(path)[0]
    # A file at the compaction target size is done; make the first one such a file
    # without writing 100 MB, and count any table as large.
    DeltaTable(path).alter.set_table_properties(
        {"delta.targetFileSize": str(big_file["size_bytes"] // 2)}
    )
    monkeypatch.setattr(local_engine, "SORT_WHOLE_TABLE_BYTES", 1)
    engine.maintain()
    files = _files(path)
    assert big_file["path"] in [f["path"] for f in files]  # not rewritten
    assert len(files) == 2
    assert engine.read_table(ACTIVITY_LOGS).num_rows == 50_300


def _files(path: str) -> list[dict]:
    table = pa.table(DeltaTable(path).get_add_actions(flatten=True))
    return sorted(table.to_pylist(), key=lambda f: f["min.time"])


def test_versus_runs_each_side_alternately_from_its_own_code(tmp_path: Path) -> None:
    """benchmarks.versus: the base revision's src/ from git, then this tree's, each side
    the same backfill; a clone without the default base compares HEAD with itself."""
    base = versus.DEFAULT_BASE if versus.resolve_revision(versus.DEFAULT_BASE) else "HEAD"
    if versus.resolve_revision(base) is None:
        pytest.skip("not a git checkout")
    tiny = Workload(days=1, activity_per_day=600, operation_per_day=60, latency=0.01)
    result = versus.measure_versus(base, tmp_path, workload=tiny, rounds=2)
    assert result["base"]["revision"] == versus.resolve_revision(base)
    assert (tmp_path / "base" / "src" / "zoom_ingest" / "__init__.py").is_file()
    for side in ("base", "current"):
        runs = result[side]["runs"]
        assert len(runs) == 2
        assert all(run["records"] > 300 and run["cpu_seconds"] > 0 for run in runs)
        records_per_cpu_second = sum(r["records"] for r in runs) / sum(
            r["cpu_seconds"] for r in runs
        )
        assert result[side]["records_per_cpu_second"] == pytest.approx(records_per_cpu_second)
        assert result[side]["peak_rss_bytes"] == max(r["peak_rss_bytes"] for r in runs) > 0
    # The same simulated account, so both sides fetched about the same records (each run's
    # simulator ends at its own "now", a few records apart).
    fetched = [r["records"] for r in result["base"]["runs"] + result["current"]["runs"]]
    assert max(fetched) == pytest.approx(min(fetched), rel=0.02)
    assert result["ratio"] == pytest.approx(
        result["current"]["records_per_cpu_second"] / result["base"]["records_per_cpu_second"]
    )
    with pytest.raises(ValueError, match="does not know"):
        versus.measure_versus("no-such-revision", tmp_path / "x", workload=tiny)


def test_fetch_call_measures_the_calls_it_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import fetch_call

    from zoom_ingest.simulated import environment
    from zoom_ingest.simulator import Simulator

    with Simulator(seed=3, days=2, activity_per_day=900, operation_per_day=90) as sim:
        for name, value in environment(sim).items():
            monkeypatch.setenv(name, value)
        cpu, calls = fetch_call._measure_calls(3, None)
        served = sim.stats.calls
    # Every API call the simulator served is counted (its stats leave the token out).
    assert calls == served
    assert calls >= len(fetch_call._windows()) and cpu > 0


def test_per_record_pages_arrive_as_a_backfill_delivers_them() -> None:
    data = per_record.sample_records(6_000, days=4)
    for records in data.values():
        pages = list(per_record.delivered_pages(records, windows=3))
        delivered = [record for page in pages for record in page]
        assert sorted(map(id, delivered)) == sorted(map(id, records))  # each record once
        assert all(0 < len(page) <= PAGE_SIZE for page in pages)
        # The first pages come from different days (windows paged at once), newest first…
        first_days = [page[0]["time"][:10] for page in pages[:3]]
        assert first_days == sorted(set(first_days), reverse=True)
        # …and each day's pages are newest record first, one after another.
        by_day: dict[str, list[str]] = {}
        for page in pages:
            by_day.setdefault(page[0]["time"][:10], []).extend(r["time"] for r in page)
        assert all(times == sorted(times, reverse=True) for times in by_day.values())


def test_per_record_measures_both_paths_on_the_same_records() -> None:
    result = per_record.measure_per_record(records=3_000, batch_rows=1_000, days=3)
    assert result["records"] == result["before_issue_14"]["records"] > 2_000
    assert result["cpu_seconds"] > 0 and result["before_issue_14"]["cpu_seconds"] > 0
    assert result["ratio_to_before_issue_14"] == pytest.approx(
        result["records_per_cpu_second"] / result["before_issue_14"]["records_per_cpu_second"]
    )


def test_report_judges_the_per_record_and_whole_process_targets(
    results: dict, tmp_path: Path
) -> None:
    at_40 = next(b for b in results["backfill"] if b["requests_per_second"] == 40.0)
    shape = {**at_40, "shape": "large"}
    per = per_record.measure_per_record(records=3_000, batch_rows=1_000, days=3)
    judged = {v.target: v for v in report.verdicts({**results, "shapes": [shape]})}
    judged |= {v.target: v for v in report.verdicts({**results, "per_record": per})}
    whole = next(v for t, v in judged.items() if "of a core" in t)
    cores = shape["cpu_seconds"] / shape["wall_seconds"]
    assert whole.met == (cores <= report.WHOLE_PROCESS_CORES)
    assert f"{cores:.0%} of a core" in whole.measured
    path = next(v for t, v in judged.items() if "per-record path" in t)
    assert path.met == (per["ratio_to_before_issue_14"] >= report.PER_RECORD_FACTOR)
    assert f"({per['ratio_to_before_issue_14']:.2f}×)" in path.measured
    page = report.markdown({**results, "per_record": per, "command": "test"}, [], tmp_path)
    assert f"{per['ratio_to_before_issue_14']:.2f}×." in page


def test_large_tables_compact_into_files_of_the_engines_target_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a delta.targetFileSize of its own, a large table's small files are joined
    into files of about COMPACT_TARGET_BYTES (the join's memory follows that size)."""
    engine = LocalEngine(tmp_path / "warehouse", compact_after_files=4)
    engine.ensure_tables()
    path = str(engine.table_path(ACTIVITY_LOGS))
    rng = random.Random(2)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for hour in range(8):
        first = start + timedelta(hours=hour)
        (small,) = _synthetic_chunks(ACTIVITY_LOGS, rng, first, first + timedelta(hours=1), 2_000)
        write_deltalake(path, small, mode="append")
    sizes = [f["size_bytes"] for f in _files(path)]
    monkeypatch.setattr(local_engine, "SORT_WHOLE_TABLE_BYTES", 1)
    monkeypatch.setattr(local_engine, "COMPACT_TARGET_BYTES", 2 * max(sizes))
    engine.maintain()
    files = _files(path)
    assert 2 <= len(files) <= 4  # about two small files each, not one file of all eight
    assert engine.read_table(ACTIVITY_LOGS).num_rows == 16_000
