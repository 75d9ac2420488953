"""The local engine: real Delta tables in a folder, written with delta-rs (no JVM, no cluster).

Layout: one sub-folder per table, named after it (`<warehouse>/activity_logs`,
`<warehouse>/zoom_ingest_checkpoints`, …), plus `<warehouse>/.zoom_ingest.lock` while a
run holds the warehouse. Any Delta reader (Spark, DuckDB, Polars, delta-rs) can read the
tables.

delta-rs cannot create liquid-clustered tables (`CLUSTER BY`). The local engine keeps the
files sorted by `time` instead: a batch is merged in time slices (`MERGE_SLICE_DAYS`
each, aligned on the epoch), sorted, so each new file covers a narrow time range, and
`maintain()` rewrites many small files into few files
Z-ordered on `time` (for one column that is a plain sort) or, once a table is large,
joins the small files in the order they were written. The file statistics then let
the merge's time-range predicate skip every file outside the batch's range.

While the engine holds its run lock, no other process or engine object writes the
warehouse, so an insert-only merge of a slice is done without a MERGE: read the keys the
table has within the slice's time range (only the files whose statistics overlap it),
drop the slice's rows that are among them, and append the rest. Same rows, one commit
per slice, at a fraction of a MERGE's CPU (issue 14).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError
from deltalake.schema import Field
from deltalake.table import MAX_SUPPORTED_READER_VERSION, SUPPORTED_READER_FEATURES
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from ..tables import ALL_TABLES, CHECKPOINTS, LEASES, UTC, TableSpec, checkpoint_row
from . import rules
from .appended_keys import KEPT_KEYS_LIMIT, AppendedKeys
from .base import LeaseHolder, TableSchemaMismatch, UnsupportedTable
from .folder_lock import warehouse_lock
from .rules import schema_differences

log = logging.getLogger(__name__)
T = TypeVar("T")

# A file this small was written by one merge or append, not by compaction.
SMALL_FILE_BYTES = 16 * 1024 * 1024
# Up to this size `maintain()` re-sorts a whole table on its cluster_by column; beyond
# it, re-sorting at every compaction would rewrite the whole table (a 10-million-row
# activity_logs: ~1 GB, ~30 s, ~2.4 GB of memory), so only the small files are joined.
# The sort holds about three times the table at its peak (a 124 MiB table: +368 MiB),
# so it stays small: a month's backfill makes enough files to be compacted at its end.
SORT_WHOLE_TABLE_BYTES = 32 * 1024 * 1024
# Small files are joined into files of about this size (unless the table sets its own
# delta.targetFileSize), one at a time: the join's memory follows the file it writes
# (+68 MiB for a 124 MiB table, against +120 MiB with delta-rs's defaults), not the table.
COMPACT_TARGET_BYTES = 32 * 1024 * 1024
# A merge writes and reads files of at most this many days of `cluster_by`. A batch
# spans as many days as the writer had windows open (weeks in a backfill); merged whole,
# it would write one file that wide, and every later merge over any of those days
# would read it, so a merge's memory would grow with the table up to batches' span
# (issue 14). Slices aligned on the epoch keep each file to one slice, and a slice's
# merge reads only the few files of its own days. One commit per slice: 14 days keeps
# a backfill's commits to a few times its batches.
MERGE_SLICE_DAYS = 14
# ... but a slice holds at least this many rows: a small batch (batch_rows 25,000) or a
# sparse period is merged with its neighbours. Narrow files matter when they are big;
# many small ones would only cost commits and make `maintain()` compact (and, for a
# table under SORT_WHOLE_TABLE_BYTES, re-sort the whole table) within a backfill.
MERGE_SLICE_MIN_ROWS = 20_000
# The keys an insert-only merge reads from the table (`_keys_among`) are read this many
# rows at a time (~17 MiB of lw_ids), not all at once: the read's memory stays one piece
# however many keys the slice's range holds. Each piece hashes the slice's keys again,
# so not much smaller.
KEY_READ_BATCH_ROWS = 262_144
# The files an insert-only merge appends hold row groups of at most this many rows. A
# later merge reads a file's keys a row group at a time (the reader takes a row group's
# column whole, then decodes it), and the writer encodes a row group at a time: both
# stay within a few MiB however large the batch or the file (a 100,000-row row group
# cost each read ~30 MiB and each write ~45 MiB, issue 22).
APPEND_ROW_GROUP_ROWS = 16_384
# Optimistic commits that lose a race are re-run this many times in all; the operations
# are idempotent, so re-running one against the newer table version is always safe.
COMMIT_ATTEMPTS = 5
# A lease MERGE that loses is re-run against the newer version: more tries, since every
# contender of a lease commits at once.
LEASE_COMMIT_ATTEMPTS = 20
# Delta writer features delta-rs refuses to write (it fails the commit naming them); a
# table made by the Spark engine has the first two (liquid clustering).
UNWRITABLE_FEATURES = (
    "clustering",
    "domainMetadata",
    "rowTracking",
    "typeWidening",
    "variantType",
    "icebergCompatV1",
    "icebergCompatV2",
)
#: The commit-info key of an insert-only merge done by appending (under the run lock):
#: its time-range predicate, files scanned and skipped, rows inserted, milliseconds.
INSERT_NEW = "zoomIngestInsertNew"
# The Delta reader protocol deltalake's pyarrow datasets read (it refuses any other); a
# table beyond it (deletion vectors, column mapping, v2 checkpoints, …) is merged with a
# MERGE even under the run lock.
ARROW_READER_VERSION = MAX_SUPPORTED_READER_VERSION
ARROW_READER_FEATURES = frozenset(SUPPORTED_READER_FEATURES)


class LocalEngine:
    """Delta tables in a local folder, via delta-rs."""

    name = "local"
    #: A merge reads no file this object appended itself (`AppendedKeys`), so a small
    #: batch costs no more CPU than a large one, and the job's memory follows the batch
    #: (issue 22: a 20-day backfill of a large account peaked at 1.14 × a 5-day one with
    #: 20,000 rows, 1.15 with 25,000, 1.44 with 100,000). Not smaller: each batch is a
    #: file, and more than `compact_after_files` small ones are compacted.
    batch_rows = 20_000
    #: The warehouse's lock file excludes every other run while one holds it.
    exclusive_runs = True

    def __init__(
        self,
        warehouse: str | Path,
        *,
        compact_after_files: int = 64,
        kept_keys_per_table: int = KEPT_KEYS_LIMIT,
    ) -> None:
        """`compact_after_files`: `maintain()` compacts a table once it has more small
        files. `kept_keys_per_table`: at most this many keys of what this object appended
        under the run lock are kept per table (`AppendedKeys`)."""
        self.warehouse = Path(warehouse).expanduser().absolute()
        self.compact_after_files = compact_after_files
        self.kept_keys_per_table = kept_keys_per_table
        #: Metrics of the last `merge_new`, summed over its slices (delta-rs names), for
        #: logs and tests: num_target_files_scanned, num_target_files_skipped_during_scan,
        #: num_target_rows_inserted; and num_slices_appended, the slices merged by the
        #: run lock's append rather than a MERGE.
        self.last_merge_metrics: dict[str, Any] = {}
        self._tables: dict[str, DeltaTable] = {}
        # True while this object holds the warehouse's run lock: no other process or
        # engine object writes. It is the object's, not a thread's (the job's committer
        # thread merges while its main thread holds the lock), so an object under the
        # lock takes one writing thread at a time, as the job's committer is.
        self._holds_run_lock = False
        # table name → the keys this object appended under the run lock (`AppendedKeys`).
        self._appended: dict[str, AppendedKeys] = {}

    def describe(self) -> str:
        return f"local Delta tables in {self.warehouse}"

    # -- tables -------------------------------------------------------------------------

    def table_path(self, spec: TableSpec) -> Path:
        return rules.table_folder(self.warehouse, spec)

    def ensure_tables(self, specs: Iterable[TableSpec] | None = None) -> None:
        """Create missing tables with exactly the schemas of `tables.py`; check the others.

        A table that exists with another schema raises TableSchemaMismatch and is left
        alone: altering a table users query is a decision for a person. A table that uses
        a Delta feature delta-rs cannot write (e.g. liquid clustering, in tables the Spark
        engine made) raises UnsupportedTable naming it, before anything is written; such
        tables stay readable here (status, query, report).
        """
        self.warehouse.mkdir(parents=True, exist_ok=True)
        wanted = list(specs) if specs is not None else list(ALL_TABLES.values())
        unwritable = {
            spec.name: features
            for spec in wanted
            if (features := unwritable_features(self.table_path(spec)))
        }
        if unwritable:
            name, features = next(iter(unwritable.items()))
            raise UnsupportedTable(name, str(self.warehouse / name), features, self.name)
        for spec in wanted:
            path = self.table_path(spec)
            if not DeltaTable.is_deltatable(str(path)):
                # mode="ignore": a concurrent creator wins quietly; the check below
                # then holds it to the same schema.
                DeltaTable.create(
                    path, spec.schema, mode="ignore", name=spec.name, description=spec.comment
                )
                log.info("created table %s at %s", spec.name, path)
            table = DeltaTable(path)
            actual = pa.schema(table.schema().to_arrow())
            if _add_missing_columns(table, spec, actual):
                table = DeltaTable(path)
                actual = pa.schema(table.schema().to_arrow())
            differences = schema_differences(spec.schema, actual)
            if differences:
                raise TableSchemaMismatch(spec.name, str(path), differences)
            self._tables[spec.name] = table

    def _table(self, spec: TableSpec) -> DeltaTable:
        """The table at its latest version (one cached handle per table, refreshed)."""
        table = self._tables.get(spec.name)
        if table is None:
            path = self.table_path(spec)
            if not DeltaTable.is_deltatable(str(path)):
                raise FileNotFoundError(
                    f"table {spec.name} does not exist in {self.warehouse}: "
                    "run ensure_tables() first"
                )
            table = self._tables[spec.name] = DeltaTable(path)
        else:
            table.update_incremental()
        return table

    # -- writes -------------------------------------------------------------------------

    def merge_new(self, spec: TableSpec, batch: pa.Table) -> int:
        """Insert the rows of `batch` whose key is not in the table yet; return how many.

        An insert-only MERGE (`WHEN NOT MATCHED THEN INSERT`) on `spec.key`. With
        `spec.cluster_by` the ON clause also limits the target to the batch's min/max of
        that column: a row with the same `lw_id` has the same `time` (the id hashes it),
        so no match is lost, and delta-rs skips every file whose statistics lie outside
        the range. delta-rs cannot create liquid-clustered tables; the local engine keeps
        files sorted by `time` instead (batches arrive sorted, `maintain()` re-sorts).

        A batch spanning more than one `MERGE_SLICE_DAYS` period is merged a period at a
        time (`time_slices`; sparse periods together), one commit each, so that a big
        file spans one period and a merge reads only its period's files. Every slice is itself an
        idempotent insert-only merge, so a run that stops between slices loses nothing:
        its checkpoint has not moved, and the next run merges the batch again.

        While this object holds the run lock (`run_lock()`, as the job does), a slice of
        a table with a one-column key is merged without a MERGE (`_append_new_slice`):
        the lock excludes every other writer, so reading the keys already in the slice's
        range and appending the rows whose key is not among them inserts exactly what
        the MERGE would, for a fraction of its CPU. Without the lock (direct use, where
        another writer may commit between the read and the append) it is always the
        MERGE.

        An empty batch returns 0 without a commit; so does a batch with nothing new.
        A lost commit race is retried: the merge is idempotent.
        """
        batch = _conform(spec, batch)
        self.last_merge_metrics = {}
        inserted = 0
        merge_slice = self._append_new_slice if self._may_append_new(spec) else self._merge_slice
        for piece in time_slices(spec, batch):
            inserted += merge_slice(spec, piece)
        release_freed_memory()
        return inserted

    def _may_append_new(self, spec: TableSpec) -> bool:
        """Whether `_append_new_slice` may stand in for the MERGE: only this object writes
        the warehouse (it holds the run lock), the key is one column, and pyarrow can read
        the table."""
        if not self._holds_run_lock or len(spec.key) != 1:
            return False
        protocol = self._table(spec).protocol()
        features = set(protocol.reader_features or ())
        return protocol.min_reader_version <= ARROW_READER_VERSION and features <= (
            ARROW_READER_FEATURES
        )

    def _append_new_slice(self, spec: TableSpec, batch: pa.Table) -> int:
        """The insert-only merge of one slice under the run lock: the rows of `batch`
        whose key the table does not hold (within the slice's range of `cluster_by`, if
        it has one), appended in one commit; none when nothing is new.

        The same rows as the MERGE's: its ON clause matches the key within the batch's
        min/max of `cluster_by` (inclusive), and so does the check here. Only the files
        whose statistics overlap that range count, and of those only the ones this
        object did not append since it last saw the table change are read: the keys it
        appended itself are in memory (`AppendedKeys`), and a key found there is read
        back only from the row groups of its own time. A null key matches nothing, as
        in SQL."""
        key = spec.key[0]
        keys = batch.column(key).combine_chunks()
        times = batch.column(spec.cluster_by).combine_chunks() if spec.cluster_by else None
        limits = rules.batch_range(spec, batch)
        pruning: str | None = None
        in_range: pc.Expression | None = None
        if limits is not None:
            column, low, high = limits
            # The MERGE ON clause's range without its target: selects the files whose
            # statistics overlap it.
            pruning = rules.range_condition(column, low, high, DELTA_RS)
            column_type = batch.schema.field(column).type
            in_range = (pc.field(column) >= pa.scalar(low, column_type)) & (
                pc.field(column) <= pa.scalar(high, column_type)
            )

        def run() -> dict[str, int]:
            started = time.monotonic()
            table = self._table(spec)
            appended = self._appended_to(spec, table)
            matched, files = _keys_held(
                table, spec, appended, keys, times, limits, pruning, in_range
            )
            if len(matched):
                new = batch.filter(pc.invert(pc.is_in(keys, value_set=matched, skip_nulls=True)))
            else:
                new = batch  # nothing there yet (a backfill's rule): no copy of the slice
            metrics = {
                **files,
                "num_target_rows_inserted": new.num_rows,
                "num_slices_appended": 1,
            }
            if new.num_rows:
                # The commit says what it stands for (the Delta log would otherwise show a
                # plain append): the merge's range and what it read, for the history.
                summary = {
                    "predicate": pruning or "",
                    "execution_time_ms": round((time.monotonic() - started) * 1000),
                    **metrics,
                }
                write_deltalake(
                    table,
                    new,
                    mode="append",
                    writer_properties=append_properties(spec),
                    commit_properties=CommitProperties(custom_metadata={INSERT_NEW: summary}),
                )
                # Kept only once committed; a write that raised leaves the record at the
                # version before it, and a commit that landed anyway then starts a new one.
                new_keys = new.column(key).combine_chunks()
                new_times = None if times is None else new.column(column).combine_chunks()
                if appended is not None and appended.add(new_keys, new_times):
                    appended.version = table.version()
                else:
                    self._appended.pop(spec.name, None)
            return metrics

        metrics = _with_commit_retries(run)
        log.debug("append of new rows into %s: %s", spec.name, metrics)
        self._add_metrics(metrics)
        return metrics["num_target_rows_inserted"]

    def _appended_to(self, spec: TableSpec, table: DeltaTable) -> AppendedKeys | None:
        """What this object appended to `spec`'s table, valid at its current version: the
        record kept since, or a new one (after any other commit) whose files_before is
        every file the table has now. None for a table whose keys are not kept: a key
        matches only within the slice's time range, so a table with `cluster_by` is kept
        only when its key is the lw_id, which names its time (it hashes it)."""
        fingerprints = spec.key == ("lw_id",) and spec.cluster_by is not None
        if spec.cluster_by is not None and not fingerprints:
            return None
        record = self._appended.get(spec.name)
        version = table.version()
        if record is None or record.version != version:
            paths = pa.table(table.get_add_actions(flatten=False)).column("path")
            record = self._appended[spec.name] = AppendedKeys(
                version,
                frozenset(_dataset_paths(paths)),
                fingerprints=fingerprints,
                limit=self.kept_keys_per_table,
            )
        return record

    def _add_metrics(self, metrics: dict[str, Any]) -> None:
        """Sum one slice's counters into `last_merge_metrics`: what the whole batch's merge did."""
        for name, value in metrics.items():
            if isinstance(value, int):
                self.last_merge_metrics[name] = self.last_merge_metrics.get(name, 0) + value

    def _merge_slice(self, spec: TableSpec, batch: pa.Table) -> int:
        """One insert-only MERGE (one commit) of rows within one time slice."""
        predicate = merge_predicate(spec, batch)

        def run() -> dict[str, Any]:
            merger = self._table(spec).merge(
                batch, predicate, source_alias="source", target_alias="target"
            )
            return merger.when_not_matched_insert_all().execute()

        metrics = _with_commit_retries(run)
        log.debug("merge into %s: %s", spec.name, metrics)
        self._add_metrics(metrics)
        return int(metrics["num_target_rows_inserted"])

    def append(self, spec: TableSpec, batch: pa.Table) -> None:
        """Append rows as they are (the runs table). An empty batch makes no commit."""
        batch = _conform(spec, batch)
        if batch.num_rows == 0:
            return
        _with_commit_retries(lambda: write_deltalake(self._table(spec), batch, mode="append"))

    def upsert(self, spec: TableSpec, batch: pa.Table) -> None:
        """MERGE on `spec.key`: every column of a matched row replaced, new rows inserted."""
        batch = _conform(spec, batch)
        if batch.num_rows == 0:
            return
        predicate = rules.key_condition(spec, DELTA_RS)

        def run() -> dict[str, Any]:
            merger = self._table(spec).merge(
                batch, predicate, source_alias="source", target_alias="target"
            )
            return merger.when_matched_update_all().when_not_matched_insert_all().execute()

        _with_commit_retries(run)

    def save_checkpoint(self, account_id: str, stream: str, cursor: datetime, run_id: str) -> None:
        """Upsert the (account_id, stream) row, never moving a cursor backwards.

        MERGE: insert when missing, update only when the new cursor is later. Two runs
        that overlap (an hourly run and a reconcile) each claim only what they
        committed; whichever writes last cannot take back what the other claimed.
        """
        row = checkpoint_row(account_id, stream, cursor, run_id)
        predicate = rules.key_condition(CHECKPOINTS, DELTA_RS)
        later = rules.moves_forward(rules.CHECKPOINT_CURSOR, DELTA_RS)

        def run() -> dict[str, Any]:
            merger = self._table(CHECKPOINTS).merge(
                row, predicate, source_alias="source", target_alias="target"
            )
            return (
                merger.when_matched_update_all(predicate=later)
                .when_not_matched_insert_all()
                .execute()
            )

        _with_commit_retries(run)

    def write_lease(self, lease: pa.Table) -> list[LeaseHolder]:
        """The lease MERGE (`rules.lease_claim_condition`), committed only on top of the
        version it read: `max_commit_retries=0` stops delta-rs from rebasing it onto a
        concurrent commit, so of two writers that read the same version exactly one
        commits. The loser re-runs the MERGE against the new version, where the lease is
        taken and the MERGE changes nothing."""
        lease = _conform(LEASES, lease)
        path = self.table_path(LEASES)

        def create() -> None:
            # Contenders on a new location all create it: one commit wins, the others'
            # fail and find the table there on the retry.
            if not DeltaTable.is_deltatable(str(path)):
                path.parent.mkdir(parents=True, exist_ok=True)
                DeltaTable.create(
                    path, LEASES.schema, mode="ignore", name=LEASES.name, description=LEASES.comment
                )

        _with_commit_retries(create)
        predicate = rules.key_condition(LEASES, DELTA_RS)
        claimable = rules.lease_claim_condition(DELTA_RS)

        def run() -> dict[str, Any]:
            # A handle of its own: the heartbeat thread renews while the run's thread
            # merges through the cached handles.
            merger = DeltaTable(path).merge(
                lease,
                predicate,
                source_alias="source",
                target_alias="target",
                commit_properties=CommitProperties(max_commit_retries=0),
            )
            return (
                merger.when_matched_update_all(predicate=claimable)
                .when_not_matched_insert_all()
                .execute()
            )

        _with_commit_retries(run, attempts=LEASE_COMMIT_ATTEMPTS)
        account_id = lease.column("account_id")[0].as_py()
        rows = read_delta(
            DeltaTable(path),
            columns=["run_id", "expires_at"],
            filters=pc.field("account_id") == account_id,
        )
        return [
            LeaseHolder(row["run_id"], row["expires_at"].astimezone(UTC))
            for row in rows.to_pylist()
        ]

    # -- reads --------------------------------------------------------------------------

    def read_checkpoints(self, account_id: str) -> dict[str, datetime]:
        """stream name → committed cursor (aware UTC) for one Zoom account."""
        rows = read_delta(
            self._table(CHECKPOINTS),
            columns=["stream", "cursor"],
            filters=pc.field("account_id") == account_id,
        )
        return {row["stream"]: row["cursor"].astimezone(UTC) for row in rows.to_pylist()}

    def read_table(self, spec: TableSpec) -> pa.Table:
        """The whole table in `spec.schema` (row order is not defined). A table written by
        an earlier version reads its columns added since as nulls, as its next run adds them
        (`status` on a warehouse not written since an upgrade)."""
        table = read_delta(self._table(spec))
        for field in spec.schema:
            if field.name not in table.column_names:
                table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
        return table.select(spec.columns).cast(spec.schema)

    # -- run lock -----------------------------------------------------------------------

    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """An exclusive, non-blocking `flock` on `<warehouse>/.zoom_ingest.lock`
        (see `warehouse_lock`). While it is held, `merge_new` appends instead of running
        MERGEs: no other writer can commit to the warehouse."""
        with warehouse_lock(self.warehouse):
            self._holds_run_lock = True
            try:
                yield
            finally:
                self._holds_run_lock = False
                self._appended.clear()  # others may write now: what was kept may be wrong

    # -- housekeeping -------------------------------------------------------------------

    def maintain(self) -> None:
        """Compact every table with more than `compact_after_files` small files.

        A table with a `cluster_by` column of at most `SORT_WHOLE_TABLE_BYTES` is
        Z-ordered on it (for one column, a sort), so files come out few, sorted and with
        disjoint time ranges. A Z-order rewrites the whole table, so a larger one (and
        every table without `cluster_by`) is bin-packed instead: only files below the
        target size are rewritten, in the order they were written, which for the job's
        time-sorted batches is time order; an hourly run's compaction then costs the
        size of the recent files, not of the table. Each optimize keeps the old files as
        history: nothing is vacuumed, time travel keeps working, and disk space is only
        reclaimed when the user runs VACUUM.
        """
        for spec in ALL_TABLES.values():
            if not DeltaTable.is_deltatable(str(self.table_path(spec))):
                continue
            table = self._table(spec)
            files = pa.table(table.get_add_actions(flatten=True))
            sizes = files.column("size_bytes").to_pylist() if files.num_rows else []
            small = sum(1 for size in sizes if size < SMALL_FILE_BYTES)
            if small <= self.compact_after_files:
                continue
            if spec.cluster_by and sum(sizes) <= SORT_WHOLE_TABLE_BYTES:
                metrics = table.optimize.z_order([spec.cluster_by])
            else:
                # Bin-packing keeps the files' order and leaves files of the target size
                # alone: it rewrites the new data, not the table.
                # A target the table sets for itself (delta.targetFileSize) wins.
                configured = "delta.targetFileSize" in table.metadata().configuration
                metrics = table.optimize.compact(
                    target_size=None if configured else COMPACT_TARGET_BYTES,
                    max_concurrent_tasks=1,
                )
            log.info(
                "compacted %s: %d files → %d (%d removed, %d added)",
                spec.name,
                len(sizes),
                len(sizes) - metrics["numFilesRemoved"] + metrics["numFilesAdded"],
                metrics["numFilesRemoved"],
                metrics["numFilesAdded"],
            )


def unwritable_features(path: Path) -> list[str]:
    """The Delta writer features of the table at `path` that delta-rs cannot write."""
    if not DeltaTable.is_deltatable(str(path)):
        return []
    features = DeltaTable(str(path)).protocol().writer_features or []
    return [f for f in UNWRITABLE_FEATURES if f in features]


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_freed_memory() -> None:
    """Give the memory a MERGE freed back to the operating system.

    delta-rs (through the C allocator) and Arrow's pool keep what a MERGE freed for
    reuse, in pieces spread over arenas that the next MERGE, of other sizes, mostly
    does not reuse, so a backfill's resident memory climbed with its first merges
    instead of staying at one merge's worth (issue 14). A trim costs a few
    milliseconds a batch. Arrow's release reaches every thread's memory only with
    jemalloc, the pool the package chooses (`zoom_ingest/__init__.py`)."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def time_slices(spec: TableSpec, batch: pa.Table) -> list[pa.Table]:
    """`batch` sorted by `spec.cluster_by` and cut at `MERGE_SLICE_DAYS` boundaries
    counted from the epoch, each slice holding at least `MERGE_SLICE_MIN_ROWS` rows (so a
    slice spans one period, or more when they are sparse); the batch whole (as one
    slice) when the merge cannot limit the target by a range. An empty batch has no
    slices."""
    if batch.num_rows == 0:
        return []
    limits = rules.batch_range(spec, batch)
    if limits is None:
        return [batch]
    column = limits[0]
    if not _is_sorted(batch.column(column)):
        batch = batch.sort_by(column)  # the job's batches come sorted: no copy for them
    periods = rules.epoch_periods(batch.column(column), MERGE_SLICE_DAYS)
    # Sorted, so each period's rows are contiguous: cut where the period changes.
    changes = pc.not_equal(periods.slice(1), periods.slice(0, len(periods) - 1))
    cuts = [i + 1 for i in pc.indices_nonzero(changes).to_pylist()]
    # Periods with fewer rows than MERGE_SLICE_MIN_ROWS join the next slice (the last,
    # the one before): each merge is a commit and a file, and files below the minimum
    # would only add commits and bring compaction forward.
    starts = [0]
    for cut in cuts:
        if cut - starts[-1] >= MERGE_SLICE_MIN_ROWS:
            starts.append(cut)
    if len(starts) > 1 and batch.num_rows - starts[-1] < MERGE_SLICE_MIN_ROWS:
        starts.pop()
    starts.append(batch.num_rows)
    return [batch.slice(start, stop - start) for start, stop in pairwise(starts)]


