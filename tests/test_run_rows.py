"""A run is visible in the runs table from its start: `running` rows written before the
first call, replaced by the outcome at the end; a run killed before its end is found by
the next run and marked `abandoned`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timedelta

from support import soak
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import RUNS, UTC


def statuses(warehouse) -> dict[str, set[str]]:
    """run_id → the statuses of its rows."""
    found: dict[str, set[str]] = {}
    for row in LocalEngine(warehouse).read_table(RUNS).to_pylist():
        found.setdefault(row["run_id"], set()).add(row["status"])
    return found


def test_a_killed_run_is_running_then_abandoned(tmp_path):
    # Slow answers: the first run is still fetching when it is killed.
    with Simulator(seed=5, days=4, activity_per_day=2000, operation_per_day=50,
                   latency=0.3) as sim:  # fmt: skip
        warehouse = tmp_path / "wh"
        start = datetime.now(UTC).date() - timedelta(days=3)
        args = soak.run_args(warehouse, start, "--requests-per-second", "2", "--concurrency", "1")
        env = soak.cli_env(sim)
        process = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while sim.stats.calls < 3:
                assert process.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the run made no API call in 60 s"
                time.sleep(0.05)
            # Mid-fetch: its rows already say it is running.
            seen = statuses(warehouse)
            assert list(seen.values()) == [{"running"}], seen
            killed = next(iter(seen))
            os.kill(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        assert statuses(warehouse)[killed] == {"running"}  # no end was recorded

        sim.latency = 0.0
        done = subprocess.run(
            [*args[:-4], "--requests-per-second", "100"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == soak.EXIT_OK, done.stderr[-2000:]
        after = statuses(warehouse)
        assert after[killed] == {"abandoned"}, after
        (finished,) = set(after) - {killed}
        assert after[finished] == {"succeeded"}
        assert "marked abandoned" in done.stderr
        rows = LocalEngine(warehouse).read_table(RUNS).to_pylist()
        assert len(rows) == 4  # two streams a run: each row replaced, never appended again
        for row in rows:
            if row["run_id"] == killed:
                assert row["finished_at"] is None
                assert f"found by run {finished}" in row["error"]


def test_a_finished_run_leaves_no_running_row(tmp_path):
    from zoom_ingest.job import run
    from zoom_ingest.settings import Secret, Settings

    with Simulator(seed=6, days=2, activity_per_day=50, operation_per_day=10) as sim:
        settings = Settings(
            account_id=sim.account_id,
            client_id=sim.client_id,
            client_secret=Secret(sim.client_secret),
            api_url=sim.api_url,
            oauth_url=sim.oauth_url,
            backfill_start=datetime.now(UTC).date() - timedelta(days=1),
            requests_per_second=200,
        )
        summary = run(settings, LocalEngine(tmp_path), progress=False)
    rows = LocalEngine(tmp_path).read_table(RUNS).to_pylist()
    assert {r["status"] for r in rows} == {"succeeded"}
    assert {r["run_id"] for r in rows} == {summary.run_id} and len(rows) == 2
    assert all(r["finished_at"] is not None for r in rows)
