"""The detections task: run every detection and keep its alerts in `zoom_detections`.

Each detection (`sql/detections/*.sql`) returns alert rows with a stable `alert_id`
(a SHA-256 of the detection's name and what it saw), so storing them is an insert-only
MERGE on `alert_id`: running the task again, hourly over overlapping data, or after a
re-ingest, stores each alert once, with `detected_at` = the run that first saw it.
Alerts are never updated or deleted by the task.

- On Databricks: `zoom-ingest-detections --catalog=main --schema=zoom` (the
  `zoom_detections` job's python_wheel_task) runs the detections in Spark SQL next to
  the tables and merges them in the same statement. `--fail-on=high` makes the run
  fail when it stores a new alert of that severity or above, so the job's failure
  notifications reach someone.
- Locally: `write_detections_local(warehouse)` does the same with DuckDB and delta-rs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from .analytics import (
    ALERT_SCHEMA,
    DETECTIONS,
    SEVERITIES,
    LocalWarehouse,
    Query,
    view_statements,
    with_params,
)
from .databricks_job import LastNonEmpty
from .engines.local import LocalEngine, read_delta
from .engines.spark import create_table_sql, quote_identifier, timestamp_literal
from .settings import DEFAULT_WATCHED_COUNTRIES, DetectionSettings, SettingsError
from .tables import TIMESTAMP, UTC, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("zoom_ingest.detections")

DETECTIONS_TABLE = TableSpec(
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
)
EXIT_OK = 0
EXIT_ALERTS = 1


@dataclass(frozen=True)
class DetectionRun:
    """What one run of the task found and stored."""

    detected_at: datetime
    found: int
    #: severity → number of alerts stored for the first time by this run
    new_by_severity: dict[str, int]

    @property
    def new(self) -> int:
        return sum(self.new_by_severity.values())

    def new_at_or_above(self, severity: str) -> int:
        rank = SEVERITIES.index(severity)
        return sum(n for s, n in self.new_by_severity.items() if SEVERITIES.index(s) <= rank)

    def line(self) -> str:
        counts = ", ".join(f"{s} {self.new_by_severity.get(s, 0)}" for s in SEVERITIES)
        return f"detections: {self.found} alerts found, {self.new} new ({counts})"


# --------------------------------------------------------------------------- Databricks


def union_sql(detections: Sequence[Query] | None = None) -> str:
    """One Databricks SQL query: the alert rows of every detection (ALERT_SCHEMA columns)."""
    selected = list(detections) if detections is not None else list(DETECTIONS.values())
    columns = ", ".join(quote_identifier(name) for name in ALERT_SCHEMA.names)
    parts = [
        # The newline before ")" ends the query's last line, which may be a comment.
        f"SELECT {columns} FROM (\n{query.sql.rstrip().rstrip(';')}\n)"
        for query in selected
    ]
    return "\nUNION ALL\n".join(parts)


def alerts_sql(detected_at: datetime, detections: Sequence[Query] | None = None) -> str:
    """The alerts of every detection, each once, with `detected_at` (the MERGE source)."""
    columns = ", ".join(quote_identifier(name) for name in ALERT_SCHEMA.names)
    return (
        f"SELECT DISTINCT {columns}, {timestamp_literal(detected_at)} AS `detected_at`\n"
        f"FROM (\n{union_sql(detections)}\n)"
    )


def merge_sql(table: str, detected_at: datetime, detections: Sequence[Query] | None = None) -> str:
    """Insert-only MERGE of the current alerts into `table`, keyed by alert_id."""
    return (
        f"MERGE INTO {table} AS stored\n"
        f"USING (\n{alerts_sql(detected_at, detections)}\n) AS found\n"
        "ON stored.`alert_id` = found.`alert_id`\n"
        "WHEN NOT MATCHED THEN INSERT *"
    )


def configured(settings: DetectionSettings | None = None) -> list[Query]:
    """Every detection with the settings' values written into its params CTE."""
    params = (settings or DetectionSettings()).sql_params()
    return [replace(q, sql=with_params(q.sql, params)) for q in DETECTIONS.values()]


