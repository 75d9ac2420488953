"""The job's per-record cost, in records per CPU-second: normalise → lw_id → Arrow → MERGE.

    python -m benchmarks.per_record [--records 200000]

The records are the simulator's own (generated in this process before the clock starts),
fed to `normalise.Batch` in pages of 300 as the job's writer gets them, then turned into
the sorted Arrow table and merged into an empty local warehouse in batches of
`batch_rows`, as a backfill does, holding the engine's run lock as the job does (so the
merge is the job's: an append of the rows not yet in the table, see `LocalEngine.merge_new`).
CPU time is this process's (`time.process_time()`), so a busy machine stretches the wall
time but not the figure.

The same records also go through `ReferenceBatch`, the record-by-record normaliser the
job had before issue 14 (`normalise_record`, then `tables.lw_id`'s `json.dumps`, per
record), into a second warehouse without the run lock, so merged by delta-rs MERGEs as
before issue 14; one run prints both figures and their ratio: issue 14 asks for at least 3×.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pyarrow as pa

from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.normalise import Batch, RecordError, Reject, normalise_record, raw_json
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import LOG_TABLES
from zoom_ingest.zoom.rules import PAGE_SIZE


class ReferenceBatch(Batch):
    """The batch as it was before issue 14: every record through `normalise_record`
    (its own RFC 3339 parse, and `tables.lw_id`: `json.dumps` and SHA-256), one dict per
    row, one Arrow table per page. Kept here only to measure the job's path against."""

    def add(self, records: Iterable[object]) -> None:
        columns: dict[str, list[object]] = {name: [] for name in self.spec.columns}
        for record in records:
            self.records_seen += 1
            try:
                row = normalise_record(self.spec, record)
            except RecordError as exc:
                self.rejects.append(Reject(reason=str(exc), raw_json=raw_json(record)))
                continue
            key = str(row["lw_id"])
            if key in self._ids:
                continue
            self._ids.add(key)
            for name, values in columns.items():
                values.append(row.get(name))
        if columns["lw_id"]:
            self._chunks.append(pa.Table.from_pydict(columns, schema=self.spec.schema))
            self._rows = None


def sample_records(records: int, seed: int = 5) -> dict[str, list[Any]]:
    """About `records` simulator records, five sign-ins to one operation, as parsed JSON."""
    days = 2
    activity = records * 5 / 6 / days
    operation = records / 6 / days
    sim = Simulator(seed=seed, days=days, activity_per_day=activity, operation_per_day=operation)
    return {stream: sim.ground_truth(stream) for stream in LOG_TABLES}


def measure_per_record(records: int = 200_000, batch_rows: int = 100_000) -> dict[str, Any]:
    """The job's path, and the path before issue 14 on the same records; their ratio."""
    data = sample_records(records)
    current = measure_path(data, Batch, batch_rows, run_lock=True)
    reference = measure_path(data, ReferenceBatch, batch_rows, run_lock=False)
    return {
        **current,
        "before_issue_14": reference,
        "ratio_to_before_issue_14": current["records_per_cpu_second"]
        / reference["records_per_cpu_second"],
    }


def measure_path(
    data: dict[str, list[Any]], batch_type: type[Batch], batch_rows: int, *, run_lock: bool
) -> dict[str, Any]:
    """Records per CPU-second of `batch_type`'s normalise, the sorted table and merge;
    the merge under the engine's run lock (the job's append) or not (MERGEs)."""
    total = sum(len(v) for v in data.values())
    normalise = to_arrow = merge = 0.0
    with tempfile.TemporaryDirectory(prefix="zoom-ingest-per-record-") as folder:
        engine = LocalEngine(Path(folder))
        engine.ensure_tables()
        with engine.run_lock() if run_lock else nullcontext():
            for stream, recs in data.items():
                spec = LOG_TABLES[stream]
                for start in range(0, len(recs), batch_rows):
                    chunk = recs[start : start + batch_rows]
                    batch = batch_type(spec)
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
