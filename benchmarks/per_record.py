"""The job's per-record cost, in records per CPU-second: normalise → lw_id → Arrow → merge.

    python -m benchmarks.per_record [--records 400000] [--days 8]

The records are the simulator's own (generated in this process before the clock starts)
and reach `normalise.Batch` as a backfill's writer gets them: in pages of 300, from
`CONCURRENT_WINDOWS` one-day windows paged at once (the job's concurrency at 40 requests
per second), one page from each in turn, newest page first, a window opening when one
ends. A batch is merged into the local warehouse whenever it holds `batch_rows` (the
job's default), so, as in the job, every batch spans the days in flight and overlaps
the batches before it. CPU time is this process's (`time.process_time()`, every
thread, the merge's included), so a busy machine stretches the wall time but not the
figure.

The same records also go through `ReferenceBatch`, the record-by-record normaliser the
job had before issue 14 (`normalise_record`, then `tables.lw_id`'s `json.dumps`, per
record), merged by the engine's MERGE (today's, in 14-day slices: the MERGE the job
ran before it appended under its run lock), into a second warehouse, so one run prints
both figures and their ratio: issue 14 asks for at least 3×.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
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


#: Day windows a backfill pages at once at 40 requests/s (the job's concurrency there).
CONCURRENT_WINDOWS = 12


def sample_records(records: int, days: int = 8, seed: int = 5) -> dict[str, list[Any]]:
    """About `records` simulator records over `days` days, in the large account's mix
    (50,000 sign-ins to 4,000 operations), as parsed JSON."""
    activity = records * 50 / 54 / days
    operation = records * 4 / 54 / days
    sim = Simulator(seed=seed, days=days, activity_per_day=activity, operation_per_day=operation)
    return {stream: sim.ground_truth(stream) for stream in LOG_TABLES}


def delivered_pages(records: list[Any], windows: int = CONCURRENT_WINDOWS) -> Iterator[list[Any]]:
    """`records` in pages as a backfill's fetch threads hand them to the writer: one-day
    windows, newest day first, `windows` of them open at once, each paged newest record
    first, one page from each open window in turn."""
    by_day: dict[str, list[Any]] = {}
    for record in records:
        by_day.setdefault(record["time"][:10], []).append(record)
    waiting = deque(sorted(by_day, reverse=True))
    open_windows: deque[Iterator[list[Any]]] = deque()
    while waiting or open_windows:
        while waiting and len(open_windows) < windows:
            open_windows.append(_pages_newest_first(by_day[waiting.popleft()]))
        window = open_windows.popleft()
        page = next(window, None)
        if page is not None:
            yield page
            open_windows.append(window)


def _pages_newest_first(records: list[Any]) -> Iterator[list[Any]]:
    ordered = sorted(records, key=lambda record: record["time"], reverse=True)
    for start in range(0, len(ordered), PAGE_SIZE):
        yield ordered[start : start + PAGE_SIZE]


def measure_per_record(
    records: int = 400_000, batch_rows: int = 100_000, days: int = 8
) -> dict[str, Any]:
    """The job's path, and the path before issue 14 on the same records; their ratio."""
    data = sample_records(records, days)
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
                batch = batch_type(spec)
                pages = delivered_pages(recs)
                while True:
                    t0 = time.process_time()
                    for page in pages:
                        batch.add(page)
                        if len(batch) >= batch_rows:
                            break
                    t1 = time.process_time()
                    normalise += t1 - t0
                    if not len(batch):
                        break
                    table = batch.to_arrow()
                    t2 = time.process_time()
                    engine.merge_new(spec, table)
                    t3 = time.process_time()
                    to_arrow += t2 - t1
                    merge += t3 - t2
                    batch = batch_type(spec)
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
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    result = measure_per_record(args.records, args.batch_rows, args.days)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
