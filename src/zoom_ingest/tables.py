"""The tables zoom_ingest writes: their schemas, keys, clustering, and the lw_id recipe.

The two log tables have exactly the columns documented for the managed Zoom Logs
connector, so queries written for it run unchanged. The three bookkeeping tables sit
beside them in the same schema (or warehouse folder).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa

UTC = timezone.utc
TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    """One table: its name, Arrow schema, merge key and clustering column."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    # Liquid clustering column on Databricks; also the column the merge range-prunes on
    # and the sort order of files written by the local engine.
    cluster_by: str | None = None
    # Fields of the Zoom record, in the order lw_id hashes them (log tables only).
    record_fields: tuple[str, ...] = ()
    comment: str = ""

    @property
    def columns(self) -> list[str]:
        return self.schema.names


def _strings(*names: str) -> list[pa.Field]:
    return [pa.field(n, pa.string()) for n in names]


ACTIVITY_LOGS = TableSpec(
    name="activity_logs",
    schema=pa.schema(
        [
            pa.field("lw_id", pa.string(), nullable=False),
            pa.field("time", TIMESTAMP, nullable=False),
            *_strings("type", "email", "ip_address", "client_type", "version"),
        ]
    ),
    key=("lw_id",),
    cluster_by="time",
    record_fields=("time", "email", "type", "ip_address", "client_type", "version"),
    comment="Zoom sign-in/sign-out activity logs (GET /report/activities)",
)

OPERATION_LOGS = TableSpec(
    name="operation_logs",
    schema=pa.schema(
        [
            pa.field("lw_id", pa.string(), nullable=False),
            pa.field("time", TIMESTAMP, nullable=False),
            *_strings("operator", "category_type", "action", "operation_detail"),
        ]
    ),
    key=("lw_id",),
    cluster_by="time",
    record_fields=("time", "operator", "category_type", "action", "operation_detail"),
    comment="Zoom admin/user operation logs (GET /report/operationlogs)",
)

CHECKPOINTS = TableSpec(
    name="zoom_ingest_checkpoints",
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("stream", pa.string(), nullable=False),
            # Every record with time < cursor is committed (see plan.py).
            pa.field("cursor", TIMESTAMP, nullable=False),
            pa.field("updated_at", TIMESTAMP, nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
        ]
    ),
    key=("account_id", "stream"),
    comment="zoom_ingest: one row per Zoom account and stream, the committed cursor",
)

RUNS = TableSpec(
    name="zoom_ingest_runs",
    schema=pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("stream", pa.string(), nullable=False),
            pa.field("mode", pa.string()),  # backfill | incremental | reconcile
            pa.field("started_at", TIMESTAMP),
            pa.field("finished_at", TIMESTAMP),
            pa.field("window_start", TIMESTAMP),
            pa.field("window_end", TIMESTAMP),
            pa.field("windows", pa.int64()),
            pa.field("pages", pa.int64()),
            pa.field("api_calls", pa.int64()),
            pa.field("records_fetched", pa.int64()),
            pa.field("records_inserted", pa.int64()),
            pa.field("records_rejected", pa.int64()),
            pa.field("retries", pa.int64()),
            pa.field("rate_limited", pa.int64()),  # 429 responses received
            pa.field("duration_seconds", pa.float64()),
            pa.field("cursor_before", TIMESTAMP),
            pa.field("cursor_after", TIMESTAMP),
            pa.field("status", pa.string()),  # succeeded | failed | stopped
            pa.field("error", pa.string()),
            # Added in 0.2 (nullable, appended: older warehouses gain them on the next
            # run). The configured limit (requests/s for the Zoom account) and the rate
            # the run achieved: every stream's API calls over the time it fetched.
            pa.field("rate_limit", pa.float64()),
            pa.field("calls_per_second", pa.float64()),
        ]
    ),
    key=("run_id", "stream"),
    cluster_by="started_at",
    comment="zoom_ingest: one row per stream per run",
)

REJECTS = TableSpec(
    name="zoom_ingest_rejects",
    schema=pa.schema(
        [
            pa.field("reject_id", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("stream", pa.string(), nullable=False),
            pa.field("rejected_at", TIMESTAMP, nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("raw_json", pa.string(), nullable=False),
        ]
    ),
    # The same bad record fetched again is not stored twice.
    key=("reject_id",),
    comment="zoom_ingest: records that could not be parsed, with the raw JSON and the reason",
)

LOG_TABLES: dict[str, TableSpec] = {t.name: t for t in (ACTIVITY_LOGS, OPERATION_LOGS)}
BOOKKEEPING_TABLES: dict[str, TableSpec] = {t.name: t for t in (CHECKPOINTS, RUNS, REJECTS)}
ALL_TABLES: dict[str, TableSpec] = {**LOG_TABLES, **BOOKKEEPING_TABLES}
#: Columns added to a bookkeeping table after its first release (nullable, at the end):
#: an existing table without them gains them instead of failing the schema check.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {RUNS.name: ("rate_limit", "calls_per_second")}


def checkpoint_row(account_id: str, stream: str, cursor: datetime, run_id: str) -> pa.Table:
    """One zoom_ingest_checkpoints row, as both engines upsert it."""
    if cursor.tzinfo is None:
        raise ValueError(f"checkpoint cursor must be an aware datetime, got {cursor!r}")
    row = {
        "account_id": account_id,
        "stream": stream,
        "cursor": cursor.astimezone(UTC),
        "updated_at": datetime.now(UTC),
        "run_id": run_id,
    }
    return pa.Table.from_pylist([row], schema=CHECKPOINTS.schema)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, seconds precision unless the instant has a fraction."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def lw_id(spec: TableSpec, time: datetime, record: Mapping[str, object]) -> str:
    """The deterministic id of one log record (documented in the README; users join on it).

    SHA-256, lowercase hex, of the UTF-8 bytes of the compact JSON array
    ``[table_name, time, <the record's other documented fields in order>]`` where
    ``time`` is RFC 3339 UTC with ``Z`` (see ``format_time``) and a missing field is
    ``null``. JSON is Python's ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``.
    """
    values: list[object] = [spec.name, format_time(time)]
    values.extend(record.get(name) for name in spec.record_fields[1:])
    return _sha256_json(values)


def reject_id(stream: str, raw_json: str) -> str:
    """The id of a rejected record: the same raw record rejected twice is stored once."""
    return _sha256_json(["reject", stream, raw_json])


def _sha256_json(values: Sequence[object]) -> str:
    text = json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
    # surrogatepass: a lone surrogate escaped in the JSON must hash, not crash.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