def _keys_held(
    table: DeltaTable,
    spec: TableSpec,
    appended: AppendedKeys | None,
    keys: pa.Array,
    times: pa.Array | None,
    limits: tuple[str, datetime, datetime] | None,
    pruning: str | None,
    in_range: pc.Expression | None,
) -> tuple[pa.Array, dict[str, int]]:
    """The values of `keys` the table holds within the slice's range, and how many data
    files were read (`num_target_files_scanned`), known without reading
    (`num_target_files_known`: appended by this object since `appended` began) and
    skipped on their statistics (`num_target_files_skipped_during_scan`).

    Every file whose statistics overlap the range is read, unless `appended` holds all
    that was appended since its `files_before` at the slice's times: then only those of
    `files_before`, plus, for keys whose fingerprint it holds, the row groups of their
    own times in the files appended since."""
    key = spec.key[0]
    total = len(table.file_uris())
    low = limits[1] if limits is not None else None
    suspects = appended.seen(keys, times) if appended and appended.covers(low) else None
    # Keys whose first 64 bits only are held: their exact values must be read back.
    read_back = bool(appended and appended.fingerprints and suspects is not None and len(suspects))
    if appended and suspects is not None and not appended.files_before and not read_back:
        # Every file is one this object appended, and no key must be read back: no
        # dataset is made and no file opened (a backfill's merges into a new table).
        return suspects, _file_counts(scanned=0, known=total, skipped=0)
    dataset = table.to_pyarrow_dataset(
        file_pruning_predicate=pruning, filesystem=_native_filesystem(table)
    )
    in_files = list(dataset.get_fragments(filter=in_range))
    within = _files_within(table, *limits) if limits is not None else set()
    if appended is None or suspects is None:
        matched = _keys_among(in_files, dataset.schema, key, in_range, keys, within)
        return matched, _file_counts(len(in_files), 0, total - len(in_files))
    before = [f for f in in_files if f.path in appended.files_before]
    matched = _keys_among(before, dataset.schema, key, in_range, keys, within)
    read_since = 0
    if read_back:
        # Only their first 64 bits matched: the exact keys, from the row groups of the
        # suspects' own times (a lw_id hashes its time) in the files appended since.
        assert spec.cluster_by is not None and times is not None  # fingerprints' tables
        since = [f for f in in_files if f.path not in appended.files_before]
        their_times = pc.unique(times.filter(pc.is_in(keys, value_set=suspects)))
        at_their_times = pc.field(spec.cluster_by).isin(
            their_times.cast(dataset.schema.field(spec.cluster_by).type)
        )
        suspects = _keys_among(since, dataset.schema, key, at_their_times, suspects)
        read_since = len(since)
    if len(suspects):
        matched = pa.concat_arrays([matched, suspects.cast(matched.type)])
    return matched, _file_counts(
        scanned=len(before) + read_since,
        known=total - len(appended.files_before) - read_since,
        skipped=len(appended.files_before) - len(before),
    )


