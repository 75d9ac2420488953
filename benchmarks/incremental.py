"""The cost of an hourly incremental run as the table grows.

For each table size a warehouse is built directly with Arrow data (not through the API,
which would take hours for 10 million rows): synthetic history, oldest first, written
in files of `FILE_ROWS` rows sorted by time (the size the local engine's compaction
produces), and, as the newest rows, the simulator's own records up to the checkpoint.
The checkpoint is set one hour before the simulator's "now", so the run re-reads the
lookback hour (already in the table) and inserts one new hour: the same new data for
every table size. The run is `zoom-ingest run` in a child process; files scanned and
skipped come from the merge commits in the Delta log (a MERGE's metrics, or the summary
the local engine writes into an insert-only merge's append).
"""

from __future__ import annotations

import json
import random
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from zoom_ingest.engines.local import SMALL_FILE_BYTES, LocalEngine
from zoom_ingest.normalise import Batch
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import ACTIVITY_LOGS, LOG_TABLES, OPERATION_LOGS, TableSpec
from zoom_ingest.zoom.rules import PAGE_SIZE

from .backfill import warm_up
from .harness import (
    files_in_merge_range,
    last_run_rows,
    merges_since,
    run_job_process,
    run_python_process,
    table_version,
)

#: Rows per file in the built tables (about 75 MB of Parquet for activity_logs).
FILE_ROWS = 1_000_000
#: New records per hour and stream: a large account (~48,000 sign-ins a day).
NEW_PER_HOUR = {ACTIVITY_LOGS.name: 2000, OPERATION_LOGS.name: 400}
#: The hourly run is on a Pro account: 10 requests/s.
REQUESTS_PER_SECOND = 10.0
LOOKBACK = timedelta(hours=1)  # the job's default


@dataclass(frozen=True)
class CompactionResult:
    """`maintain()` once the hourly runs have left more small files than it tolerates."""

    small_files: int  # small files per log table when it ran
    wall_seconds: float  # a child process that opens the warehouse and runs maintain()
    peak_rss_bytes: int
    bytes_rewritten: int  # data read and written again by the OPTIMIZE commits


@dataclass(frozen=True)
class IncrementalResult:
    table_rows: int  # rows in activity_logs before the run (operation_logs: a fifth)
    table_files: int  # data files of both log tables before the run
    new_records: int  # records newer than the checkpoint
    fetched: int  # records fetched (new + the lookback re-read)
    inserted: int
    api_calls: int
    wall_seconds: float  # the whole `zoom-ingest run` process
    merge_seconds: float  # delta-rs' own time for the MERGEs into the log tables
    files_scanned: int  # data files whose time range the MERGEs overlap (read by them)
    files_skipped: int  # data files pruned on their statistics
    peak_rss_bytes: int
    compaction: CompactionResult | None

    @property
    def expected_calls(self) -> float:
        """New records / page size: the floor a run that fetched only new data would pay."""
        return self.new_records / PAGE_SIZE

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "expected_calls": self.expected_calls}


def measure_compaction(
    engine: LocalEngine, workdir: Path, label: str, new_per_hour: Mapping[str, int], seed: int
) -> CompactionResult:
    """Add the small files of the hourly runs until the next one compacts, then time
    `maintain()` in a child process (what that hourly run pays on top)."""
    small_files = engine.compact_after_files + 1
    rng = random.Random(seed)
    versions = {}
    for spec in LOG_TABLES.values():
        path = engine.table_path(spec)
        newest = _newest_time(path)
        existing = _small_files(path)
        for hour in range(max(0, small_files - existing)):
            start = newest + timedelta(hours=hour)
            (chunk,) = _synthetic_chunks(
                spec, rng, start, start + timedelta(hours=1), new_per_hour[spec.name]
            )
            write_deltalake(str(path), chunk, mode="append")
        versions[spec.name] = table_version(path)
    process = run_python_process(
        f"from zoom_ingest.engines.local import LocalEngine; "
        f"LocalEngine({str(engine.warehouse)!r}).maintain()",
        workdir / f"{label}-maintain.log",
    )
    if process.exit_code != 0:
        raise RuntimeError(f"maintain() failed; see {process.log_path}")
    rewritten = 0
    for spec in LOG_TABLES.values():
        for entry in DeltaTable(str(engine.table_path(spec))).history():
            if entry.get("operation") == "OPTIMIZE" and entry["version"] > versions[spec.name]:
                removed = json.loads(entry["operationMetrics"]["filesRemoved"])
                rewritten += int(removed["totalSize"])
    return CompactionResult(
        small_files=small_files,
        wall_seconds=process.wall_seconds,
        peak_rss_bytes=process.peak_rss_bytes,
        bytes_rewritten=rewritten,
    )