def write_detections_spark(
    spark: SparkSession,
    catalog: str,
    schema: str,
    *,
    now: datetime | None = None,
    settings: DetectionSettings | None = None,
) -> DetectionRun:
    """Run every detection in `catalog.schema` and merge new alerts into zoom_detections.

    Also (re)creates the views the queries read (`operation_changes`) in the schema, where
    the dashboard's datasets find them too.
    """
    detected_at = (now or datetime.now(UTC)).astimezone(UTC)
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # The detections name their tables without catalog or schema.
    spark.sql(f"USE CATALOG {quote_identifier(catalog)}")
    spark.sql(f"USE SCHEMA {quote_identifier(schema)}")
    table = ".".join(quote_identifier(p) for p in (catalog, schema, DETECTIONS_TABLE.name))
    spark.sql(create_table_sql(DETECTIONS_TABLE, table))
    for statement in view_statements():
        spark.sql(statement)
    selected = configured(settings)
    found = spark.sql(f"SELECT count(*) AS n FROM ({alerts_sql(detected_at, selected)})").collect()
    found = found[0]["n"]
    spark.sql(merge_sql(table, detected_at, selected))
    rows = spark.sql(
        f"SELECT severity, count(*) AS n FROM {table} "
        f"WHERE detected_at = {timestamp_literal(detected_at)} GROUP BY severity"
    ).collect()
    return DetectionRun(detected_at, int(found), {r["severity"]: int(r["n"]) for r in rows})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoom-ingest-detections",
        description="Run the Zoom log detections in catalog.schema and store new alerts in "
        "its zoom_detections table. An empty value means not set.",
    )
    parser.add_argument(
        "--catalog", action=LastNonEmpty, default="", help="Unity Catalog catalog (required)"
    )
    parser.add_argument(
        "--schema", action=LastNonEmpty, default="", help="schema of the tables (required)"
    )
    parser.add_argument(
        "--watched-countries",
        action=LastNonEmpty,
        default="",
        help="watched_country_sign_in: ISO country codes, comma-separated (default "
        f"{','.join(DEFAULT_WATCHED_COUNTRIES)}; 'none' for no country)",
    )
    parser.add_argument(
        "--travel-window",
        action=LastNonEmpty,
        default="",
        help="impossible_travel: two countries closer in time than this (default 1h)",
    )
    parser.add_argument(
        "--country-learning-days",
        action=LastNonEmpty,
        default="",
        help="new_country_sign_in: days of a user's history before a new country alerts "
        "(default 14)",
    )
    parser.add_argument(
        "--fail-on",
        action=LastNonEmpty,
        default="",
        help=f"exit 1 when a new alert has this severity or above ({', '.join(SEVERITIES)}); "
        "empty: never",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`zoom-ingest-detections`: the entry point of the zoom_detections job."""
    parser = build_parser()
    args = parser.parse_args(argv)
    fail_on = args.fail_on.lower()
    if fail_on and fail_on not in SEVERITIES:
        parser.error(f"--fail-on must be one of {', '.join(SEVERITIES)} or empty, not {fail_on!r}")
    for name in ("catalog", "schema"):
        if not getattr(args, name):
            parser.error(f"--{name} is required and must not be empty")
    try:
        settings = DetectionSettings.parse(
            args.watched_countries, args.travel_window, args.country_learning_days
        )
    except SettingsError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    result = write_detections_spark(_active_session(), args.catalog, args.schema, settings=settings)
    log.info("%s", result.line())
    if fail_on and result.new_at_or_above(fail_on):
        log.error("new alerts of severity %s or above: see the zoom_detections table", fail_on)
        return EXIT_ALERTS
    return EXIT_OK


def _active_session() -> SparkSession:
    """The SparkSession the Databricks runtime provides."""
    from pyspark.sql import SparkSession

    return SparkSession.builder.getOrCreate()


# --------------------------------------------------------------------------- local


def write_detections_local(
    warehouse: str | Path,
    *,
    now: datetime | None = None,
    params: Mapping[str, object] | None = None,
) -> DetectionRun:
    """Run every detection over a local warehouse and merge new alerts into zoom_detections.

    `now` pins the detections' current time (tests); `detected_at` is `now` or the clock.
    `params`: DetectionSettings.sql_params() (default: the settings from the environment).
    """
    detected_at = (now or datetime.now(UTC)).astimezone(UTC)
    with LocalWarehouse(warehouse, now=now, params=params) as session:
        alerts = session.detections()
    engine = LocalEngine(warehouse)
    path = engine.table_path(DETECTIONS_TABLE)
    if not DeltaTable.is_deltatable(str(path)):
        DeltaTable.create(
            path,
            DETECTIONS_TABLE.schema,
            mode="ignore",
            name=DETECTIONS_TABLE.name,
            description=DETECTIONS_TABLE.comment,
        )
    stamped = alerts.append_column(
        pa.field("detected_at", TIMESTAMP), pa.array([detected_at] * alerts.num_rows, TIMESTAMP)
    )
    batch = _unique_keys(stamped.cast(DETECTIONS_TABLE.schema)).sort_by("time")
    stored_ids = read_delta(DeltaTable(str(path)), columns=["alert_id"]).column("alert_id")
    fresh = batch.filter(pc.invert(pc.is_in(batch.column("alert_id"), value_set=stored_ids)))
    engine.merge_new(DETECTIONS_TABLE, batch)
    counts = fresh.group_by("severity").aggregate([("alert_id", "count")]).to_pylist()
    return DetectionRun(
        detected_at, alerts.num_rows, {c["severity"]: c["alert_id_count"] for c in counts}
    )


def _unique_keys(table: pa.Table) -> pa.Table:
    """The first row of every alert_id (a MERGE source must not repeat a key)."""
    ids = table.column("alert_id").to_pylist()
    first: dict[str, int] = {}
    for index, alert_id in enumerate(ids):
        first.setdefault(alert_id, index)
    return table.take(sorted(first.values()))


if __name__ == "__main__":
    sys.exit(main())
