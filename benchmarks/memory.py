"""Whether the job's peak memory follows the batch size, not the backfill's length: one run.

    python -m benchmarks.memory [--days 5 20] [--rate 40] [--batch-rows N]
    python -m benchmarks.memory --account full --days 30 120   # issue 14's account

Backfills of the same account shape (the same records a day, a different number of
days) by `zoom-ingest run` in child processes, each against its own simulator (in this
process, so its memory is not the job's); prints each one's peak RSS (the child's VmHWM)
and the ratio of the largest to the smallest. By default the large Business+ account of
issue 22 (50,000 sign-ins and 4,000 operations a day at 40 requests/s), 5 and 20 days:
its targets are 20 days ≤ 1.15 × 5 days and ≤ 400 MiB, and the verdicts say whether the
run met them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backfill import measure_backfill
from .harness import LARGE, Workload

#: Records a day (activity, operation) of the accounts measured: issue 22's large
#: Business+ account, and run.py's FULL plan (120 days is just over a million records).
ACCOUNTS = {
    "large": (LARGE.activity_per_day, LARGE.operation_per_day),
    "full": (7000.0, 1400.0),
}
#: Issue 22: the longest backfill's peak at most this × the shortest's…
PEAK_RATIO_LIMIT = 1.15
#: …and at most this many MiB.
PEAK_MIB_LIMIT = 400.0


def measure_memory(
    days: Sequence[float],
    rate: float,
    workdir: Path,
    *,
    batch_rows: int | None = None,
    latency: float = 0.3,
    account: str = "large",
) -> dict[str, Any]:
    """Peak RSS of one backfill per entry of `days`, and the largest over the smallest."""
    activity_per_day, operation_per_day = ACCOUNTS[account]
    rows = []
    for count in days:
        workload = Workload(
            days=count,
            activity_per_day=activity_per_day,
            operation_per_day=operation_per_day,
            latency=latency,
        )
        result = measure_backfill(workload, rate, workdir, batch_rows=batch_rows)
        rows.append(
            {
                "days": count,
                "records": result.records,
                "batch_rows": result.batch_rows,
                "wall_seconds": round(result.wall_seconds, 1),
                "cpu_seconds": round(result.cpu_seconds, 1),
                "peak_rss_mib": round(result.peak_rss_bytes / 2**20, 1),
            }
        )
    shortest = min(rows, key=lambda row: row["records"])
    longest = max(rows, key=lambda row: row["records"])
    ratio = longest["peak_rss_mib"] / shortest["peak_rss_mib"]
    return {
        "account": account,
        "requests_per_second": rate,
        "runs": rows,
        "peak_ratio": round(ratio, 3),
        "records_ratio": round(longest["records"] / shortest["records"], 2),
        "verdicts": {
            f"longest ≤ {PEAK_RATIO_LIMIT:g} × shortest": ratio <= PEAK_RATIO_LIMIT,
            f"longest ≤ {PEAK_MIB_LIMIT:g} MiB": longest["peak_rss_mib"] <= PEAK_MIB_LIMIT,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--days", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--batch-rows", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--account", choices=sorted(ACCOUNTS), default="large")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zoom-ingest-memory-") as folder:
        result = measure_memory(
            args.days,
            args.rate,
            Path(folder),
            batch_rows=args.batch_rows,
            latency=args.latency,
            account=args.account,
        )
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