def _file_counts(scanned: int, known: int, skipped: int) -> dict[str, int]:
    """An insert-only merge's data files by what it did with them, as metrics (delta-rs
    names where it has them)."""
    return {
        "num_target_files_scanned": scanned,
        "num_target_files_known": known,
        "num_target_files_skipped_during_scan": skipped,
    }


def _keys_among(
    fragments: Iterable[pads.Fragment],
    schema: pa.Schema,
    key: str,
    in_range: pc.Expression | None,
    keys: pa.Array,
    within: Collection[str] = (),
) -> pa.Array:
    """The values of the `fragments`' column `key` (their rows `in_range`) that are
    among `keys`.

    One file at a time on this thread, `KEY_READ_BATCH_ROWS` rows at a time, each piece
    probed against `keys` and dropped: what stays is the matches, which a backfill's
    batches rarely have. Read whole, the column was every key of the files the slice's
    range overlaps: by the end of a 20-day backfill a million keys (~130 MiB at the
    read's peak) for every slice, growing with the backfill's length.

    A file in `within` (its statistics put every row in the range) is read without the
    range: only its key column, not filtered (a quarter less CPU a key)."""
    matched = []
    for fragment in fragments:
        pieces = fragment.to_batches(
            schema=schema,
            columns=[key],
            filter=None if fragment.path in within else in_range,
            batch_size=KEY_READ_BATCH_ROWS,
            use_threads=False,
        )
        for piece in pieces:
            present = piece.column(0)
            matched.append(present.filter(pc.is_in(present, value_set=keys, skip_nulls=True)))
    return pa.concat_arrays(matched) if matched else pa.array([], schema.field(key).type)


