"""Backfill throughput of the job against the rate-limit ceiling, and its peak memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.settings import Secret, Settings
from zoom_ingest.simulator import STREAMS, Simulator

from .harness import (
    Workload,
    backfill_start,
    ceiling_records_per_second,
    last_run_rows,
    min_calls,
    run_job_process,
)


@dataclass(frozen=True)
class BackfillResult:
    """One backfill by the job: what it fetched, in how long, at what cost."""

    requests_per_second: float
    batch_rows: int
    concurrency: int
    records: int  # records fetched from the API
    inserted: int  # rows merged into the tables (records with a new lw_id)
    api_calls: int  # HTTP requests the simulator answered (every attempt)
    rate_limited: int  # 429s the simulator sent
    wall_seconds: float  # the whole `zoom-ingest run` process, start to exit
    fetch_seconds: float  # the job's own first request to last page, longest stream
    cpu_seconds: float
    peak_rss_bytes: int
    #: The fewest calls that fetch every window (harness.min_calls); 0 if not measured.
    min_calls: int = 0
    shape: str = ""
    day_spread: float = 0.0
    days: float = 0.0
    utc_offset_hours: float = 0.0
    #: The job's own figure, from zoom_ingest_runs: calls/s while fetching.
    reported_calls_per_second: float | None = None

    @property
    def fraction_of_call_ceiling(self) -> float:
        """The ceiling in time: no run takes less than min_calls / rate."""
        return self.min_calls / self.requests_per_second / self.wall_seconds

    @property
    def records_per_cpu_second(self) -> float:
        return self.records / self.cpu_seconds

    @property
    def ceiling(self) -> float:
        return ceiling_records_per_second(self.requests_per_second)

    @property
    def records_per_second(self) -> float:
        """End to end: process start to exit, including start-up and the last merge."""
        return self.records / self.wall_seconds

    @property
    def fraction_of_ceiling(self) -> float:
        return self.records_per_second / self.ceiling

    @property
    def calls_per_second(self) -> float:
        return self.api_calls / self.wall_seconds

    @property
    def calls_per_record(self) -> float:
        return self.api_calls / self.records if self.records else float("nan")

    @property
    def records_per_call(self) -> float:
        return self.records / self.api_calls if self.api_calls else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ceiling": self.ceiling,
            "records_per_second": self.records_per_second,
            "fraction_of_ceiling": self.fraction_of_ceiling,
            "calls_per_second": self.calls_per_second,
            "calls_per_record": self.calls_per_record,
            "fraction_of_call_ceiling": self.fraction_of_call_ceiling,
            "records_per_cpu_second": self.records_per_cpu_second,
        }


def warm_up(sim: Simulator) -> None:
    """Generate every simulated day before the clock starts, one day at a time.

    The simulator builds a day's records the first time it is asked for them; in a
    benchmark that CPU would be taken from the job on a small machine, and Zoom's own
    servers cost the client nothing.
    """
    day = sim.start_time
    while day < sim.now:
        for stream in STREAMS:
            sim.ground_truth(stream, start=day, end=day + timedelta(days=1))
        day += timedelta(days=1)


def measure_backfill(
    workload: Workload,
    requests_per_second: float,
    workdir: Path,
    *,
    batch_rows: int | None = None,
    shape: str = "",
    extra_env: Mapping[str, str] | None = None,
) -> BackfillResult:
    """A first run (a backfill of the whole simulated history) by `zoom-ingest run`
    against a simulator that enforces `requests_per_second` as Zoom does; `extra_env`
    goes to the job's process (see `harness.run_job_process`)."""
    label = f"backfill-{requests_per_second:g}rps-{workload.expected_records}"
    if batch_rows is not None:
        label += f"-batch{batch_rows}"
    warehouse = workdir / label
    settings: dict[str, object] = {"requests_per_second": requests_per_second}
    if batch_rows is not None:
        settings["batch_rows"] = batch_rows
    with workload.simulator(qps_limit=requests_per_second) as sim:
        warm_up(sim)
        settings["backfill_start"] = backfill_start(sim)
        process = run_job_process(
            sim, warehouse, workdir / f"{label}.log", settings=settings, extra_env=extra_env
        )
        api_calls = sim.stats.calls
        rate_limited = sim.stats.rate_limited
        needed = min_calls(sim)
    if process.exit_code != 0:
        raise RuntimeError(f"the job failed (exit {process.exit_code}); see {process.log_path}")
    rows = last_run_rows(warehouse)
    # The job's own defaults for what the benchmark left unset (batch size, concurrency).
    defaults = Settings(
        account_id="-",
        client_id="-",
        client_secret=Secret("-"),
        requests_per_second=requests_per_second,
    )
    return BackfillResult(
        requests_per_second=requests_per_second,
        batch_rows=batch_rows or defaults.batch_rows or LocalEngine.batch_rows,
        concurrency=defaults.effective_concurrency,
        records=sum(row["records_fetched"] for row in rows),
        inserted=sum(row["records_inserted"] for row in rows),
        api_calls=api_calls,
        rate_limited=rate_limited,
        wall_seconds=process.wall_seconds,
        fetch_seconds=max(row["duration_seconds"] for row in rows),
        cpu_seconds=process.cpu_seconds,
        peak_rss_bytes=process.peak_rss_bytes,
        min_calls=needed,
        shape=shape,
        day_spread=workload.day_spread,
        days=workload.days,
        utc_offset_hours=workload.utc_offset_hours,
        reported_calls_per_second=rows[0].get("calls_per_second"),
    )
