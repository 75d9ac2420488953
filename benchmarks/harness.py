"""What every benchmark shares: the simulated account, and the job run as a child process.

The job runs as `zoom-ingest run` in its own process so that its peak memory (RSS) and
CPU time are its own: `os.wait4` returns the child's resource usage. The simulator runs
in the benchmark's process, so neither its memory nor its CPU is counted for the job.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from zoom_ingest.engines.local import INSERT_NEW, LocalEngine
from zoom_ingest.simulated import environment
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import RUNS, UTC
from zoom_ingest.zoom.rules import PAGE_SIZE

#: Seconds a single job run may take before the benchmark gives up on it.
JOB_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Workload:
    """A simulated Zoom account: how much history, how dense, how slow the API is."""

    days: float
    activity_per_day: float
    operation_per_day: float
    latency: float = 0.3
    seed: int = 11
    #: 0: every day alike; above 0, uneven days (see the simulator's `day_spread`).
    day_spread: float = 0.0
    #: The account's time zone as Zoom reads its `from`/`to` dates in it (the simulator's
    #: `account_utc_offset_hours`): 0 is UTC, 5.5 Asia/Kolkata, -8 America/Los_Angeles.
    utc_offset_hours: float = 0.0

    @property
    def expected_records(self) -> int:
        """About how many records the simulator generates (it draws Poisson counts)."""
        return round(self.days * (self.activity_per_day + self.operation_per_day))

    def simulator(self, qps_limit: float | None) -> Simulator:
        return Simulator(
            seed=self.seed,
            days=self.days,
            activity_per_day=self.activity_per_day,
            operation_per_day=self.operation_per_day,
            qps_limit=qps_limit,
            latency=self.latency,
            day_spread=self.day_spread,
            account_utc_offset_hours=self.utc_offset_hours,
        )


#: The two account shapes of issue 14: a Pro account at 10 requests/s with uneven days
#: (quiet weekends, busy days up to several times the mean), and a large Business+
#: account at 40 requests/s. The large account's days are even: one of its days at twice
#: the mean is a chain of 330 pages, 100 s at 300 ms a page, longer than the whole
#: backfill takes at 40/s (Zoom pages a day in sequence; its from/to are dates).
PRO = Workload(days=32, activity_per_day=9000, operation_per_day=900, day_spread=0.5)
LARGE = Workload(days=22, activity_per_day=50_000, operation_per_day=4000)
#: Issue 22: the same two accounts with their days read in a zone other than UTC (Zoom
#: reads the dates in the account's zone, so a date's records start at its local
#: midnight): the Pro account in Asia/Kolkata (UTC+5:30), the large one in
#: America/Los_Angeles (UTC-8). The large account's days stay even, for the reason above.
PRO_KOLKATA = replace(PRO, utc_offset_hours=5.5)
LARGE_LOS_ANGELES = replace(LARGE, utc_offset_hours=-8.0)
SHAPES: dict[str, tuple[Workload, float]] = {
    "pro": (PRO, 10.0),
    "large": (LARGE, 40.0),
    "pro-kolkata": (PRO_KOLKATA, 10.0),
    "large-los-angeles": (LARGE_LOS_ANGELES, 40.0),
}
#: Smaller shapes for `--quick` (a smoke run, not the figures): fewer records a day
#: rather than fewer days, so that enough chains run at once to fill the limit.
QUICK_SHAPES: dict[str, tuple[Workload, float]] = {
    "pro": (Workload(days=12, activity_per_day=3000, operation_per_day=300, day_spread=0.5), 10.0),
    "large": (Workload(days=16, activity_per_day=9000, operation_per_day=900), 40.0),
    "pro-kolkata": (
        Workload(
            days=12,
            activity_per_day=3000,
            operation_per_day=300,
            day_spread=0.5,
            utc_offset_hours=5.5,
        ),
        10.0,
    ),
}


def min_calls(sim: Simulator) -> int:
    """The fewest API calls that fetch every window the job asked for: each window's
    chain of pages is at least one call and every page but its last is full. With the
    rate limit R, no run can take less than min_calls / R seconds: that is the ceiling."""
    windows = {
        (path, params["from"], params["to"])
        for path, params, status in sim.stats.requests
        if status == 200 and path.startswith("/v2/report/")
    }
    total = 0
    for path, first, last in windows:
        records = sim.records_between(path, date.fromisoformat(first), date.fromisoformat(last))
        total += max(1, math.ceil(records / PAGE_SIZE))
    return total


def ceiling_records_per_second(requests_per_second: float) -> float:
    """Zoom's throughput ceiling: every allowed request returns a full page."""
    return requests_per_second * PAGE_SIZE


@dataclass(frozen=True)
class JobProcess:
    """One `zoom-ingest run` in a child process, as the operating system saw it."""

    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    exit_code: int
    log_path: Path


def simulator_env(sim: Simulator) -> dict[str, str]:
    """The ZOOM_* variables that point the job at the simulator."""
    return environment(sim)


