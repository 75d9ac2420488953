"""The Spark engine and the Databricks entry point, with a real local SparkSession.

`RecordingSparkEngine` below intercepts the engine's one SQL choke point: every
statement is parsed by Spark's own SQL parser and recorded, and the batch DataFrames
behind it are real; that pins the SQL the engine sends to Databricks. The tests that need
Delta itself (MERGE semantics, `CLUSTER BY`, `DESCRIBE DETAIL`, concurrent commits) use
the jars `make test` fetches (conftest.py's `delta_spark`: a skip that says how to get
them, a failure under CI=true), as do the engine contract tests and tests/test_spark_delta.py.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    CalendarIntervalType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from zoom_ingest import databricks_job, geo
from zoom_ingest.engines import EngineBusy, TableSchemaMismatch, spark_session
from zoom_ingest.engines import spark as spark_engine
from zoom_ingest.engines.base import LeaseHolder
from zoom_ingest.engines.rules import quote_identifier, timestamp_literal
from zoom_ingest.engines.spark import (
    SparkEngine,
    dataframe,
    is_commit_conflict,
    merge_sql,
    spark_schema,
    table_differences,
)
from zoom_ingest.engines.spark_session import delta_jars, local_session
from zoom_ingest.normalise import Batch
from zoom_ingest.settings import SettingsError
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    ALL_TABLES,
    CHECKPOINTS,
    IP_COUNTRIES,
    LEASES,
    LOG_TABLES,
    OPERATION_LOGS,
    REJECTS,
    RUNS,
    UTC,
    TableSpec,
    format_time,
)

START = datetime(2025, 8, 1, tzinfo=UTC)
MERGE_METRICS = (
    "num_affected_rows BIGINT, num_updated_rows BIGINT, num_deleted_rows BIGINT, "
    "num_inserted_rows BIGINT"
)
# Delta's own SQL (parsed by the Delta extension, not by Spark's parser); Unity Catalog's
# column tags (` SET TAGS (`) are Databricks SQL alone, also skipped.
DELTA_ONLY_SQL = ("OPTIMIZE ", "DESCRIBE HISTORY ")
# ensure_tables reads the column tags from Unity Catalog's information_schema; a local
# session has none, so the tagging step is skipped after this one statement.
TAGS_QUERY = "SELECT table_name, column_name, tag_value FROM `main`.information_schema"
SOURCE_VIEW = re.compile(r"(?:USING|FROM) `(zoom_ingest_batch_[0-9a-f]{32})`")
TABLE_NAME = re.compile(
    r"(?:CREATE TABLE IF NOT EXISTS|MERGE INTO|INSERT INTO) ((?:`[^`]+`\.?){3})"
)


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    # Shared with conftest.py's "spark" engine factory: one session per process.
    return local_session()


def parse_plan(spark: SparkSession, statement: str) -> str:
    """Spark's own SQL parser (no Delta needed); raises on a syntax error."""
    return spark._jsparkSession.sessionState().sqlParser().parsePlan(statement).toString()


class RecordingSparkEngine(SparkEngine):
    """A SparkEngine whose statements are parsed and recorded instead of run on Delta.

    - MERGE answers with Delta's metrics row, counting every source row as inserted;
    - SELECT runs for real against `backing` temp views standing in for the tables
      (created empty by CREATE TABLE; `back()` fills one);
    - `existing` says which tables exist, with their Spark schema;
    - `failures` are raised, in order, by the next executions (conflict tests).
    """

    def __init__(
        self, spark: SparkSession, catalog: str = "main", schema: str = "zoom", **options: Any
    ):
        options.setdefault("conflict_backoff_seconds", 0)
        super().__init__(spark, catalog, schema, **options)
        self.statements: list[str] = []
        self.args: list[dict[str, Any] | None] = []
        self.sources: list[tuple[str, StructType, list[dict[str, Any]]]] = []
        self.existing: dict[str, StructType] = {}
        self.backing: dict[str, str] = {}
        self.failures: list[BaseException] = []
        self.executions = 0

    def back(self, spec: TableSpec, rows: pa.Table) -> None:
        view = f"backing_{spec.name}_{uuid.uuid4().hex}"
        dataframe(self.spark, spec, rows).createOrReplaceTempView(view)
        self.backing[self.table_name(spec)] = view

    def _table_schema(self, spec: TableSpec) -> StructType | None:
        return self.existing.get(spec.name)

    def write_lease(self, lease: pa.Table) -> list[LeaseHolder]:
        # The lease MERGE is recorded, not run: the table then holds the row it wrote (as
        # with no other run), and the read-back SELECT runs for real against that.
        self.existing.setdefault(LEASES.name, spark_schema(LEASES))
        self.back(LEASES, lease)
        return super().write_lease(lease)

    def _execute(self, statement: str, args: dict[str, Any] | None = None) -> DataFrame:
        self.executions += 1
        if self.failures:
            raise self.failures.pop(0)
        if not statement.startswith(DELTA_ONLY_SQL) and " SET TAGS (" not in statement:
            parse_plan(self.spark, statement)
        self.statements.append(statement)
        self.args.append(args)
        source = SOURCE_VIEW.search(statement)
        if source:
            frame = self.spark.table(source[1])
            self.sources.append((statement, frame.schema, [r.asDict() for r in frame.collect()]))
        if statement.startswith("CREATE TABLE"):
            spec = next(s for s in ALL_TABLES.values() if self.table_name(s) in statement)
            self.back(spec, spec.schema.empty_table())
        if statement.startswith("MERGE"):
            inserted = len(self.sources[-1][2])
            return self.spark.createDataFrame([(inserted, 0, 0, inserted)], MERGE_METRICS)
        if statement.startswith("SELECT"):
            for table, view in self.backing.items():
                statement = statement.replace(table, quote_identifier(view))
            return self.spark.sql(statement, args=args) if args else self.spark.sql(statement)
        return self.spark.createDataFrame([], "result STRING")

    def statements_on(self, spec: TableSpec, verb: str) -> list[str]:
        return [s for s in self.statements if s.startswith(verb) and self.table_name(spec) in s]

    def source_rows(self, spec: TableSpec, verb: str = "MERGE INTO") -> list[dict[str, Any]]:
        prefix = f"{verb} {self.table_name(spec)} "
        return [row for s, _, rows in self.sources if s.startswith(prefix) for row in rows]


