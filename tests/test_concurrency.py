"""Two runs at once against the same warehouse never corrupt or duplicate anything.

Locally the run lock turns the second `zoom-ingest run` away (exit 4, one clear line).
On Databricks nothing locks across processes: the job's `max_concurrent_runs: 1` keeps
one run per job (tests/test_bundle.py checks it), and any other writer is kept safe by
Delta's optimistic commits, because every write the job makes is an idempotent MERGE or
an append re-run on conflict. The last test runs two whole jobs at once with no lock at
all, and each with a Zoom-account lease of its own, to show that this holds for the job,
not only for single merges. (The shared lease, which keeps two runs on one Zoom account
apart, is tests/test_lease.py's.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from support import soak  # the soak harness: process runner, ground truth
from support.sim_settings import simulator_settings
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import RunSummary, run
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import CHECKPOINTS, LOG_TABLES, RUNS, UTC

DAYS = 8


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # 20 ms per call: each job's fetches and merges are spread over half a second.
    with Simulator(seed=51, days=DAYS, activity_per_day=300, operation_per_day=60,
                   latency=0.02) as s:  # fmt: skip
        yield s


def test_two_cli_runs_started_at_once_one_runs_and_the_other_exits_4(tmp_path):
    # 50 ms per call, one window at a time: the first run holds the warehouse for over a
    # second, far longer than the two processes' start-up times can differ.
    with Simulator(seed=52, days=DAYS, activity_per_day=300, operation_per_day=60,
                   latency=0.05) as sim:  # fmt: skip
        two_runs_at_once(sim, tmp_path)


def two_runs_at_once(sim: Simulator, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    start = datetime.now(UTC).date() - timedelta(days=DAYS - 2)
    args = soak.run_args(warehouse, start, "--concurrency", "1", "--requests-per-second", "300")
    runner = soak.Runner(sim, tmp_path)
    launched = [runner.start(args, soak.cli_env(sim)) for _ in range(2)]
    for proc, _ in launched:
        proc.wait(timeout=120)
    done = [runner.collect(proc, out, 0.0, 0) for proc, out in launched]

    assert sorted(a.returncode for a in done) == [soak.EXIT_OK, soak.EXIT_BUSY], [
        a.output[-1500:] for a in done
    ]
    busy = next(a for a in done if a.returncode == soak.EXIT_BUSY)
    message = [line for line in busy.stderr.splitlines() if line.strip()]
    assert len(message) == 1, busy.stderr
    assert "another zoom_ingest run holds the warehouse" in message[0]
    assert str(warehouse) in message[0] and "wait for it to finish" in message[0]
    assert busy.stdout == ""

    state = soak.compare(warehouse, sim, soak.floor_of(start))
    assert state.equal, state.describe()
    engine = LocalEngine(warehouse)
    assert engine.read_table(CHECKPOINTS).num_rows == 2
    assert len({r["run_id"] for r in engine.read_table(RUNS).to_pylist()}) == 1


class UnlockedEngine(LocalEngine):
    """The local engine without its run lock: two jobs write at once, as two processes
    on the Spark engine would."""

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[None]:
        yield


def test_two_jobs_writing_at_once_without_a_lock_neither_corrupt_nor_duplicate(sim, tmp_path):
    start = datetime.now(UTC).date() - timedelta(days=DAYS - 2)
    settings = simulator_settings(
        sim,
        backfill_start=start,
        requests_per_second=400,
        concurrency=3,
        batch_rows=300,  # many small merges, so the two jobs' commits interleave
    )
    barrier = threading.Barrier(2)
    summaries: list[RunSummary] = []
    errors: list[BaseException] = []

    def one_job(name: str) -> None:
        engine = UnlockedEngine(tmp_path)
        barrier.wait(timeout=30)
        try:
            # A lease of its own: the two jobs do not exclude each other.
            lease = LocalEngine(tmp_path / f"lease-{name}")
            summaries.append(run(settings, engine, progress=False, lease_engine=lease))
        except BaseException as exc:  # reported below, with the traceback
            errors.append(exc)

    threads = [threading.Thread(target=one_job, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert [s.exit_code for s in summaries] == [exit_codes.OK, exit_codes.OK], [
        s.lines() for s in summaries
    ]

    state = soak.compare(tmp_path, sim, soak.floor_of(start))
    assert state.equal, state.describe()
    engine = LocalEngine(tmp_path)
    checkpoints = engine.read_table(CHECKPOINTS).to_pylist()
    assert sorted(r["stream"] for r in checkpoints) == ["activity_logs", "operation_logs"]
    # Both jobs fetched everything; between them each record was inserted exactly once.
    for name in ("activity_logs", "operation_logs"):
        inserted = sum(s.inserted for summary in summaries for s in summary.streams
                       if s.name == name)  # fmt: skip
        assert inserted == engine.read_table(LOG_TABLES[name]).num_rows
    assert engine.read_table(RUNS).num_rows == 4