def _newest_time(path: Path) -> datetime:
    files = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))
    return max(files.column("max.time").to_pylist()) + timedelta(seconds=1)


def _small_files(path: Path) -> int:
    files = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))
    return sum(1 for size in files.column("size_bytes").to_pylist() if size < SMALL_FILE_BYTES)


def measure_incremental(
    table_rows: int,
    workdir: Path,
    *,
    latency: float = 0.3,
    new_per_hour: Mapping[str, int] = NEW_PER_HOUR,
    compaction: bool = True,
    seed: int = 23,
) -> IncrementalResult:
    """Build a warehouse whose activity_logs has `table_rows` rows, then time one run
    (and, with `compaction`, the compaction a later hourly run triggers)."""
    warehouse = workdir / f"incremental-{table_rows}"
    per_day = {name: rate * 24 for name, rate in new_per_hour.items()}
    with Simulator(
        seed=seed,
        days=1,
        activity_per_day=per_day[ACTIVITY_LOGS.name],
        operation_per_day=per_day[OPERATION_LOGS.name],
        qps_limit=REQUESTS_PER_SECOND,
        latency=latency,
    ) as sim:
        warm_up(sim)
        cursor = sim.now.replace(microsecond=0) - timedelta(hours=1)
        engine = LocalEngine(warehouse)
        engine.ensure_tables()
        files = 0
        for spec, rows in ((ACTIVITY_LOGS, table_rows), (OPERATION_LOGS, table_rows // 5)):
            per_hour = new_per_hour[spec.name]
            files += build_table(engine, spec, sim, cursor, rows, per_hour, seed)
            engine.save_checkpoint(sim.account_id, spec.name, cursor, "benchmark-setup")
        new_records = sum(len(sim.ground_truth(stream, start=cursor)) for stream in LOG_TABLES)
        versions = {
            name: table_version(engine.table_path(spec)) for name, spec in LOG_TABLES.items()
        }
        process = run_job_process(
            sim,
            warehouse,
            workdir / f"incremental-{table_rows}.log",
            settings={"requests_per_second": REQUESTS_PER_SECOND},
        )
        api_calls = sim.stats.calls
    if process.exit_code != 0:
        raise RuntimeError(f"the job failed (exit {process.exit_code}); see {process.log_path}")
    rows = last_run_rows(warehouse)
    merges = [
        (spec, entry)
        for name, spec in LOG_TABLES.items()
        for entry in merges_since(engine.table_path(spec), versions[name])
    ]
    in_range = [
        files_in_merge_range(engine.table_path(spec), int(entry["version"]) - 1, entry)
        for spec, entry in merges
    ]
    metrics = [entry.get("operationMetrics", {}) for _, entry in merges]
    return IncrementalResult(
        table_rows=table_rows,
        table_files=files,
        new_records=new_records,
        fetched=sum(row["records_fetched"] for row in rows),
        inserted=sum(row["records_inserted"] for row in rows),
        api_calls=api_calls,
        wall_seconds=process.wall_seconds,
        merge_seconds=sum(m.get("execution_time_ms", 0) for m in metrics) / 1000,
        files_scanned=sum(n or 0 for n in in_range),
        files_skipped=files - sum(n or 0 for n in in_range),
        peak_rss_bytes=process.peak_rss_bytes,
        compaction=(
            measure_compaction(engine, workdir, f"incremental-{table_rows}", new_per_hour, seed)
            if compaction
            else None
        ),
    )


def build_table(
    engine: LocalEngine,
    spec: TableSpec,
    sim: Simulator,
    cursor: datetime,
    rows: int,
    per_hour: int,
    seed: int,
) -> int:
    """Fill `spec`'s table with `rows` rows ending at `cursor`; returns the files written.

    The newest rows are the simulator's records before `cursor` (so the run's lookback
    re-read finds them); the rest is synthetic history before the simulator's first
    record, as dense as the new data. Files hold `FILE_ROWS` rows each, sorted by time.
    """
    batch = Batch(spec)
    batch.add(sim.ground_truth(spec.name, end=cursor))
    recent = batch.to_arrow()
    synthetic = max(0, rows - recent.num_rows)
    per_second = per_hour / 3600
    history_end = sim.start_time.replace(microsecond=0)
    history_start = history_end - timedelta(seconds=synthetic / per_second)
    rng = random.Random(seed)
    pending: list[pa.Table] = []
    pending_rows = written = 0
    path = str(engine.table_path(spec))
    chunks = _synthetic_chunks(spec, rng, history_start, history_end, synthetic)
    for chunk in [*chunks, recent]:
        pending.append(chunk)
        pending_rows += chunk.num_rows
        while pending_rows >= FILE_ROWS:
            table = pa.concat_tables(pending)
            write_deltalake(path, table.slice(0, FILE_ROWS), mode="append")
            written += 1
            rest = table.slice(FILE_ROWS)
            pending, pending_rows = [rest], rest.num_rows
    if pending_rows:
        write_deltalake(path, pa.concat_tables(pending), mode="append")
        written += 1
    return written


def _synthetic_chunks(
    spec: TableSpec, rng: random.Random, start: datetime, end: datetime, rows: int
) -> Iterator[pa.Table]:
    """`rows` rows evenly spread over [start, end), oldest first, in chunks."""
    start_us = int(start.timestamp() * 1_000_000)
    step = (end - start) / timedelta(microseconds=1) / max(rows, 1)
    for first in range(0, rows, FILE_ROWS):
        count = min(FILE_ROWS, rows - first)
        positions = pa.array(range(first, first + count), pa.float64())
        offsets = pc.cast(pc.floor(pc.multiply(positions, step)), pa.int64())
        times = pc.cast(pc.add(offsets, start_us), spec.schema.field("time").type)
        yield pa.table(_columns(spec, rng, times, count), schema=spec.schema)


def _columns(
    spec: TableSpec, rng: random.Random, times: pa.Array, count: int
) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {"lw_id": _hex_ids(rng, count), "time": times}
    if spec is ACTIVITY_LOGS:
        columns |= {
            "type": _pick(rng, count, ["Sign in", "Sign out"]),
            "email": _pick(rng, count, [f"user{n}@example.com" for n in range(16_000)]),
            "ip_address": _pick(rng, count, [f"10.{n >> 8}.{n & 255}.7" for n in range(20_000)]),
            "client_type": _pick(rng, count, ["Browser", "win", "Windows", "Mac", "iOS"]),
            "version": _pick(rng, count, ["-", "6.2.5.39520", "6.1.11.38917", "5.17.11.34827"]),
        }
    else:
        columns |= {
            "operator": _pick(rng, count, [f"admin{n}@example.com" for n in range(40)]),
            "category_type": _pick(rng, count, ["User", "Account", "Role", "Recording", "IM"]),
            "action": _pick(rng, count, ["Add", "Update", "Delete", "Sign in"]),
            "operation_detail": _pick(
                rng, count, [f"Update user{n}@example.com: Role" for n in range(16_000)]
            ),
        }
    return columns


def _hex_ids(rng: random.Random, count: int) -> pa.Array:
    """`count` random 64-character hex strings (lw_id's shape), built without a loop."""
    text = rng.randbytes(32 * count).hex().encode("ascii")
    offsets = array("i", range(0, 64 * (count + 1), 64))
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text))


def _pick(rng: random.Random, count: int, values: list[str]) -> pa.Array:
    """`count` values drawn from `values` (uniformly, seeded by `rng`)."""
    uniform = pc.random(count, initializer=rng.getrandbits(63))
    indices = pc.cast(pc.floor(pc.multiply(uniform, len(values))), pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(values)).dictionary_decode()