@pytest.fixture
def recording(spark: SparkSession) -> RecordingSparkEngine:
    return RecordingSparkEngine(spark)


def activity_records(times: list[datetime], email: str = "ada@example.com") -> list[dict]:
    return [
        {
            "email": email,
            "time": format_time(t),
            "type": "Sign in" if i % 2 == 0 else "Sign out",
            "ip_address": f"203.0.113.{i % 250}",
            "client_type": "Browser",
            "version": None if i % 3 == 0 else "6.1.0",
        }
        for i, t in enumerate(times)
    ]


def batch_of(spec: TableSpec, records: list[dict]) -> pa.Table:
    batch = Batch(spec)
    batch.add(records)
    assert not batch.rejects, batch.rejects
    return batch.to_arrow()


def runs_rows() -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "run_id": "run-1",
                "account_id": "acct",
                "stream": "activity_logs",
                "mode": "incremental",
                "started_at": START + timedelta(microseconds=7),
                "windows": 3,
                "records_inserted": 2**40,
                "duration_seconds": 1.25,
                "status": "succeeded",
            },
            {"run_id": "run-1", "account_id": "acct", "stream": "operation_logs"},
        ],
        schema=RUNS.schema,
    )


def assert_same_rows(spec: TableSpec, frame: DataFrame, expected: pa.Table) -> None:
    """`frame` holds exactly `expected`'s rows, timestamps to the microsecond."""
    columns = [
        f"unix_micros({quote_identifier(f.name)}) AS {quote_identifier(f.name)}"
        if pa.types.is_timestamp(f.type)
        else quote_identifier(f.name)
        for f in spec.schema
    ]
    got = [r.asDict() for r in frame.selectExpr(*columns).collect()]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    want = [
        {
            k: (v - epoch) // timedelta(microseconds=1) if isinstance(v, datetime) else v
            for k, v in row.items()
        }
        for row in expected.to_pylist()
    ]
    key = lambda row: tuple(str(row[k]) for k in spec.key)  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)


# -- schemas and DataFrames -----------------------------------------------------------------


def test_spark_schema_has_the_arrow_types_and_nullability_of_every_table() -> None:
    sql_types = {
        pa.string(): StringType(),
        pa.timestamp("us", tz="UTC"): TimestampType(),
        pa.int64(): LongType(),
    }
    for spec in ALL_TABLES.values():
        schema = spark_schema(spec)
        assert schema.names == spec.columns
        for field, arrow in zip(schema.fields, spec.schema, strict=True):
            assert field.nullable == arrow.nullable, (spec.name, field.name)
            if arrow.type != pa.float64():
                assert field.dataType == sql_types[arrow.type], (spec.name, field.name)
        assert table_differences(spec, schema) == []
    assert spark_schema(RUNS)["duration_seconds"].dataType.simpleString() == "double"
    assert not spark_schema(ACTIVITY_LOGS)["time"].nullable
    assert spark_schema(ACTIVITY_LOGS)["email"].nullable