def run_job_process(
    sim: Simulator,
    warehouse: Path,
    log_path: Path,
    *,
    settings: Mapping[str, object],
    timeout: float = JOB_TIMEOUT,
    extra_env: Mapping[str, str] | None = None,
) -> JobProcess:
    """Run `zoom-ingest run` against `sim` into `warehouse`; wait and measure it.

    `settings` become ZOOM_INGEST_<NAME> variables (e.g. requests_per_second=10);
    `extra_env` is added as it is (benchmarks.versus sets PYTHONPATH to run another
    revision's code).
    """
    env = {**simulator_env(sim), "ZOOM_INGEST_LOG_LEVEL": "WARNING", **(extra_env or {})}
    env.update({f"ZOOM_INGEST_{name.upper()}": str(value) for name, value in settings.items()})
    return run_python_process(
        "from zoom_ingest.cli import main; main()",
        log_path,
        args=["run", "--warehouse", str(warehouse), "--no-progress"],
        env=env,
        timeout=timeout,
    )


def run_python_process(
    code: str,
    log_path: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = JOB_TIMEOUT,
) -> JobProcess:
    """`python -c code args…` in a child process, its output in `log_path`; measured."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    peak_file = log_path.with_suffix(".peak-rss")
    peak_file.unlink(missing_ok=True)
    with log_path.open("w") as log:
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-c", _PEAK_PROBE + code, *args],
            env={**os.environ, **(env or {}), _PEAK_FILE_VARIABLE: str(peak_file)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        watchdog = threading.Timer(timeout, child.kill)
        watchdog.start()
        try:
            # wait4, not wait: it returns this child's own CPU time.
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return JobProcess(
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=_read_peak(peak_file),
        exit_code=child.returncode,
        log_path=log_path,
    )


#: The child's peak RSS is its VmHWM, written at exit. Not ru_maxrss: Linux carries a
#: process's maxrss across exec, so a child spawned by a big benchmark process would
#: report at least the benchmark's own size.
_PEAK_FILE_VARIABLE = "ZOOM_INGEST_BENCHMARK_PEAK_RSS_FILE"
_PEAK_PROBE = f"""
import atexit as _atexit, os as _os
def _write_peak_rss():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(_os.environ["{_PEAK_FILE_VARIABLE}"], "w") as out:
        out.write(peak)
_atexit.register(_write_peak_rss)
"""


def _read_peak(peak_file: Path) -> int:
    """Bytes; 0 when the child died before it could write it."""
    try:
        return int(peak_file.read_text()) * 1024  # VmHWM is in kB
    except (OSError, ValueError):
        return 0


def last_run_rows(warehouse: Path) -> list[dict[str, Any]]:
    """The `zoom_ingest_runs` rows (one per stream) of the latest run in `warehouse`."""
    rows = LocalEngine(warehouse).read_table(RUNS).to_pylist()
    if not rows:
        raise RuntimeError(f"no run recorded in {warehouse}")
    latest = max(row["started_at"] for row in rows)
    return [row for row in rows if row["started_at"] == latest]


def merges_since(table_path: Path, version: int) -> list[dict[str, Any]]:
    """The commit entries of every merge after `version`, in the MERGE's shape (metrics
    and parameters): a MERGE as it is, and an insert-only merge the local engine did by
    appending under its run lock (`INSERT_NEW` in the commit info) with its summary as
    `operationMetrics` and its range as the predicate."""
    history = DeltaTable(str(table_path)).history()
    merges = []
    for entry in history:
        if int(entry["version"]) <= version:
            continue
        if entry.get("operation") == "MERGE":
            merges.append(entry)
        elif INSERT_NEW in entry:
            summary = entry[INSERT_NEW]
            merges.append(
                {
                    **entry,
                    "operationParameters": {"predicate": summary["predicate"]},
                    "operationMetrics": summary,
                }
            )
    return merges


def files_in_merge_range(table_path: Path, version: int, merge: Mapping[str, Any]) -> int | None:
    """How many data files of the table at `version` a MERGE's time range overlaps: the
    files it has to read after pruning on file statistics. None without a time range.

    delta-rs' own `num_target_files_scanned` stays 0 for an insert-only MERGE even when
    it reads a file to look for matches, so the benchmark counts from the statistics.
    """
    predicate = str(merge.get("operationParameters", {}).get("predicate", ""))
    bounds = [datetime.fromisoformat(v) for v in _PREDICATE_TIMESTAMP.findall(predicate)]
    if len(bounds) != 2:
        return None
    low, high = (bound.replace(tzinfo=UTC) for bound in sorted(bounds))
    files = DeltaTable(str(table_path), version=version).get_add_actions(flatten=True)
    table = pa.table(files)
    if not table.num_rows:
        return 0
    lows, highs = table.column("min.time").to_pylist(), table.column("max.time").to_pylist()
    return sum(1 for lo, hi in zip(lows, highs, strict=True) if not (hi < low or lo > high))


def table_version(table_path: Path) -> int:
    return DeltaTable(str(table_path)).version()


def backfill_start(sim: Simulator) -> str:
    """The UTC date whose midnight is at or before the simulator's oldest record."""
    return sim.start_time.date().isoformat()


_PREDICATE_TIMESTAMP = re.compile(r"'(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z?'")
