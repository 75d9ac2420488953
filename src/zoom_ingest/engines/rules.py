"""The rules both engines write by, stated once; each engine only spells them in its SQL.

- A log batch is merged insert-only on the table's key, matched only against target
  rows in the batch's range of `cluster_by` (a row with the same `lw_id` has the same
  `time`, since the id hashes it), so the target scan is pruned and no match is lost.
- A checkpoint's cursor only moves forward: an update applies when the new cursor is
  later, so of two overlapping runs the one that writes last never takes back the
  other's claim.
- A timestamp enters a statement as a UTC instant to the microsecond, formatted here
  from a datetime; no string from a record is ever pasted into SQL.
- A table's schema is compared with `tables.py` in the same words on both engines, and
  a table gains only the columns added since (`tables.ADDED_COLUMNS`).
- A table in a warehouse folder lives in the sub-folder named after it.
- A run's rows in the runs table are written at its start (`running`) and replaced at
  its end; a `running` row that a later run finds for a run that cannot be running any
  more becomes `abandoned` (`abandoned_runs`).
- A Zoom account's lease (zoom_ingest_leases) is written by one conditional MERGE: the
  row is taken when it is free (expired or released) or already the writer's, and left
  alone otherwise. Delta's optimistic concurrency orders the MERGEs: of two that read
  the same version only one commits, the other re-runs against the newer version and
  finds the lease taken. Who holds it is read back after the MERGE.

delta-rs predicates and Spark SQL differ in identifier quoting, timestamp literals and
aliases; a `Dialect` carries those differences, the functions here carry the rules.

Spark SQL's (Databricks SQL's) identifiers and literals are spelled here too
(`quote_identifier`, `sql_string`, `timestamp_literal`): text only, no Spark, so the
query files' loader, the detections task and notebooks use them without importing the
Spark engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..tables import ADDED_COLUMNS, UTC, TableSpec

#: A `running` row of the runs table whose run can no longer be running: one older than
#: this, where runs of other jobs may write at the same time (a Databricks schema; the
#: bundle's jobs time out after 4 hours). Under a folder's lock every older `running` row
#: is abandoned: its run's process has gone, or it would hold the lock.
STALE_RUN_SECONDS = 24 * 3600.0
RUNNING = "running"
ABANDONED = "abandoned"

#: The checkpoint column an update may only move forward.
CHECKPOINT_CURSOR = "cursor"
#: How long a lease lasts unless renewed: a run killed without releasing it blocks its
#: Zoom account this long at most. A few minutes: long enough that a slow commit or a
#: paused driver does not lose it, short enough that a crashed run's next schedule
#: starts on time.
LEASE_SECONDS = 300.0
#: How often the holder renews it: five renewals per lease, so a few failed or slow
#: ones in a row still leave it held.
RENEW_SECONDS = 60.0
_UTC_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


@dataclass(frozen=True)
class Dialect:
    """How one engine spells identifiers, timestamps and the two sides of a MERGE."""

    #: A quoted identifier (our column names; `time` is a keyword in some dialects).
    quote: Callable[[str], str]
    #: A UTC instant as a literal the engine compares with a TIMESTAMP column.
    timestamp: Callable[[datetime], str]
    #: The alias of the table being written, and of the batch written into it.
    target: str
    source: str


def utc_timestamp_text(value: datetime) -> str:
    """An aware datetime as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, the text both engines'
    timestamp literals wrap. A naive datetime names no instant: ValueError."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {value!r}")
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    # isoformat of a datetime yields digits and separators only; keep it that way.
    if not _UTC_TIMESTAMP.fullmatch(text):
        raise ValueError(f"cannot format {value!r} as a timestamp literal")
    return text


# -- Spark SQL (Databricks SQL) text ---------------------------------------------------------


def quote_identifier(name: str) -> str:
    """A Spark SQL identifier in backticks (`time` is a keyword in newer Spark)."""
    return "`" + name.replace("`", "``") + "`"