def _files_within(table: DeltaTable, column: str, low: datetime, high: datetime) -> set[str]:
    """The paths (as the table's pyarrow dataset names them) of the data files whose
    statistics put every value of `column` within [low, high]. Delta keeps a timestamp's
    statistics in milliseconds, so a file's maximum counts one millisecond more; a file
    without statistics is not among them."""
    actions = pa.table(table.get_add_actions(flatten=True))
    names = (f"min.{column}", f"max.{column}")
    if not actions.num_rows or not set(names) <= set(actions.column_names):
        return set()
    lows, highs = (actions.column(name) for name in names)
    inside = pc.and_(
        pc.greater_equal(lows, pa.scalar(low, lows.type)),
        pc.less_equal(
            pc.add(highs, pa.scalar(timedelta(milliseconds=1))), pa.scalar(high, highs.type)
        ),
    )
    return _dataset_paths(actions.column("path").filter(pc.fill_null(inside, False)))


def _dataset_paths(paths: pa.Array | pa.ChunkedArray) -> set[str]:
    """Add actions' paths (URL-encoded in the Delta log) as the table's pyarrow dataset
    names its fragments."""
    return {unquote(path) for path in paths.to_pylist()}


def _is_sorted(values: pa.ChunkedArray) -> bool:
    """Whether `values` (no nulls) never decrease."""
    if len(values) < 2:
        return True
    return bool(pc.all(pc.less_equal(values.slice(0, len(values) - 1), values.slice(1))).as_py())