@pytest.mark.parametrize("route", ["arrow", "rows"])
def test_a_batch_becomes_a_dataframe_with_exactly_the_table_schema(
    spark: SparkSession, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both routes: a pyarrow.Table (Spark 4, Spark Connect) and Python rows (Spark 3.5)."""
    monkeypatch.setattr(spark_engine, "_takes_arrow_tables", lambda session: route == "arrow")
    times = [START + timedelta(hours=h, microseconds=h * 1001) for h in range(6)]
    records = activity_records(times, email="détail ✓ 🧑‍💻 ' \" ` \\ ; --")
    activity = batch_of(ACTIVITY_LOGS, records)
    for spec, batch in ((ACTIVITY_LOGS, activity), (RUNS, runs_rows())):
        frame = dataframe(spark, spec, batch)
        assert frame.schema == spark_schema(spec)
        assert_same_rows(spec, frame, batch)


# -- the SQL ----------------------------------------------------------------------------------


def test_every_statement_parses_with_sparks_own_parser(recording: RecordingSparkEngine) -> None:
    recording.ensure_tables()
    activity = batch_of(ACTIVITY_LOGS, activity_records([START, START + timedelta(seconds=1)]))
    assert recording.merge_new(ACTIVITY_LOGS, activity) == 2
    operations = batch_of(
        OPERATION_LOGS,
        [{"time": format_time(START), "operator": "a@example.com", "action": "Update"}],
    )
    assert recording.merge_new(OPERATION_LOGS, operations) == 1
    rejects = pa.Table.from_pylist(
        [
            {
                "reject_id": "r1",
                "run_id": "run-1",
                "account_id": "acct",
                "stream": "activity_logs",
                "rejected_at": START,
                "reason": "time: missing",
                "raw_json": "{}",
            }
        ],
        schema=REJECTS.schema,
    )
    assert recording.merge_new(REJECTS, rejects) == 1
    recording.append(RUNS, runs_rows())
    recording.save_checkpoint("acct", "activity_logs", START, "run-1")
    recording.read_checkpoints("acct")
    for spec in ALL_TABLES.values():
        recording.read_table(spec)

    kinds = [" ".join(s.split()[:2]) for s in recording.statements]
    assert kinds.count("CREATE SCHEMA") == 1
    assert kinds.count("CREATE TABLE") == len(ALL_TABLES)
    assert kinds.count("MERGE INTO") == 4  # three insert-only merges, one checkpoint upsert
    assert kinds.count("INSERT INTO") == 1
    assert kinds.count("SELECT `stream`,") == 1
    assert kinds.count("SELECT table_name,") == 1  # the column tags, unreadable here
    assert len(recording.statements) == 1 + len(ALL_TABLES) + 4 + 1 + 1 + 1 + len(ALL_TABLES)


def test_tables_are_created_as_delta_clustered_on_their_clustering_column(
    recording: RecordingSparkEngine, spark: SparkSession
) -> None:
    recording.ensure_tables()
    assert recording.statements[0] == "CREATE SCHEMA IF NOT EXISTS `main`.`zoom`"
    for spec in ALL_TABLES.values():
        [create] = recording.statements_on(spec, "CREATE TABLE")
        assert create.startswith(f"CREATE TABLE IF NOT EXISTS `main`.`zoom`.`{spec.name}` (")
        assert " USING DELTA " in create
        plan = parse_plan(spark, create)
        if spec.cluster_by:
            assert f"CLUSTER BY (`{spec.cluster_by}`)" in create
            assert f"cluster_by({spec.cluster_by})" in plan
        else:
            assert "CLUSTER BY" not in create
    [create] = recording.statements_on(ACTIVITY_LOGS, "CREATE TABLE")
    assert "(`lw_id` STRING NOT NULL COMMENT 'Deterministic SHA-256 of the record " in create
    assert ", `type` STRING COMMENT 'Sign in or Sign out', " in create
    assert "`time` TIMESTAMP_LTZ NOT NULL COMMENT" in create
    assert "CLUSTER BY (`time`)" in create
    [create] = recording.statements_on(RUNS, "CREATE TABLE")
    assert "`records_inserted` BIGINT COMMENT 'Records new to the table', " in create
    assert "`duration_seconds` DOUBLE COMMENT 'Wall time of the stream', " in create


def test_ddl_runs_only_at_setup_never_per_batch(recording: RecordingSparkEngine) -> None:
    recording.ensure_tables()
    setup = len(recording.statements)
    for day in range(3):
        times = [START + timedelta(days=day, minutes=m) for m in range(5)]
        recording.merge_new(ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(times)))
        recording.save_checkpoint("acct", "activity_logs", START + timedelta(days=day), "run-1")
    recording.append(RUNS, runs_rows())
    later = recording.statements[setup:]
    assert len(later) == 7
    assert all(s.startswith(("MERGE INTO", "INSERT INTO")) for s in later), later


def test_existing_tables_are_checked_and_never_recreated_or_altered(
    recording: RecordingSparkEngine,
) -> None:
    recording.existing = {
        spec.name: spark_schema(spec, comments=True) for spec in ALL_TABLES.values()
    }
    recording.ensure_tables()
    assert recording.statements[0] == "CREATE SCHEMA IF NOT EXISTS `main`.`zoom`"
    assert [s for s in recording.statements[1:] if not s.startswith(TAGS_QUERY)] == []

    expected = spark_schema(OPERATION_LOGS)
    foreign = StructType(
        [
            StructField("lw_id", StringType(), nullable=True),
            expected["time"],
            expected["operator"],
            expected["category_type"],
            StructField("action", LongType()),
            StructField("detail", StringType()),
            StructField("span", CalendarIntervalType()),
        ]
    )
    recording.existing["operation_logs"] = foreign
    with pytest.raises(TableSchemaMismatch) as caught:
        recording.ensure_tables()
    message = str(caught.value)
    assert caught.value.table == "operation_logs"
    assert "main.zoom" in message
    assert "action: expected string, found int64" in message
    assert "lw_id: expected NOT NULL, found nullable" in message
    assert "missing column operation_detail" in message
    assert "unexpected column detail" in message
    assert "unexpected column span interval" in message
    assert not [s for s in recording.statements if not s.startswith(("CREATE SCHEMA", TAGS_QUERY))]


def test_every_table_and_column_has_a_comment_and_personal_data_is_marked() -> None:
    for spec in ALL_TABLES.values():
        assert spec.comment, spec.name
        assert [c for c in spec.columns if not spec.column_comment(c)] == [], spec.name
        assert set(spec.pii) <= set(spec.columns), spec.name
    assert ACTIVITY_LOGS.pii == {"email": "email", "ip_address": "ip_address"}
    assert OPERATION_LOGS.pii == {"operator": "email"}


def test_tables_created_without_comments_get_them_once(recording: RecordingSparkEngine) -> None:
    recording.existing = {spec.name: spark_schema(spec) for spec in ALL_TABLES.values()}
    recording.existing["activity_logs"] = spark_schema(ACTIVITY_LOGS, comments=True)
    recording.ensure_tables()
    comments = [s for s in recording.statements if s.startswith("ALTER TABLE")]
    expected = sum(len(spec.columns) for spec in ALL_TABLES.values()) - len(ACTIVITY_LOGS.columns)
    assert len(comments) == expected
    assert not [s for s in comments if "`activity_logs`" in s]
    assert (
        "ALTER TABLE `main`.`zoom`.`operation_logs` ALTER COLUMN `operator` COMMENT "
        "'Email address of the user who performed the operation'"
    ) in comments


def test_personal_data_columns_are_tagged_once_and_a_refusal_is_tolerated(
    recording: RecordingSparkEngine, spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    recording.existing = {
        spec.name: spark_schema(spec, comments=True) for spec in ALL_TABLES.values()
    }
    tags = spark.createDataFrame(
        [
            ("zoom", "activity_logs", "email", "pii", "email"),
            ("zoom", "operation_logs", "operator", "pii", "other"),  # another value: reset
            ("elsewhere", "activity_logs", "ip_address", "pii", "ip_address"),
            ("zoom", "activity_logs", "ip_address", "owner", "ip_address"),
        ],
        "schema_name STRING, table_name STRING, column_name STRING, tag_name STRING, "
        "tag_value STRING",
    )
    view = f"column_tags_{uuid.uuid4().hex}"
    tags.createOrReplaceTempView(view)
    recording.backing["`main`.information_schema.column_tags"] = view
    recording.ensure_tables()
    [query] = [s for s in recording.statements if s.startswith(TAGS_QUERY)]
    assert recording.args[recording.statements.index(query)] == {"schema": "zoom", "tag": "pii"}
    tagged = [s for s in recording.statements if " SET TAGS (" in s]
    wanted = {
        (spec.name, column, value)
        for spec in ALL_TABLES.values()
        for column, value in spec.pii.items()
    } - {("activity_logs", "email", "email")}  # already there: not set again
    assert sorted(tagged) == sorted(
        f"ALTER TABLE `main`.`zoom`.`{table}` ALTER COLUMN `{column}` SET TAGS ('pii' = '{value}')"
        for table, column, value in wanted
    )

    # A principal without APPLY TAG: one warning, the run goes on, no further attempts.
    refused = RecordingSparkEngine(spark)
    refused.existing = recording.existing
    refused.backing = dict(recording.backing)
    original = refused._execute

    def no_tags(statement: str, args: dict[str, Any] | None = None) -> DataFrame:
        if " SET TAGS (" in statement:
            refused.statements.append(statement)
            raise FakeSparkError("[PERMISSION_DENIED] User does not have APPLY TAG", "X")
        return original(statement, args)

    refused._execute = no_tags  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="zoom_ingest.engines.spark"):
        refused.ensure_tables()
    assert len([s for s in refused.statements if " SET TAGS (" in s]) == 1
    assert "grant APPLY TAG" in caplog.text


def test_merge_matches_on_the_key_within_the_batch_time_range_and_holds_no_value(
    spark: SparkSession,
) -> None:
    hostile = "x' OR 1=1; DROP TABLE activity_logs; -- `\\"
    low = START + timedelta(hours=3, microseconds=123_456)
    high = START + timedelta(hours=5, microseconds=999_999)
    records = activity_records([high, low, START + timedelta(hours=4)], email=hostile)
    records[0]["time"] = "2025-08-01T07:00:00.999999+02:00"  # `high`, written in +02:00
    batch = batch_of(ACTIVITY_LOGS, records)
    statement = merge_sql(ACTIVITY_LOGS, "`c`.`s`.`activity_logs`", "`v`", batch)
    assert statement == (
        "MERGE INTO `c`.`s`.`activity_logs` AS tgt USING `v` AS src "
        "ON tgt.`lw_id` = src.`lw_id` "
        "AND tgt.`time` >= TIMESTAMP_LTZ'2025-08-01T03:00:00.123456Z' "
        "AND tgt.`time` <= TIMESTAMP_LTZ'2025-08-01T05:00:00.999999Z' "
        "WHEN NOT MATCHED THEN INSERT (`lw_id`, `time`, `type`, `email`, `ip_address`, "
        "`client_type`, `version`) VALUES (src.`lw_id`, src.`time`, src.`type`, src.`email`, "
        "src.`ip_address`, src.`client_type`, src.`version`)"
    )
    assert "MergeIntoTable" in parse_plan(spark, statement)
    # Tables without a clustering column match on the key alone.
    checkpoint_like = merge_sql(REJECTS, "`c`.`s`.`r`", "`v`", REJECTS.schema.empty_table())
    assert "ON tgt.`reject_id` = src.`reject_id` WHEN NOT MATCHED" in checkpoint_like


def test_values_travel_in_dataframes_and_parameters_never_in_sql(
    recording: RecordingSparkEngine,
) -> None:
    hostile = "acct' OR '1'='1"
    recording.ensure_tables()
    records = activity_records([START], email="mallory'; --@example.com")
    recording.merge_new(ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, records))
    recording.save_checkpoint(hostile, "activity_logs", START, "run-x'; --")
    assert recording.read_checkpoints(hostile) == {}
    assert recording.args[-1] == {"account_id": hostile}
    for statement in recording.statements:
        assert "mallory" not in statement and hostile not in statement and "run-x" not in statement
    [upsert] = recording.source_rows(CHECKPOINTS)
    assert (upsert["account_id"], upsert["run_id"]) == (hostile, "run-x'; --")


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Asia/Kolkata"])
def test_timestamp_literals_are_the_same_instant_in_any_session_time_zone(
    spark: SparkSession, zone: str
) -> None:
    instants = [
        START,
        START + timedelta(microseconds=1),
        datetime(2025, 3, 30, 1, 30, 59, 999_999, tzinfo=timezone(timedelta(hours=-7))),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=14))),
    ]
    spark.conf.set("spark.sql.session.timeZone", zone)
    try:
        for instant in instants:
            micros = spark.sql(f"SELECT unix_micros({timestamp_literal(instant)}) AS m").first()
            assert micros is not None
            assert micros["m"] == (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
                microseconds=1
            )
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    with pytest.raises(ValueError, match="aware datetime"):
        timestamp_literal(datetime(2025, 1, 1))


def test_the_job_sessions_run_in_utc_and_the_engine_leaves_a_users_zone_alone(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert local_session() is spark
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    try:
        RecordingSparkEngine(spark)  # a notebook's session keeps the zone its user set
        assert spark.conf.get("spark.sql.session.timeZone") == "Europe/Paris"
        monkeypatch.setattr(SparkSession.builder, "getOrCreate", lambda: spark)
        assert databricks_job.get_spark() is spark  # the job's own session: UTC
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_batches_in_another_schema_are_refused(recording: RecordingSparkEngine) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records([START, START + timedelta(seconds=1)]))
    with pytest.raises(ValueError, match="type: expected string, found int64"):
        recording.merge_new(ACTIVITY_LOGS, batch.set_column(2, "type", pa.array([1, 2])))
    with pytest.raises(ValueError, match="missing column version"):
        recording.append(ACTIVITY_LOGS, batch.drop_columns(["version"]))
    assert recording.merge_new(ACTIVITY_LOGS, ACTIVITY_LOGS.schema.empty_table()) == 0
    recording.append(RUNS, RUNS.schema.empty_table())
    assert recording.statements == []


# -- reads ------------------------------------------------------------------------------------


def test_read_table_and_read_checkpoints_give_exact_utc_values(
    recording: RecordingSparkEngine,
) -> None:
    recording.ensure_tables()
    runs = runs_rows()
    recording.back(RUNS, runs)
    assert recording.read_table(RUNS).equals(runs)

    cursor = START + timedelta(hours=5, microseconds=42)
    checkpoints = pa.Table.from_pylist(
        [
            {
                "account_id": "a",
                "stream": "activity_logs",
                "cursor": cursor,
                "updated_at": START,
                "run_id": "r",
            },
            {
                "account_id": "a",
                "stream": "operation_logs",
                "cursor": START,
                "updated_at": START,
                "run_id": "r",
            },
            {
                "account_id": "b",
                "stream": "activity_logs",
                "cursor": START,
                "updated_at": START,
                "run_id": "r",
            },
        ],
        schema=CHECKPOINTS.schema,
    )
    recording.back(CHECKPOINTS, checkpoints)
    cursors = recording.read_checkpoints("a")
    assert cursors == {"activity_logs": cursor, "operation_logs": START}
    assert all(c.utcoffset() == timedelta(0) for c in cursors.values())
    assert recording.read_checkpoints("nobody") == {}
    assert recording.read_table(CHECKPOINTS).equals(checkpoints)


# -- commits, lock, maintenance ---------------------------------------------------------------


class FakeSparkError(Exception):
    """Stands in for a PySpark error: a message and an error class (condition)."""

    def __init__(self, message: str, condition: str | None = None) -> None:
        super().__init__(message)
        self.condition = condition

    def getCondition(self) -> str | None:
        return self.condition


def test_commit_conflicts_are_recognised() -> None:
    assert is_commit_conflict(FakeSparkError("[DELTA_CONCURRENT_APPEND] Files were added"))
    assert is_commit_conflict(FakeSparkError("conflict", "DELTA_CONCURRENT_DELETE_READ"))
    assert is_commit_conflict(
        FakeSparkError("io.delta.exceptions.ConcurrentAppendException: Files were added")
    )
    assert is_commit_conflict(FakeSparkError("x", "DELTA_METADATA_CHANGED"))
    assert not is_commit_conflict(FakeSparkError("[TABLE_OR_VIEW_NOT_FOUND] nope"))
    assert not is_commit_conflict(ValueError("Concurrent"))


def test_conflicting_commits_are_rerun_and_other_errors_are_not(
    recording: RecordingSparkEngine,
) -> None:
    recording.ensure_tables()
    batch = batch_of(ACTIVITY_LOGS, activity_records([START]))
    recording.executions = 0
    recording.failures = [
        FakeSparkError("[DELTA_CONCURRENT_APPEND.WITH_PARTITION_HINT] Files were added"),
        FakeSparkError("ConcurrentTransactionException: a concurrent update"),
    ]
    assert recording.merge_new(ACTIVITY_LOGS, batch) == 1
    assert recording.executions == 3

    recording.executions = 0
    recording.failures = [FakeSparkError("[DELTA_CONCURRENT_APPEND] again")] * 10
    with pytest.raises(FakeSparkError, match="again"):
        recording.merge_new(ACTIVITY_LOGS, batch)
    assert recording.executions == recording.commit_attempts

    recording.executions = 0
    recording.failures = [FakeSparkError("[INSUFFICIENT_PERMISSIONS] no MODIFY", "X")]
    with pytest.raises(FakeSparkError, match="no MODIFY"):
        recording.append(RUNS, runs_rows())
    assert recording.executions == 1


def test_a_schema_that_cannot_be_created_for_lack_of_rights_is_used_as_it_is(
    recording: RecordingSparkEngine,
) -> None:
    recording.failures = [FakeSparkError("User lacks CREATE SCHEMA", "PERMISSION_DENIED")]
    recording.ensure_tables()
    verbs = [" ".join(s.split()[:2]) for s in recording.statements]
    assert verbs == ["CREATE TABLE"] * len(ALL_TABLES) + ["SELECT table_name,"]


def test_run_lock_refuses_a_second_run_on_the_same_schema_in_this_process(
    spark: SparkSession,
) -> None:
    first, second = RecordingSparkEngine(spark), RecordingSparkEngine(spark)
    elsewhere = RecordingSparkEngine(spark, schema="other")
    with first.run_lock():
        with pytest.raises(EngineBusy, match=r"main\.zoom"), second.run_lock():
            pytest.fail("two runs held the same schema")
        with elsewhere.run_lock():
            pass
    with pytest.raises(ZeroDivisionError), second.run_lock():
        1 / 0  # noqa: B018
    with first.run_lock():
        pass


def test_maintain_optimizes_the_clustered_tables_when_asked(spark: SparkSession) -> None:
    engine = RecordingSparkEngine(spark)
    engine.maintain()
    assert engine.statements == [
        "OPTIMIZE `main`.`zoom`.`activity_logs`",
        "OPTIMIZE `main`.`zoom`.`operation_logs`",
        "OPTIMIZE `main`.`zoom`.`zoom_ingest_runs`",
        "OPTIMIZE `main`.`zoom`.`zoom_detections`",
    ]
    quiet = RecordingSparkEngine(spark, optimize=False)
    quiet.maintain()
    assert quiet.statements == []


def test_delta_jars_are_found_in_folders_and_lists(tmp_path: Path) -> None:
    folder = tmp_path / "jars"
    folder.mkdir()
    for name in ("delta-storage-4.0.1.jar", "delta-spark_2.13-4.0.1.jar", "README.txt"):
        (folder / name).write_text("")
    single = tmp_path / "extra.jar"
    single.write_text("")
    assert delta_jars(str(folder)) == [
        str(folder / "delta-spark_2.13-4.0.1.jar"),
        str(folder / "delta-storage-4.0.1.jar"),
    ]
    assert delta_jars(f"{single}:{tmp_path / 'missing.jar'}:") == [str(single)]
    assert delta_jars("") == []


def test_jars_spark_resolved_are_kept_under_their_maven_names(tmp_path: Path) -> None:
    resolved, cache = tmp_path / "ivy" / "jars", tmp_path / "jars"
    resolved.mkdir(parents=True)
    for name in (
        "io.delta_delta-spark_2.13-4.0.1.jar",
        "io.delta_delta-storage-4.0.1.jar",
        "org.antlr_antlr4-runtime-4.13.1.jar",
    ):
        (resolved / name).write_text(name)
    assert spark_session.missing_delta_jars(delta_jars(str(cache))) == [
        "delta-spark_2.13-4.0.1.jar",
        "delta-storage-4.0.1.jar",
    ]
    spark_session._keep_resolved_jars(resolved, cache)
    assert sorted(p.name for p in cache.iterdir()) == [
        "delta-spark_2.13-4.0.1.jar",
        "delta-storage-4.0.1.jar",
    ]
    assert (cache / "delta-storage-4.0.1.jar").read_text() == "io.delta_delta-storage-4.0.1.jar"
    assert spark_session.missing_delta_jars(delta_jars(str(cache))) == []


def test_how_to_get_the_jars_names_the_command_the_artifacts_and_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(spark_session.DELTA_JARS_ENV, str(tmp_path / "nowhere"))
    text = spark_session.how_to_get_delta_jars()
    for part in (
        str(tmp_path / "nowhere"),
        "make jars",
        "mvn dependency:copy",
        "io.delta:delta-spark_2.13:4.0.1",
        "io.delta:delta-storage:4.0.1",
        "ZOOM_INGEST_DELTA_JARS",
        "--engine spark",
    ):
        assert part in text, part


def test_a_delta_test_that_would_skip_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import skip_delta

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true.*no jars here"):
        skip_delta("no jars here")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no jars here"):
        skip_delta("no jars here")


class StubSession:
    """Stands in for a SparkSession with Delta: what the CLI asks of one before a run."""

    version = "4.0.1"

    class conf:
        @staticmethod
        def get(key: str, default: str | None = None) -> str | None:
            return "io.delta.sql.DeltaSparkSessionExtension" if "extensions" in key else default


def test_engine_spark_fetches_missing_jars_itself_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoom_ingest import cli

    monkeypatch.setenv(spark_session.DELTA_JARS_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    asked: list[dict[str, Any]] = []

    def session(**options: Any) -> StubSession:
        asked.append(options)
        return StubSession()

    monkeypatch.setattr(spark_session, "local_session", session)
    engine = cli.make_engine("spark", tmp_path / "wh")
    assert asked == [{"fetch": True}]
    assert isinstance(engine, SparkEngine) and engine.warehouse == (tmp_path / "wh").absolute()
    assert engine.table_name(ACTIVITY_LOGS) == f"delta.`{tmp_path / 'wh' / 'activity_logs'}`"
    err = capsys.readouterr().err
    assert "fetching io.delta:delta-spark_2.13:4.0.1 from Maven Central" in err
    assert str(tmp_path / "cache" / "zoom_ingest" / "jars") in err

    # Cached: nothing is said, the session starts from the jars.
    (tmp_path / "empty").mkdir()
    for name in spark_session.DELTA_JAR_NAMES:
        (tmp_path / "empty" / name).write_text("")
    cli.make_engine("spark", tmp_path / "wh")
    assert "fetching" not in capsys.readouterr().err


def test_the_engine_option_is_declared_once_and_checked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoom_ingest import cli
    from zoom_ingest.settings import ENGINES

    for command in (cli.run_command, cli.demo_command):
        [option] = [p for p in command.params if p.name == "engine"]
        assert list(option.type.choices) == list(ENGINES) and option.default == "local"
        assert option.envvar == "ZOOM_INGEST_ENGINE"
    result = CliRunner().invoke(cli.main, ["run", "--engine", "hive", "--warehouse", "x"])
    assert result.exit_code == 2
    assert "invalid setting engine" in result.output


# -- the entry point --------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    package_level = logging.getLogger("zoom_ingest").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("zoom_ingest").setLevel(package_level)


def expected_ids(sim: Simulator, spec: TableSpec, start: datetime) -> set[str]:
    batch = Batch(spec)
    batch.add(sim.ground_truth(spec.name, start=start))
    assert not batch.rejects
    return set(batch.rows)


def test_the_entry_point_runs_the_whole_flow_against_the_simulator(
    spark: SparkSession,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    engines: list[RecordingSparkEngine] = []

    def recording_engine(session: SparkSession, catalog: str, schema: str, **options: Any):
        engines.append(RecordingSparkEngine(session, catalog, schema, **options))
        return engines[-1]

    monkeypatch.setattr(databricks_job, "SparkEngine", recording_engine)
    for env in ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"):
        monkeypatch.delenv(env, raising=False)
    start_day = datetime.now(UTC).date() - timedelta(days=3)
    start = datetime.combine(start_day, datetime.min.time(), tzinfo=UTC)
    with Simulator(seed=5, days=5, activity_per_day=80, operation_per_day=20) as sim:
        secrets = {
            ("zoom", "acme_account_id"): sim.account_id,
            ("zoom", "acme_client_id"): sim.client_id,
            ("zoom", "acme_client_secret"): sim.client_secret,
        }
        monkeypatch.setattr(
            databricks_job, "workspace_secret_reader", lambda: lambda s, k: secrets[s, k]
        )
        # The parameters as the bundle's wheel task passes them, unset ones empty.
        exit_code = databricks_job.main(
            [
                "--catalog=main",
                "--schema=zoom_acme",
                "--secret-scope=zoom",
                "--account=acme",
                f"--backfill-start={start_day.isoformat()}",
                "--category-type=",
                "--lookback=",
                "--streams=",
                "--requests-per-second=200",
                "--mode=incremental",
                f"--api-url={sim.api_url}",
                f"--oauth-url={sim.oauth_url}",
            ]
        )
        want = {spec.name: expected_ids(sim, spec, start) for spec in LOG_TABLES.values()}
        addresses = {
            r["ip_address"]
            for r in sim.ground_truth("activity_logs", start=start)
            if r.get("ip_address")
        }
        client_secret, account_id = sim.client_secret, sim.account_id

    assert exit_code == 0
    [engine] = engines
    assert (engine.catalog, engine.schema, engine.optimize) == ("main", "zoom_acme", False)
    verbs = [" ".join(s.split()[:2]) for s in engine.statements]
    first_write = verbs.index("MERGE INTO")
    assert verbs[:first_write] == [
        "CREATE SCHEMA",
        *["CREATE TABLE"] * len(ALL_TABLES),
        "SELECT table_name,",
        "SELECT `stream`,",
        "SELECT `run_id`,",  # the runs table: rows of runs killed before their end
    ]
    # The first write makes the run visible (its runs rows, `running`); the second takes the
    # account's lease, before any Zoom call; reading back who holds it is the only read.
    assert engine.statements[first_write].startswith(f"MERGE INTO {engine.table_name(RUNS)} ")
    lease_write = engine.statements[first_write + 1]
    assert lease_write.startswith(f"MERGE INTO {engine.table_name(LEASES)} ")
    reads = [s for s in engine.statements[first_write:] if not s.startswith(("MERGE", "INSERT"))]
    assert reads and all(s.startswith("SELECT `run_id`") for s in reads)
    for spec in LOG_TABLES.values():
        merged = [row["lw_id"] for row in engine.source_rows(spec)]
        assert want[spec.name] and set(merged) == want[spec.name], spec.name
        for statement, schema, _ in engine.sources:
            if statement.startswith(f"MERGE INTO {engine.table_name(spec)} "):
                assert schema == spark_schema(spec)
    # The enrichment: every address the run brought, with its country, merged on Spark too.
    looked_up = {row["ip_address"]: row["country"] for row in engine.source_rows(IP_COUNTRIES)}
    assert addresses and looked_up == geo.countries(addresses)
    cursors = {row["stream"]: row for row in engine.source_rows(CHECKPOINTS)}
    assert set(cursors) == set(LOG_TABLES)
    assert {row["account_id"] for row in cursors.values()} == {account_id}
    # The runs rows: merged at the start (running), then replaced at the end.
    runs = engine.source_rows(RUNS)
    assert [r["status"] for r in runs] == ["running"] * 2 + ["succeeded"] * 2
    assert sorted(r["stream"] for r in runs[2:]) == sorted(LOG_TABLES)
    assert {r["account_id"] for r in runs} == {account_id}
    # Values never reach the SQL text; the secret never reaches the output.
    assert not [s for s in engine.statements if account_id in s or "@" in s]
    out, err = capsys.readouterr()
    assert client_secret not in out + err


def test_the_entry_point_stops_on_a_bad_setting_before_any_spark_or_zoom_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_spark() -> SparkSession:
        raise AssertionError("no session may be needed for a bad setting")

    monkeypatch.setattr(databricks_job, "get_spark", no_spark)
    monkeypatch.setenv("ZOOM_ACCOUNT_ID", "acct")
    monkeypatch.setenv("ZOOM_CLIENT_ID", "client")
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", "s3cr3t-value")
    base = ["--catalog=main", "--schema=zoom"]
    cases = {
        (*base, "--lookback=soon"): "invalid setting lookback",
        (*base, "--mode=backfill"): "invalid setting mode",
        (*base, "--requests-per-second=fast"): "invalid setting requests_per_second",
        (*base, "--category-type=meetings"): "invalid setting category_type",
        (*base, "--optimize=sometimes"): "invalid setting optimize",
        ("--catalog=main", "--schema="): "invalid setting schema",
        ("--schema=zoom",): "invalid setting catalog",
    }
    for argv, message in cases.items():
        assert databricks_job.main(list(argv)) == 2
        out, err = capsys.readouterr()
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert "s3cr3t-value" not in out + err
    assert databricks_job.main(["--catalog=main", "--schema=zoom", "--no-such-flag=1"]) == 2
    # As the wheel task's entry point (arguments from the process), failure must exit:
    # the task ignores a returned status.
    monkeypatch.setattr(
        sys, "argv", ["zoom-ingest-job", "--catalog=main", "--schema=zoom", "--lookback=soon"]
    )
    with pytest.raises(SystemExit) as exited:
        databricks_job.main()
    assert exited.value.code == 2


def parsed(*flags: str) -> Any:
    return databricks_job.build_parser().parse_args(["--catalog=c", "--schema=s", *flags])


def test_empty_job_parameters_mean_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOOM_ACCOUNT_ID", "acct")
    monkeypatch.setenv("ZOOM_CLIENT_ID", "client")
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", "secret")
    empty = [
        f"--{name}="
        for name in [
            "secret-scope",
            "account",
            "backfill-start",
            "category-type",
            "lookback",
            "streams",
            "requests-per-second",
            "mode",
            "reconcile-days",
            "window-days",
            "api-url",
            "oauth-url",
        ]
    ]
    settings = databricks_job.settings_from_args(parsed(*empty))
    assert settings.account_id == "acct" and settings.client_secret.reveal() == "secret"
    assert settings.backfill_start is None
    assert settings.streams == ("activity_logs", "operation_logs")
    assert (settings.category_type, settings.mode) == ("all", "incremental")
    assert settings.lookback == timedelta(hours=1)
    assert settings.api_url == "https://api.zoom.us/v2"

    given = databricks_job.settings_from_args(
        parsed(
            "--backfill-start=2025-06-01",
            "--category-type=user_settings",
            "--lookback=90m",
            "--streams=operation_logs",
            "--requests-per-second=40",
            "--mode=reconcile",
            "--reconcile-days=5",
        )
    )
    assert given.backfill_start == date(2025, 6, 1)
    assert (given.category_type, given.mode, given.reconcile_days) == (
        "user_settings",
        "reconcile",
        5,
    )
    assert given.lookback == timedelta(minutes=90)
    assert given.streams == ("operation_logs",)
    assert given.requests_per_second == 40


def test_credentials_come_from_the_scope_with_the_account_prefix() -> None:
    store = {
        ("zoom", "account_id"): "plain-acct",
        ("zoom", "client_id"): "plain-client",
        ("zoom", "client_secret"): "plain-secret",
        ("zoom", "acme_account_id"): " acme-acct ",
        ("zoom", "acme_client_id"): "acme-client",
        ("zoom", "acme_client_secret"): "acme-secret",
    }

    def read(scope: str, key: str) -> str:
        if (scope, key) not in store:
            raise RuntimeError(f"Secret does not exist with scope: {scope} and key: {key}")
        return store[scope, key]

    account, client, secret = databricks_job.credentials("zoom", "acme", read)
    assert (account, client, secret.reveal()) == ("acme-acct", "acme-client", "acme-secret")
    assert "acme-secret" not in repr(secret)
    account, _, secret = databricks_job.credentials("zoom", "", read)
    assert (account, secret.reveal()) == ("plain-acct", "plain-secret")

    with pytest.raises(SettingsError) as caught:
        databricks_job.credentials("zoom", "globex", read)
    assert caught.value.setting == "secret_scope"
    assert "'globex_account_id'" in str(caught.value) and "'zoom'" in str(caught.value)

    store["zoom", "acme_client_secret"] = "  "
    with pytest.raises(SettingsError, match="'acme_client_secret' in scope 'zoom' is empty"):
        databricks_job.credentials("zoom", "acme", read)


def test_without_a_scope_credentials_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZOOM_ACCOUNT_ID", "env-acct")
    monkeypatch.setenv("ZOOM_CLIENT_ID", "env-client")
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", "env-secret")

    def no_reader() -> Any:
        raise AssertionError("no secret scope was given")

    monkeypatch.setattr(databricks_job, "workspace_secret_reader", no_reader)
    account, client, secret = databricks_job.credentials("", "ignored", None)
    assert (account, client, secret.reveal()) == ("env-acct", "env-client", "env-secret")


# -- with Delta (skipped without the jars) ------------------------------------------------------


@pytest.fixture
def delta_engine(delta_spark: SparkSession) -> Iterator[SparkEngine]:
    spark = delta_spark
    schema = f"zoom_{uuid.uuid4().hex[:12]}"
    engine = SparkEngine(spark, "spark_catalog", schema, conflict_backoff_seconds=0.05)
    engine.ensure_tables()
    yield engine
    spark.sql(f"DROP SCHEMA IF EXISTS `spark_catalog`.`{schema}` CASCADE")


def test_delta_log_tables_are_liquid_clustered_on_time(
    delta_engine: SparkEngine, spark: SparkSession
) -> None:
    for spec in ALL_TABLES.values():
        detail = spark.sql(f"DESCRIBE DETAIL {delta_engine.table_name(spec)}").first()
        assert detail is not None and detail["format"] == "delta"
        expected = [spec.cluster_by] if spec.cluster_by else []
        assert list(detail["clusteringColumns"]) == expected, spec.name
        # Names, types and nullability (the fields' metadata carries the comments).
        stored = spark.table(delta_engine.table_name(spec)).schema
        assert [(f.name, f.dataType, f.nullable) for f in stored.fields] == [
            (f.name, f.dataType, f.nullable) for f in spark_schema(spec).fields
        ], spec.name


def test_delta_merges_are_idempotent_under_concurrent_writers(
    delta_engine: SparkEngine, spark: SparkSession
) -> None:
    # 45 records, merged as 6 overlapping batches of 20 (minutes 5i … 5i+19).
    records = activity_records([START + timedelta(minutes=m) for m in range(45)])
    batches = [batch_of(ACTIVITY_LOGS, records[5 * i : 5 * i + 20]) for i in range(6)]
    inserted: list[int] = []
    errors: list[BaseException] = []

    def merge_all(order: list[pa.Table]) -> None:
        # Two writers on six overlapping batches conflict often, the more so on a busy
        # machine with short back-offs: allow enough re-runs that only a real error ends it.
        engine = SparkEngine(
            spark,
            delta_engine.catalog,
            delta_engine.schema,
            conflict_backoff_seconds=0.05,
            commit_attempts=40,
        )
        try:
            inserted.extend(engine.merge_new(ACTIVITY_LOGS, b) for b in order)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=merge_all, args=(order,)) for order in (batches, batches[::-1])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, [str(e)[:3000] for e in errors]
    ids = delta_engine.read_table(ACTIVITY_LOGS).column("lw_id").to_pylist()
    assert len(ids) == len(set(ids)) == 45
    assert sum(inserted) == 45
