"""Whether the job's peak memory follows the batch size, not the backfill size: one run.

    python -m benchmarks.memory [--days 120 30] [--rate 40] [--batch-rows N]

Two backfills of the same account shape (the same records a day, a different number of
days) by `zoom-ingest run` in child processes, each against its own simulator; prints
each one's peak RSS (the child's VmHWM) and the ratio of the larger to the smaller.
Issue 14 asks for that ratio to stay near 1 (the million-record backfill within about
1.2× of a quarter of it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backfill import measure_backfill
from .harness import Workload

#: The records a day of run.py's FULL plan: 120 days is just over a million records.
ACTIVITY_PER_DAY = 7000
OPERATION_PER_DAY = 1400


def measure_memory(
    days: Sequence[float],
    rate: float,
    workdir: Path,
    *,
    batch_rows: int | None = None,
    latency: float = 0.3,
) -> dict[str, Any]:
    """Peak RSS of one backfill per entry of `days`, and the largest over the smallest."""
    rows = []
    for count in days:
        workload = Workload(
            days=count,
            activity_per_day=ACTIVITY_PER_DAY,
            operation_per_day=OPERATION_PER_DAY,
            latency=latency,
        )
        result = measure_backfill(workload, rate, workdir, batch_rows=batch_rows)
        rows.append(
            {
                "days": count,
                "records": result.records,
                "batch_rows": result.batch_rows,
                "wall_seconds": round(result.wall_seconds, 1),
                "peak_rss_mib": round(result.peak_rss_bytes / 2**20, 1),
            }
        )
    smallest = min(rows, key=lambda row: row["records"])
    largest = max(rows, key=lambda row: row["records"])
    return {
        "requests_per_second": rate,
        "runs": rows,
        "peak_ratio": round(largest["peak_rss_mib"] / smallest["peak_rss_mib"], 3),
        "records_ratio": round(largest["records"] / smallest["records"], 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--days", type=float, nargs="+", default=[120.0, 30.0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--batch-rows", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zoom-ingest-memory-") as folder:
        result = measure_memory(
            args.days, args.rate, Path(folder), batch_rows=args.batch_rows, latency=args.latency
        )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
