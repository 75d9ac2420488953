"""Crash and resume: `zoom-ingest run` SIGKILLed at random moments, again and again.

The harness is the soak's, tests/support/soak (the soak kills a 120-day backfill ten times); here it
runs on little data with small batches, so that commits happen often and the kills land
between them, in them and in the middle of fetching. After every kill the warehouse must
hold no duplicate, nothing Zoom does not serve and no gap below its checkpoints; after
the last run it must equal the ground truth. Nothing is repaired between runs: the run
lock is an flock the kernel drops with the killed process.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from support import soak  # the soak harness: kill and resume
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.normalise import Batch
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import ACTIVITY_LOGS, UTC

DAYS = 10
KILLS = 3


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # A little latency per call stretches a run over ~1 s, so kills land mid-run.
    with Simulator(seed=41, days=DAYS, activity_per_day=300, operation_per_day=60,
                   latency=0.01, client_secret=soak.FAKE_SECRET) as s:  # fmt: skip
        yield s


def backfill_args(warehouse: Path) -> tuple[list[str], datetime]:
    start = datetime.now(UTC).date() - timedelta(days=DAYS - 2)
    extra = ["--batch-rows", "150", "--concurrency", "2", "--requests-per-second", "300"]
    return soak.run_args(warehouse, start, *extra), soak.floor_of(start)


def report(title: str, result: soak.KillReport) -> str:
    lines = [f"{title}: {len(result.kills)} kills, then a run that finished"]
    lines += [f"  kill {i + 1}: {p.describe()}" for i, p in enumerate(result.kills)]
    lines.append(f"  final: {result.comparison.describe()}")
    return "\n".join(lines)


def assert_survived(result: soak.KillReport, runner: soak.Runner, sim: Simulator) -> None:
    text = report("kill and resume", result)
    print(text)  # N and the kill points (shown with -s, and on failure)
    assert not result.finished_early, text
    assert len(result.kills) == KILLS, text
    assert all(p.consistent for p in result.kills), text
    assert any(p.calls > 0 for p in result.kills), text  # killed mid-fetch, not only at start
    assert result.final.returncode == soak.EXIT_OK, result.final.output[-2000:]
    assert result.comparison.equal, text
    assert result.comparison.checkpoint_rows == 2
    # A killed run never leaves the warehouse locked: no run was turned away as busy.
    assert soak.EXIT_BUSY not in [a.returncode for a in runner.attempts]
    assert soak.leaks(sim, [a.output for a in runner.attempts], None) == []


def test_sigkill_during_a_backfill_n_times_then_it_finishes(sim, tmp_path):
    warehouse = tmp_path / "wh"
    runner = soak.Runner(sim, tmp_path)
    args, floor = backfill_args(warehouse)
    result = soak.kill_and_resume(
        runner,
        args,
        soak.cli_env(sim),
        kills=KILLS,
        rng=random.Random(4),
        max_calls=8,  # a full backfill takes ~30 calls
        max_delay=0.25,
        floor=floor,
        warehouse=warehouse,
    )
    assert_survived(result, runner, sim)


def test_sigkill_during_an_incremental_run_n_times_then_it_finishes(sim, tmp_path):
    warehouse = tmp_path / "wh"
    runner = soak.Runner(sim, tmp_path)
    args, floor = backfill_args(warehouse)
    env = soak.cli_env(sim)
    assert runner.run(args, env).returncode == soak.EXIT_OK
    assert soak.compare(warehouse, sim, floor).equal

    # New records in the last hour: the incremental run pages through ~11 pages of them.
    sim.add_records("activity_logs", soak.recent_records(sim, 3000, timedelta(minutes=50), 7))
    result = soak.kill_and_resume(
        runner,
        args,
        env,
        kills=KILLS,
        rng=random.Random(5),
        max_calls=4,
        max_delay=0.15,
        floor=floor,
        warehouse=warehouse,
    )
    assert_survived(result, runner, sim)
    assert result.comparison.rows >= 3000


def test_files_a_killed_write_leaves_behind_are_told_apart_from_committed_ones(tmp_path):
    """The soak reports kills that landed inside a write by the files they leave."""
    engine = LocalEngine(tmp_path)
    engine.ensure_tables()
    batch = Batch(ACTIVITY_LOGS)
    batch.add([{"email": "a@example.com", "time": "2025-08-11T14:32:18Z", "type": "Sign in"}])
    engine.merge_new(ACTIVITY_LOGS, batch.to_arrow())
    assert soak.uncommitted_files(tmp_path) == set()
    (committed,) = (tmp_path / "activity_logs").glob("*.parquet")
    stray = committed.with_name("part-00000-written-but-never-committed.parquet")
    shutil.copy(committed, stray)
    assert soak.uncommitted_files(tmp_path) == {stray}
    assert engine.read_table(ACTIVITY_LOGS).num_rows == 1  # Delta never reads it
