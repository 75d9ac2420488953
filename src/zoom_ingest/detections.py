"""The detections task: run every detection and keep its alerts in `zoom_detections`.

Each detection (`sql/detections/*.sql`) returns alert rows with a stable `alert_id`
(a SHA-256 of the detection's name and what it saw), so storing them is an insert-only
MERGE on `alert_id`: running the task again, hourly over overlapping data, or after a
re-ingest, stores each alert once, with `detected_at` = the run that first saw it.
Alerts are never updated or deleted by the task.

- On Databricks: `zoom-ingest-detections --catalog=main --schema=zoom` (the hourly
  job's `detections` python_wheel_task, after the ingest) runs the detections in Spark SQL next to
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

from . import exit_codes, options
from .engines.base import Engine
from .engines.rules import quote_identifier, timestamp_literal
from .job_parameters import LastNonEmpty
from .queries import (
    ALERT_SCHEMA,
    DETECTIONS,
    Query,
    union_sql,
    view_statements,
    with_params,
)
from .setting_values import catalog_schema
from .settings import DetectionSettings, SettingsError
from .tables import BOOKKEEPING_TABLES, DERIVED_TABLES, LOG_TABLES, SEVERITIES, TIMESTAMP, UTC
from .tables import DETECTIONS as DETECTIONS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("zoom_ingest.detections")


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


def alerts_sql(detected_at: datetime, detections: Sequence[Query] | None = None) -> str:
    """The alerts of every detection, one row per alert_id, with `detected_at`.

    A detection may return one alert_id in more than one row (rows that differ in
    `change`, say); DISTINCT over whole rows would keep them all and a MERGE on alert_id
    would then insert the same key twice. ROW_NUMBER keeps exactly one, the earliest."""
    columns = ", ".join(quote_identifier(name) for name in ALERT_SCHEMA.names)
    order = ", ".join(quote_identifier(n) for n in ALERT_SCHEMA.names if n != "alert_id")
    return (
        f"SELECT {columns}, {timestamp_literal(detected_at)} AS `detected_at`\n"
        f"FROM (\nSELECT *, ROW_NUMBER() OVER (PARTITION BY `alert_id` ORDER BY {order}) "
        f"AS `zoom_ingest_rank`\nFROM (\n{union_sql(detections)}\n)\n)\n"
        "WHERE `zoom_ingest_rank` = 1"
    )


def collect_alerts(
    spark: SparkSession, detected_at: datetime, detections: Sequence[Query] | None = None
) -> pa.Table:
    """The alerts as an Arrow table in the zoom_detections schema, sorted by time.

    There are few alerts per run, so collecting them is cheap."""
    from .engines.spark import select_as_arrow  # the Spark engine's read, on Spark only

    source = f"(\n{alerts_sql(detected_at, detections)}\n)"
    return unique_alerts(select_as_arrow(spark.sql, source, DETECTIONS_TABLE.schema))


def store_alerts(engine: Engine, alerts: pa.Table) -> dict[str, int]:
    """Insert-only merge of `alerts` (unique alert_ids) into zoom_detections through the
    engine; severity → how many were new. One merge per severity, so that the engine's
    own count of inserted rows tells the new alerts of each."""
    new: dict[str, int] = {}
    for severity in SEVERITIES:
        part = alerts.filter(pc.equal(alerts.column("severity"), severity))
        inserted = engine.merge_new(DETECTIONS_TABLE, part) if part.num_rows else 0
        if inserted:
            new[severity] = inserted
    return new


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
    engine: Engine | None = None,
    settings: DetectionSettings | None = None,
    source: tuple[str, str] | None = None,
) -> DetectionRun:
    """Run every detection in `catalog.schema` and merge new alerts into zoom_detections.

    Also (re)creates the views the queries read (`operation_changes`) in the schema, where
    the dashboard's datasets find them too.

    `source` (catalog, schema): where activity_logs and operation_logs are when another
    tool writes them (the Zoom Logs connector). `catalog.schema` then holds views of
    those two tables under their own names (every query and the dashboard read them
    there), the outputs, and empty bookkeeping tables (data_freshness reads them); the
    addresses of the source's activity_logs are looked up into zoom_ip_countries.
    """
    from .engines.spark import SparkEngine  # on Spark only: the local path never loads it

    detected_at = (now or datetime.now(UTC)).astimezone(UTC)
    engine = engine or SparkEngine(spark, catalog, schema, optimize=False)
    # Every table, zoom_detections included, as the ingest job declares and describes it;
    # with a source, every one but the log tables (views of the source's stand there).
    if source:
        engine.ensure_tables([*BOOKKEEPING_TABLES.values(), *DERIVED_TABLES.values()])
    else:
        engine.ensure_tables()
    # The detections name their tables without catalog or schema. The catalog API, not
    # `USE CATALOG`, which only Databricks' SQL parses (open-source Spark rejects it).
    spark.catalog.setCurrentCatalog(catalog)
    spark.catalog.setCurrentDatabase(schema)
    selected = configured(settings)
    if source:
        for statement in source_view_statements(*source):
            spark.sql(statement)
        _look_up_new_addresses(spark, engine)
    for statement in view_statements():
        spark.sql(statement)
    alerts = collect_alerts(spark, detected_at, selected)
    return DetectionRun(detected_at, alerts.num_rows, store_alerts(engine, alerts))


def source_view_statements(catalog: str, schema: str) -> list[str]:
    """Views named after the log tables over another tool's tables, with the documented
    columns (identifiers only in the text)."""
    statements = []
    for spec in LOG_TABLES.values():
        columns = ", ".join(quote_identifier(c) for c in spec.columns)
        table = ".".join(quote_identifier(part) for part in (catalog, schema, spec.name))
        statements.append(
            f"CREATE OR REPLACE VIEW {quote_identifier(spec.name)} AS SELECT {columns} FROM {table}"
        )
    return statements


def _look_up_new_addresses(spark: SparkSession, engine: Engine) -> None:
    """zoom_ip_countries for the addresses of activity_logs it lacks (the ingest job
    fills it for its own tables; another tool's tables only pass through here)."""
    from .geo import ip_country_rows
    from .tables import IP_COUNTRIES

    rows = spark.sql(
        "SELECT DISTINCT a.`ip_address` FROM `activity_logs` AS a "
        "LEFT ANTI JOIN `zoom_ip_countries` AS c ON c.`ip_address` = a.`ip_address` "
        "WHERE a.`ip_address` IS NOT NULL"
    ).collect()
    addresses = [row["ip_address"] for row in rows]
    if addresses:
        engine.merge_new(IP_COUNTRIES, ip_country_rows(addresses))


def parse_source(text: str, catalog: str) -> tuple[str, str] | None:
    """`--source`: `catalog.schema`, or `schema` of `catalog`; None when empty."""
    return catalog_schema("source", text, catalog)


def build_parser() -> argparse.ArgumentParser:
    """One flag per option of the DETECTIONS entry point in options.OPTIONS."""
    return options.build_parser(
        "zoom-ingest-detections",
        "Run the Zoom log detections in catalog.schema and store new alerts in its "
        "zoom_detections table. An empty value means not set.",
        options.DETECTIONS,
        LastNonEmpty,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`zoom-ingest-detections`: the entry point of the hourly job's detections task.

    Called without `argv` (as the wheel task calls it) a non-zero status is raised as
    SystemExit: the task ignores what the function returns."""
    status = run_once(argv)
    if argv is None:
        return exit_codes.exit_with(status)
    return status


def run_once(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the detections once, return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        fail_on = args.fail_on.lower()
        if fail_on and fail_on not in SEVERITIES:
            parser.error(
                f"--fail-on must be one of {', '.join(SEVERITIES)} or empty, not {fail_on!r}"
            )
        for name in ("catalog", "schema"):
            if not getattr(args, name):
                parser.error(f"--{name} is required and must not be empty")
        try:
            settings = options.detection_settings(vars(args))
            source = parse_source(args.source, args.catalog)
        except SettingsError as exc:
            parser.error(str(exc))
    except SystemExit as exc:  # --help, or a bad argument: argparse has said why
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    try:
        result = write_detections_spark(
            _active_session(), args.catalog, args.schema, settings=settings, source=source
        )
    except Exception as exc:
        # A known outcome (a zoom_detections table with another schema, …) in one line,
        # with the code every entry point gives it; anything else keeps its traceback.
        code = exit_codes.for_exception(exc)
        if code is None:
            raise
        log.error("%s", exc)
        return code
    log.info("%s", result.line())
    if fail_on and result.new_at_or_above(fail_on):
        log.error("new alerts of severity %s or above: see the zoom_detections table", fail_on)
        return exit_codes.ALERTS
    return exit_codes.OK


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
    source: Path | None = None,
) -> DetectionRun:
    """Run every detection over a local warehouse and merge new alerts into zoom_detections.

    `source`: the folder of the log tables when another tool wrote them; the alerts go
    to `warehouse`.

    `now` pins the detections' current time (tests); `detected_at` is `now` or the clock.
    `params`: DetectionSettings.sql_params() (default: the settings from the environment).
    """
    # The local extra (duckdb, sqlglot, deltalake): imported here, never on Databricks.
    from .analytics import LocalWarehouse
    from .engines.local import LocalEngine

    detected_at = (now or datetime.now(UTC)).astimezone(UTC)
    engine = LocalEngine(warehouse)
    engine.ensure_tables(DERIVED_TABLES.values() if source else None)
    if source:
        # Another tool's tables: their addresses' countries, which the ingest job would
        # have looked up, before the country detections read them.
        from .geo import ip_country_rows_for
        from .tables import IP_COUNTRIES

        with LocalWarehouse(warehouse, source=source) as session:
            activity = session.query("SELECT ip_address FROM activity_logs")
        engine.merge_new(IP_COUNTRIES, ip_country_rows_for(activity))
    with LocalWarehouse(warehouse, now=now, params=params, source=source) as session:
        alerts = session.detections()
    stamped = alerts.append_column(
        pa.field("detected_at", TIMESTAMP), pa.array([detected_at] * alerts.num_rows, TIMESTAMP)
    )
    batch = unique_alerts(stamped.cast(DETECTIONS_TABLE.schema))
    return DetectionRun(detected_at, batch.num_rows, store_alerts(engine, batch))


def unique_alerts(table: pa.Table) -> pa.Table:
    """The first row of every alert_id (a MERGE source must not repeat a key), sorted by
    time as the engines' merge expects."""
    ids = table.column("alert_id").to_pylist()
    first: dict[str, int] = {}
    for index, alert_id in enumerate(ids):
        first.setdefault(alert_id, index)
    return table.take(pa.array(sorted(first.values()), pa.int64())).sort_by("time")


if __name__ == "__main__":
    sys.exit(main())