def merge_predicate(spec: TableSpec, batch: pa.Table) -> str:
    """The MERGE ON clause in delta-rs's predicate syntax (`rules.merge_condition`)."""
    return rules.merge_condition(spec, batch, DELTA_RS)


def append_properties(spec: TableSpec) -> WriterProperties:
    """How `_append_new_slice` writes Parquet: delta-rs's defaults (Snappy), except that
    the key column has no dictionary. A key is unique to its row, so a dictionary never
    pays; without one, the next merges read the column ~40% faster (a backfill's merges
    read every key of the days they span); and row groups of at most
    `APPEND_ROW_GROUP_ROWS` rows."""
    return WriterProperties(
        compression="SNAPPY",
        max_row_group_size=APPEND_ROW_GROUP_ROWS,
        column_properties={spec.key[0]: ColumnProperties(dictionary_enabled=False)},
    )


def _add_missing_columns(table: DeltaTable, spec: TableSpec, actual: pa.Schema) -> bool:
    """A table written by an earlier version that lacks columns added since (listed in
    `tables.ADDED_COLUMNS`, nullable, at the end) gains them; its rows read them as null.
    Any other difference is left for `schema_differences` to report."""
    missing = rules.columns_to_add(spec, actual.names)
    if not missing:
        return False
    fields = [Field.from_arrow(spec.schema.field(name)) for name in missing]
    _with_commit_retries(lambda: table.alter.add_columns(fields))
    log.info("added columns %s to %s", ", ".join(missing), spec.name)
    return True


