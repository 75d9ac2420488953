"""The job's per-record cost, in records per CPU-second: normalise → lw_id → Arrow → MERGE.

    python -m benchmarks.per_record [--records 200000]

The records are the simulator's own (generated in this process before the clock starts),
fed to `normalise.Batch` in pages of 300 as the job's writer gets them, then turned into
the sorted Arrow table and merged into an empty local warehouse in batches of
`batch_rows`, as a backfill does. CPU time is this process's (`time.process_time()`), so a
busy machine stretches the wall time but not the figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.normalise import Batch
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import LOG_TABLES
from zoom_ingest.zoom.rules import PAGE_SIZE


def sample_records(records: int, seed: int = 5) -> dict[str, list[Any]]:
    """About `records` simulator records, five sign-ins to one operation, as parsed JSON."""
    days = 2
    activity = records * 5 / 6 / days
    operation = records / 6 / days
    sim = Simulator(seed=seed, days=days, activity_per_day=activity, operation_per_day=operation)
    return {stream: sim.ground_truth(stream) for stream in LOG_TABLES}


def measure_per_record(records: int = 200_000, batch_rows: int = 100_000) -> dict[str, Any]:
    data = sample_records(records)
    total = sum(len(v) for v in data.values())
    normalise = to_arrow = merge = 0.0
    with tempfile.TemporaryDirectory(prefix="zoom-ingest-per-record-") as folder:
        engine = LocalEngine(Path(folder))
        engine.ensure_tables()
        for stream, recs in data.items():
            spec = LOG_TABLES[stream]
            for start in range(0, len(recs), batch_rows):
                chunk = recs[start : start + batch_rows]
                batch = Batch(spec)
                t0 = time.process_time()
                for page in range(0, len(chunk), PAGE_SIZE):
                    batch.add(chunk[page : page + PAGE_SIZE])
                t1 = time.process_time()
                table = batch.to_arrow()
                t2 = time.process_time()
                engine.merge_new(spec, table)
                t3 = time.process_time()
                normalise += t1 - t0
                to_arrow += t2 - t1
                merge += t3 - t2
    cpu = normalise + to_arrow + merge
    return {
        "records": total,
        "batch_rows": batch_rows,
        "cpu_seconds": cpu,
        "normalise_seconds": normalise,
        "to_arrow_seconds": to_arrow,
        "merge_seconds": merge,
        "records_per_cpu_second": total / cpu,
        "normalise_records_per_cpu_second": total / normalise,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.per_record")
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(json.dumps(measure_per_record(args.records), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
