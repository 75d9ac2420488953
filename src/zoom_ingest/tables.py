"""The tables zoom_ingest writes: their schemas, keys, clustering, and the lw_id recipe.

The two log tables have exactly the columns documented for the managed Zoom Logs
connector, so queries written for it run unchanged. The four bookkeeping tables sit
beside them in the same schema (or warehouse folder).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    # The table's and every column's comment in the catalog (Unity Catalog shows them; the
    # Spark engine writes them, tests check that no column lacks one).
    comment: str = ""
    column_comments: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    # Columns holding personal data → the value of their `pii` tag in Unity Catalog, so
    # that column masks and tag-based policies can find them.
    pii: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def column_comment(self, name: str) -> str:
        return self.column_comments.get(name, "")


def _strings(*names: str) -> list[pa.Field]:
    return [pa.field(n, pa.string()) for n in names]


#: The tag key of personal-data columns (value: what kind of personal data).
PII_TAG = "pii"
_LW_ID = "Deterministic SHA-256 of the record (README: the lw_id recipe); primary key"


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
    column_comments={
        "lw_id": _LW_ID,
        "time": "When the sign-in or sign-out happened (UTC); the incremental cursor",
        "type": "Sign in or Sign out",
        "email": "Email address of the user who signed in or out",
        "ip_address": "IP address the user signed in or out from",
        "client_type": "Zoom client used (Browser, Windows, Mac, iOS, Android, ...)",
        "version": "Version of the Zoom client, '-' when Zoom does not report one",
    },
    pii={"email": "email", "ip_address": "ip_address"},
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
    column_comments={
        "lw_id": _LW_ID,
        "time": "When the operation happened (UTC); the incremental cursor",
        "operator": "Email address of the user who performed the operation",
        "category_type": "Category of the operation (User, Account, Role, Recording, ...)",
        "action": "What was done (Add, Update, Delete, ...)",
        "operation_detail": "Zoom's free-text description of the change",
    },
    pii={"operator": "email"},
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
    column_comments={
        "account_id": "Zoom account id",
        "stream": "Log table the cursor belongs to (activity_logs or operation_logs)",
        "cursor": "Every record of the stream with time < cursor is committed",
        "updated_at": "When the cursor was last saved (UTC)",
        "run_id": "The run that saved the cursor (zoom_ingest_runs.run_id)",
    },
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
            # running (written at the start) | succeeded | failed | incomplete | stopped
            # | busy | abandoned
            pa.field("status", pa.string()),
            pa.field("error", pa.string()),
            # Added in 0.2 (nullable, appended: older warehouses gain them on the next
            # run). The configured limit (requests/s for the Zoom account) and the rate
            # the run achieved: every stream's API calls over the time it fetched.
            pa.field("rate_limit", pa.float64()),
            pa.field("calls_per_second", pa.float64()),
            # Added in 0.3: the window whose pages could not prove it complete, and why.
            pa.field("failed_window", pa.string()),
        ]
    ),
    key=("run_id", "stream"),
    cluster_by="started_at",
    comment="zoom_ingest: one row per stream per run",
    column_comments={
        "run_id": "Id of the run (shared by its streams)",
        "account_id": "Zoom account id",
        "stream": "Log table written (activity_logs or operation_logs)",
        "mode": "backfill, incremental or reconcile",
        "started_at": "When the stream started (UTC)",
        "finished_at": "When the stream finished (UTC)",
        "window_start": "Start of the time range fetched (UTC)",
        "window_end": "End of the time range fetched (UTC)",
        "windows": "Date windows the range was cut into",
        "pages": "Pages fetched from Zoom",
        "api_calls": "HTTP calls to Zoom, retries included",
        "records_fetched": "Records Zoom returned",
        "records_inserted": "Records new to the table",
        "records_rejected": "Records that could not be parsed (see zoom_ingest_rejects)",
        "retries": "Requests retried after 429, 5xx, resets or timeouts",
        "rate_limited": "429 responses received",
        "duration_seconds": "Wall time of the stream",
        "cursor_before": "The stream's cursor when the run started",
        "cursor_after": "The stream's cursor when the run ended",
        "status": "running (from the run's start until its end), succeeded, failed, "
        "incomplete (a window's pages could not prove it complete: see failed_window), "
        "stopped, busy (another run held the account's lease), or abandoned (a later run "
        "found it running but ended: killed or lost)",
        "error": "Why the stream failed or stopped (Zoom's code, message, tracking id)",
        "rate_limit": "The configured client-side limit for the account (requests/s)",
        "calls_per_second": "API calls per second the run achieved, of all its streams",
        "failed_window": "The window Zoom's answer could not prove complete, and why "
        "(e.g. 2026-11-02..2026-11-02: records out of order)",
    },
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
    column_comments={
        "reject_id": "SHA-256 of the stream and the raw record: stored once",
        "run_id": "The run that fetched the record",
        "account_id": "Zoom account id",
        "stream": "Log table the record was meant for",
        "rejected_at": "When it was rejected (UTC)",
        "reason": "Why it could not be parsed",
        "raw_json": "The record as Zoom sent it (may hold email and IP addresses)",
    },
    pii={"raw_json": "record"},
)

#: One row per Zoom account: the run allowed to call Zoom for it now, until `expires_at`.
#: Taken, renewed and released through Delta's optimistic concurrency (engines/lease.py).
LEASES = TableSpec(
    name="zoom_ingest_leases",
    schema=pa.schema(
        [
            pa.field("account_id", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("acquired_at", TIMESTAMP, nullable=False),
            pa.field("renewed_at", TIMESTAMP, nullable=False),
            pa.field("expires_at", TIMESTAMP, nullable=False),
        ]
    ),
    key=("account_id",),
    comment="zoom_ingest: one row per Zoom account, the run that may call Zoom for it",
    column_comments={
        "account_id": "Zoom account id",
        "run_id": "The run holding the lease (zoom_ingest_runs.run_id)",
        "acquired_at": "When that run took the lease (UTC)",
        "renewed_at": "When that run last renewed it (UTC)",
        "expires_at": "The lease is free from this instant on (UTC): released or not renewed",
    },
)

#: The severities of the detections' alerts (zoom_detections.severity), highest first.
SEVERITIES = ("high", "medium", "low")

DETECTIONS = TableSpec(
    name="zoom_detections",
    schema=pa.schema(
        [
            pa.field("alert_id", pa.string(), nullable=False),
            pa.field("detection", pa.string(), nullable=False),
            pa.field("severity", pa.string(), nullable=False),
            pa.field("time", TIMESTAMP, nullable=False),
            pa.field("actor", pa.string()),
            pa.field("target", pa.string()),
            pa.field("change", pa.string()),
            pa.field("detected_at", TIMESTAMP, nullable=False),
        ]
    ),
    key=("alert_id",),
    cluster_by="time",
    comment="zoom_ingest: alerts of the detections in sql/detections, one row per alert_id",
    column_comments={
        "alert_id": "SHA-256 of the detection and what it saw: the same alert, the same id",
        "detection": "Name of the detection (a file in sql/detections)",
        "severity": "high, medium or low",
        "time": "When the detected activity happened (UTC)",
        "actor": "Who did it (an email address, or an IP address)",
        "target": "What or whom it was done to",
        "change": "What changed, in words",
        "detected_at": "The detections run that first stored the alert (UTC)",
    },
    pii={"actor": "email"},
)

#: Enrichment beside the log tables (which stay exactly as documented): the country of
#: every address the activity logs brought, from an offline database (see geo.py).
IP_COUNTRIES = TableSpec(
    name="zoom_ip_countries",
    schema=pa.schema(
        [
            pa.field("ip_address", pa.string(), nullable=False),
            pa.field("country", pa.string()),  # ISO 3166-1 alpha-2; NULL: no country known
            pa.field("looked_up_at", TIMESTAMP, nullable=False),
            pa.field("db_version", pa.string(), nullable=False),  # e.g. "iptocc 3.3.170"
        ]
    ),
    key=("ip_address",),
    comment="zoom_ingest: country of each IP address in activity_logs (offline IP-to-country)",
    column_comments={
        "ip_address": "An IP address seen in activity_logs",
        "country": "ISO 3166-1 alpha-2 country code; NULL when the database knows none",
        "looked_up_at": "When the address was looked up (UTC)",
        "db_version": "The offline database that answered, e.g. iptocc 3.3.170",
    },
    pii={"ip_address": "ip_address"},
)

LOG_TABLES: dict[str, TableSpec] = {t.name: t for t in (ACTIVITY_LOGS, OPERATION_LOGS)}
BOOKKEEPING_TABLES: dict[str, TableSpec] = {t.name: t for t in (CHECKPOINTS, RUNS, REJECTS, LEASES)}
#: Tables the project derives from the logs, beside them in the same schema: alerts, and
#: enrichment (the log tables stay exactly as documented).
DERIVED_TABLES: dict[str, TableSpec] = {t.name: t for t in (DETECTIONS, IP_COUNTRIES)}
#: Every table: the engines create and maintain exactly these.
ALL_TABLES: dict[str, TableSpec] = {**LOG_TABLES, **BOOKKEEPING_TABLES, **DERIVED_TABLES}
#: Columns added to a bookkeeping table after its first release (nullable, at the end):
#: an existing table without them gains them instead of failing the schema check.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    RUNS.name: ("rate_limit", "calls_per_second", "failed_window")
}


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


def lease_row(
    account_id: str, run_id: str, acquired_at: datetime, renewed_at: datetime, expires_at: datetime
) -> pa.Table:
    """One zoom_ingest_leases row, as both engines write it (aware datetimes)."""
    times = {"acquired_at": acquired_at, "renewed_at": renewed_at, "expires_at": expires_at}
    for name, value in times.items():
        if value.tzinfo is None:
            raise ValueError(f"lease {name} must be an aware datetime, got {value!r}")
    row = {
        "account_id": account_id,
        "run_id": run_id,
        **{name: value.astimezone(UTC) for name, value in times.items()},
    }
    return pa.Table.from_pylist([row], schema=LEASES.schema)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, seconds precision unless the instant has a fraction."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def lw_id_json(spec: TableSpec, time: datetime, record: Mapping[str, object]) -> bytes:
    """The bytes a log record's lw_id is the SHA-256 of: the README's recipe, step by step.

    This function defines the key (users join on it: its bytes never change). Any
    faster way of making them (the normaliser's page path) is tested byte-identical
    to it over arbitrary records."""
    # [table_name, time, <the record's other documented fields, in order>] ...
    values: list[object] = [spec.name, format_time(time)]  # time: UTC, RFC 3339, Z
    values.extend(record.get(name) for name in spec.record_fields[1:])  # missing: null
    # ... as compact JSON, non-ASCII characters as themselves ...
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    # ... in UTF-8. surrogatepass: a lone surrogate (which the normaliser rejects before
    # any lw_id is made) hashes here rather than crashes.
    return text.encode("utf-8", "surrogatepass")


def lw_id(spec: TableSpec, time: datetime, record: Mapping[str, object]) -> str:
    """The deterministic id of one log record (documented in the README; users join on it):
    the lowercase hex SHA-256 of `lw_id_json`."""
    return hashlib.sha256(lw_id_json(spec, time, record)).hexdigest()


def reject_id(stream: str, raw_json: str) -> str:
    """The id of a rejected record: the same raw record rejected twice is stored once."""
    return _sha256_json(["reject", stream, raw_json])


def _sha256_json(values: Sequence[object]) -> str:
    text = json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
    # surrogatepass: a lone surrogate escaped in the JSON must hash, not crash.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