def _conform(spec: TableSpec, batch: pa.Table) -> pa.Table:
    """`batch` in exactly `spec.schema`, or ValueError naming what differs.

    Columns and types must match, in any order; a nullable batch column is accepted for
    a NOT NULL table column as long as it holds no null (Arrow tables built elsewhere
    often mark every column nullable).
    """
    if sorted(batch.column_names) == sorted(spec.columns):
        batch = batch.select(spec.columns)
    differences = schema_differences(spec.schema, batch.schema, nullability=False)
    if differences:
        raise ValueError(f"batch for {spec.name} is not in its schema: {'; '.join(differences)}")
    nulls = [
        field.name
        for field in spec.schema
        if not field.nullable and batch.column(field.name).null_count
    ]
    if nulls:
        raise ValueError(f"batch for {spec.name} has nulls in NOT NULL columns: {nulls}")
    return batch.cast(spec.schema)


def _identifier(name: str) -> str:
    """A quoted identifier in delta-rs predicates (SQL's double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def _timestamp_literal(value: datetime) -> str:
    """A UTC instant as a string literal delta-rs compares with a TIMESTAMP column."""
    return "'" + rules.utc_timestamp_text(value) + "'"


#: How delta-rs predicates spell the shared rules.
DELTA_RS = rules.Dialect(
    quote=_identifier, timestamp=_timestamp_literal, target="target", source="source"
)


def _with_commit_retries(operation: Callable[[], T], *, attempts: int = COMMIT_ATTEMPTS) -> T:
    """Run `operation`, re-running it when its optimistic commit loses to another writer."""
    retrying = Retrying(
        retry=retry_if_exception_type(CommitFailedError),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )
    return retrying(operation)


def read_delta(
    table: DeltaTable,
    *,
    columns: list[str] | None = None,
    filters: pc.Expression | None = None,
) -> pa.Table:
    """A local Delta table's current version as Arrow, read through pyarrow's native
    filesystem.

    Left to itself, delta-rs hands pyarrow a Python-implemented filesystem whose reader
    threads can still be alive when the interpreter exits, and the process then aborts
    ("terminate called without an active exception") after its work is done. A native
    filesystem rooted at the table avoids that.
    """
    return table.to_pyarrow_table(
        columns=columns, filters=filters, filesystem=_native_filesystem(table)
    )


def _native_filesystem(table: DeltaTable) -> pafs.FileSystem:
    """pyarrow's own filesystem rooted at a local table (see `read_delta` for why)."""
    root = urlsplit(table.table_uri)
    location = unquote(root.path) if root.scheme == "file" else table.table_uri
    return pafs.SubTreeFileSystem(location, pafs.LocalFileSystem())