def sql_string(value: str) -> str:
    """A Spark SQL string literal (default parser: backslash escapes are on)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def timestamp_literal(value: datetime) -> str:
    """A UTC instant as a Spark TIMESTAMP_LTZ literal, to the microsecond (an instant in
    any session time zone and whatever spark.sql.timestampType says)."""
    return "TIMESTAMP_LTZ'" + utc_timestamp_text(value) + "'"


# -- the rules ------------------------------------------------------------------------------


def key_condition(spec: TableSpec, dialect: Dialect) -> str:
    """Target and source rows with the same `spec.key`."""
    return " AND ".join(
        f"{dialect.target}.{dialect.quote(k)} = {dialect.source}.{dialect.quote(k)}"
        for k in spec.key
    )


def batch_range(spec: TableSpec, batch: pa.Table) -> tuple[str, datetime, datetime] | None:
    """The column a merge may limit the target to, with the batch's min and max of it;
    None when the merge must match on the key alone."""
    column = spec.cluster_by
    if column is None or batch.num_rows == 0:
        return None
    values = batch.column(column)
    # A null in the range column would never match the range and be inserted again.
    if values.null_count or not pa.types.is_timestamp(values.type):
        return None
    bounds = pc.min_max(values)
    return column, bounds["min"].as_py(), bounds["max"].as_py()


def epoch_periods(times: pa.Array | pa.ChunkedArray, days: int) -> pa.Array | pa.ChunkedArray:
    """The number of each time's period of `days` days, counted from the epoch in UTC
    (int64; day 0 is 1970-01-01)."""
    micros = pc.cast(pc.cast(times, pa.timestamp("us", tz="UTC")), pa.int64())
    # float64 holds today's epoch microseconds (below 2**53) exactly.
    periods = pc.floor(pc.divide(pc.cast(micros, pa.float64()), float(days * 86_400 * 10**6)))
    return pc.cast(periods, pa.int64())


def merge_condition(spec: TableSpec, batch: pa.Table, dialect: Dialect) -> str:
    """The insert-only merge's ON clause: the key, and the batch's range (inclusive) of
    `spec.cluster_by` if there is one. Only quoted column names and literals formatted
    from Arrow values enter the text."""
    condition = key_condition(spec, dialect)
    limits = batch_range(spec, batch)
    if limits is None:
        return condition
    column, low, high = limits
    return f"{condition} AND {range_condition(column, low, high, dialect, dialect.target)}"


def range_condition(
    column: str, low: datetime, high: datetime, dialect: Dialect, table: str | None = None
) -> str:
    """`low <= column <= high` (inclusive), the column of the alias `table` if given."""
    quoted = dialect.quote(column) if table is None else f"{table}.{dialect.quote(column)}"
    return f"{quoted} >= {dialect.timestamp(low)} AND {quoted} <= {dialect.timestamp(high)}"


def moves_forward(column: str, dialect: Dialect) -> str:
    """The update condition of a column that may only move forward (the cursor)."""
    quoted = dialect.quote(column)
    return f"{dialect.source}.{quoted} > {dialect.target}.{quoted}"


def lease_claim_condition(dialect: Dialect) -> str:
    """When the lease MERGE may overwrite the account's row: it is the writer's own
    (renewal, release), or it expired before the writer's `renewed_at` (its now)."""
    t, s = dialect.target, dialect.source
    run_id, expires, now = (dialect.quote(c) for c in ("run_id", "expires_at", "renewed_at"))
    return f"({t}.{run_id} = {s}.{run_id} OR {t}.{expires} <= {s}.{now})"


def columns_to_add(spec: TableSpec, existing: Sequence[str]) -> list[str]:
    """The columns a table with the columns `existing` gains: those of
    `tables.ADDED_COLUMNS` it lacks, when that is all that differs in its names and what
    it has comes first in the spec's order. Otherwise none: the table is left as it is
    and `schema_differences` reports it."""
    missing = [name for name in spec.columns if name not in existing]
    if not missing or not set(missing) <= set(ADDED_COLUMNS.get(spec.name, ())):
        return []
    if list(existing) != spec.columns[: len(existing)]:
        return []
    return missing


def table_folder(warehouse: Path, spec: TableSpec) -> Path:
    """Where a table of a warehouse folder lives (both engines' layout)."""
    return warehouse / spec.name


def schema_differences(
    expected: pa.Schema, actual: pa.Schema, *, nullability: bool = True
) -> list[str]:
    """Every way `actual` differs from `expected`: columns, types, nullability, order."""
    found = {field.name: field for field in actual}
    differences: list[str] = []
    for field in expected:
        other = found.get(field.name)
        if other is None:
            differences.append(f"missing column {field.name} {field.type}")
            continue
        if other.type != field.type:
            differences.append(f"{field.name}: expected {field.type}, found {other.type}")
        if nullability and other.nullable != field.nullable:
            differences.append(
                f"{field.name}: expected {_nullability(field)}, found {_nullability(other)}"
            )
    differences.extend(
        f"unexpected column {field.name} {field.type}"
        for field in actual
        if field.name not in expected.names
    )
    if not differences and actual.names != expected.names:
        differences.append(f"column order: expected {expected.names}, found {actual.names}")
    return differences


def _nullability(field: pa.Field) -> str:
    return "nullable" if field.nullable else "NOT NULL"


def abandoned_runs(
    runs: pa.Table, account_id: str, run_id: str, now: datetime, *, exclusive: bool
) -> pa.Table:
    """The `running` rows of `account_id`'s other runs that cannot be running any more,
    marked `abandoned`: every one when the caller holds an exclusive run lock, otherwise
    those started more than `STALE_RUN_SECONDS` before `now`."""
    rows = []
    for row in runs.to_pylist():
        if row["status"] != RUNNING or row["account_id"] != account_id or row["run_id"] == run_id:
            continue
        started = row["started_at"]
        recent = started is not None and (now - started).total_seconds() < STALE_RUN_SECONDS
        if not exclusive and recent:
            continue
        rows.append(
            {
                **row,
                "status": ABANDONED,
                "error": f"the run ended without recording its end (killed or lost); "
                f"found by run {run_id}",
            }
        )
    return pa.Table.from_pylist(rows, schema=runs.schema)
