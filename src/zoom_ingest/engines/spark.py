"""The Spark engine: Delta tables in Unity Catalog (or a folder), written from the driver.

On Databricks the job runs on the driver with the active SparkSession (serverless or
classic compute, Spark 3.5 on DBR 15.4/16.4 LTS, Spark 4.x on DBR 17.3 LTS and later).
Every table is `catalog.schema.<name>`:

- `ensure_tables()` runs `CREATE TABLE IF NOT EXISTS … USING DELTA CLUSTER BY (time)`
  for the log tables (liquid clustering on `time`) and the bookkeeping tables. That is
  the only DDL; batches never run any.
- `merge_new()` turns the Arrow batch into a DataFrame with the table's exact Spark
  schema, registers it as a uniquely named temporary view, and runs an insert-only
  `MERGE INTO … ON key AND time BETWEEN <batch min> AND <batch max> WHEN NOT MATCHED
  THEN INSERT`, so clustering prunes the target scan.

Without Databricks (`zoom-ingest run --engine spark --warehouse DIR`) the same engine
writes path-based Delta tables, `delta.`DIR/<table>``, the local engine's layout, with a
local SparkSession that has the Delta jars (`spark_session.local_session()`; fetched once,
then cached).

SQL text holds only quoted identifiers and timestamp literals formatted from datetimes
(`rules.quote_identifier`, `rules.timestamp_literal`); every value from Zoom or from the
user travels in a DataFrame or as a named parameter, never pasted into the statement.
`time` is declared `TIMESTAMP_LTZ` (an instant), so neither the session time zone nor
`spark.sql.timestampType=TIMESTAMP_NTZ` changes what is stored or matched: literals are
`TIMESTAMP_LTZ'…Z'` and reads go through `unix_micros`. The job's sessions run in UTC
(`spark_session.local_session()`, the Databricks entry point); the engine does not
depend on it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ..tables import ALL_TABLES, CHECKPOINTS, LEASES, PII_TAG, UTC, TableSpec, checkpoint_row
from . import rules
from .base import EngineBusy, LeaseHolder, TableSchemaMismatch
from .folder_lock import warehouse_lock
from .rules import quote_identifier, schema_differences, sql_string, timestamp_literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

# Arrow type of a table column → Spark SQL type. These are all the types tables.py uses.
_SQL_TYPES: dict[pa.DataType, str] = {
    pa.string(): "STRING",
    # An instant, explicitly: plain TIMESTAMP means TIMESTAMP_NTZ in a session with
    # spark.sql.timestampType=TIMESTAMP_NTZ.
    pa.timestamp("us", tz="UTC"): "TIMESTAMP_LTZ",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
}
# Delta's optimistic concurrency: another writer committed first. The error class names
# (Delta 3+/DBR) and the exception class names (older runtimes, Spark Connect messages).
_CONFLICT_MARKERS = (
    "DELTA_CONCURRENT_",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
)
_NOT_FOUND_MARKERS = (
    "TABLE_OR_VIEW_NOT_FOUND",
    "Table or view not found",
    "NoSuchTable",
    "DELTA_PATH_DOES_NOT_EXIST",
    "DELTA_MISSING_DELTA_TABLE",
    "PATH_NOT_FOUND",
)
_PERMISSION_MARKERS = ("PERMISSION_DENIED", "INSUFFICIENT_PERMISSIONS", "Permission denied")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: How long a CREATE that lost a race waits for the winner's table to become readable
#: (a first commit takes well under a second; a winner that died leaves the error).
CREATE_RACE_SECONDS = 30.0


class SparkEngine:
    """Delta tables in `catalog.schema`, or at `warehouse/<table>`, through a SparkSession."""

    name = "spark"
    #: A Spark MERGE costs seconds whatever its size (planning, a job on the cluster, a
    #: commit): at 40 requests/s a batch of 100,000 rows takes about 8 s to fetch, one
    #: of 25,000 two, and merges that outlast the fetch would hold it up.
    batch_rows = 100_000

    # Destinations held by a run in this process (see run_lock).
    _held: ClassVar[set[str]] = set()
    _held_guard = threading.Lock()

    def __init__(
        self,
        spark: SparkSession,
        catalog: str | None = None,
        schema: str | None = None,
        *,
        warehouse: str | Path | None = None,
        optimize: bool = True,
        commit_attempts: int = 6,
        conflict_backoff_seconds: float = 1.0,
    ) -> None:
        """`optimize`: whether `maintain()` runs OPTIMIZE (clusters new data incrementally;
        predictive optimization does the same on its own where it is enabled).
        `commit_attempts`: tries in all for a statement whose commit loses to a
        concurrent writer; every statement here is safe to re-run.
        `warehouse`: instead of catalog and schema, a folder holding path-based tables
        `warehouse/<table>` (the local engine's layout; a local run without Databricks)."""
        self.warehouse = Path(warehouse).expanduser().absolute() if warehouse else None
        if self.warehouse is not None:
            if catalog or schema:
                raise ValueError("give either a warehouse folder or catalog and schema")
            catalog, schema = "delta", str(self.warehouse)
        for setting, value in (("catalog", catalog), ("schema", schema)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{setting} must be a non-empty name")
        self.spark = spark
        self.catalog: str = catalog  # type: ignore[assignment]
        self.schema: str = schema  # type: ignore[assignment]
        self.optimize = optimize
        self.commit_attempts = commit_attempts
        self.conflict_backoff_seconds = conflict_backoff_seconds
        #: Delta's operation metrics of the last MERGE that `merge_new` ran (DESCRIBE
        #: HISTORY names, e.g. numTargetFilesSkipped), for logs, tests and benchmarks.
        self.last_merge_metrics: dict[str, str] = {}
        #: A folder's lock file excludes every other run; a catalog schema does not (the
        #: ingest and the reconcile job may both be running).
        self.exclusive_runs = self.warehouse is not None

    # -- names ---------------------------------------------------------------------------

    @property
    def schema_name(self) -> str:
        """`catalog`.`schema`, quoted."""
        return f"{quote_identifier(self.catalog)}.{quote_identifier(self.schema)}"

    def table_name(self, spec: TableSpec) -> str:
        """`catalog`.`schema`.`table`, quoted; or delta.`<warehouse>/<table>`."""
        if self.warehouse is not None:
            return f"delta.{quote_identifier(str(self.table_path(spec)))}"
        return f"{self.schema_name}.{quote_identifier(spec.name)}"

    def table_path(self, spec: TableSpec) -> Path:
        """The folder of a path-based table (only with `warehouse`)."""
        if self.warehouse is None:
            raise ValueError("tables in a catalog have no path here")
        return rules.table_folder(self.warehouse, spec)

    def describe(self) -> str:
        where = (
            f"Delta tables in {self.warehouse}"
            if self.warehouse is not None
            else f"{self.catalog}.{self.schema}"
        )
        return f"spark {where} (Spark {self.spark.version})"

    # -- setup ---------------------------------------------------------------------------

    def ensure_tables(self, specs: Iterable[TableSpec] | None = None) -> None:
        if self.warehouse is not None:
            self.warehouse.mkdir(parents=True, exist_ok=True)
        else:
            self._ensure_schema()
        location = str(self.warehouse or f"{self.catalog}.{self.schema}")
        for spec in list(specs) if specs is not None else ALL_TABLES.values():
            existing = self._table_schema(spec)
            if existing is None:
                if self._create_table(spec):
                    log.info("created table %s in %s", spec.name, location)
                continue
            differences = table_differences(spec, existing)
            missing = rules.columns_to_add(spec, existing.names)
            if missing:
                # A table written by an earlier version: add the columns added since
                # (nullable, at the end), then check again.
                columns = ", ".join(
                    f"{n} {_ADDED_TYPES[spec.schema.field(n).type]}" for n in missing
                )
                self._run(f"ALTER TABLE {self.table_name(spec)} ADD COLUMNS ({columns})")
                existing = self._table_schema(spec)
                differences = table_differences(spec, existing) if existing else differences
            if differences:
                raise TableSchemaMismatch(spec.name, location, differences)
            self._comment_columns(spec, existing)
        if self.warehouse is None:  # tags live in Unity Catalog, not on path-based tables
            self._tag_personal_data()

    def _create_table(self, spec: TableSpec) -> bool:
        """Create `spec`'s table; False when another writer created it at the same time.

        First runs can race on a fresh schema (the accounts of a for_each, a job and its
        detections task, claimants of a lease). The loser's CREATE fails: on the winner's
        table once it is committed, or, while the winner is still writing its first
        commit, on a location "not empty and also not a Delta table". Either way the
        table it wanted is coming: wait (bounded) until it can be read."""
        try:
            self._run(create_table_sql(spec, self.table_name(spec)))
            return True
        except Exception:
            deadline = time.monotonic() + CREATE_RACE_SECONDS
            while time.monotonic() < deadline:
                with suppress(Exception):  # half-made: not readable yet
                    if self._table_schema(spec) is not None:
                        return False
                time.sleep(0.2)
            raise

    def _comment_columns(self, spec: TableSpec, existing: StructType) -> None:
        """Column comments on a table created without them (by an older zoom_ingest).

        Only a comment that differs is set, so a run on described tables changes nothing."""
        for field in existing.fields:
            wanted = spec.column_comment(field.name)
            if wanted and (field.metadata or {}).get("comment") != wanted:
                self._run(comment_column_sql(self.table_name(spec), field.name, wanted))

    def _tag_personal_data(self) -> None:
        """Tag the personal-data columns (`TableSpec.pii`) in Unity Catalog.

        Idempotent: the tags already there are read from information_schema and only
        the missing ones are set. Tolerant: where tags cannot be read or set (no Unity
        Catalog, or a principal without APPLY TAG) the run goes on with a warning; the
        data is the same either way, only the policies that match on the tag miss it."""
        wanted = {
            (spec.name, column): value
            for spec in ALL_TABLES.values()
            for column, value in spec.pii.items()
        }
        try:
            rows = self._execute(
                "SELECT table_name, column_name, tag_value "
                f"FROM {quote_identifier(self.catalog)}.information_schema.column_tags "
                "WHERE schema_name = :schema AND tag_name = :tag",
                {"schema": self.schema, "tag": PII_TAG},
            ).collect()
        except Exception as exc:
            log.info(
                "column tags unavailable here (%s): personal data not tagged", _first_line(exc)
            )
            return
        present = {(row["table_name"], row["column_name"]): row["tag_value"] for row in rows}
        for (table, column), value in wanted.items():
            if present.get((table, column)) == value:
                continue
            statement = set_column_tag_sql(
                f"{self.schema_name}.{quote_identifier(table)}", column, PII_TAG, value
            )
            try:
                self._run(statement)
            except Exception as exc:
                log.warning(
                    "cannot tag %s.%s.%s.%s as %s=%s (%s); grant APPLY TAG to the job's "
                    "principal, or tag it by hand",
                    self.catalog,
                    self.schema,
                    table,
                    column,
                    PII_TAG,
                    value,
                    _first_line(exc),
                )
                if _mentions(exc, _PERMISSION_MARKERS):
                    return  # the other columns would be refused the same way

    def _ensure_schema(self) -> None:
        try:
            self._run(f"CREATE SCHEMA IF NOT EXISTS {self.schema_name}")
        except Exception as exc:
            # A principal may own tables in a schema someone else created without the
            # right to create schemas; the CREATE TABLE that follows says if it is missing.
            if not _mentions(exc, _PERMISSION_MARKERS):
                raise
            log.warning(
                "cannot create schema %s.%s (%s); using it as it is",
                self.catalog,
                self.schema,
                _first_line(exc),
            )

    def _table_schema(self, spec: TableSpec) -> StructType | None:
        """The Spark schema of an existing table, or None when it does not exist."""
        if self.warehouse is not None and not (self.table_path(spec) / "_delta_log").is_dir():
            return None
        try:
            return self.spark.table(self.table_name(spec)).schema
        except Exception as exc:
            if _mentions(exc, _NOT_FOUND_MARKERS):
                return None
            raise

    # -- writes --------------------------------------------------------------------------

    def merge_new(self, spec: TableSpec, batch: pa.Table) -> int:
        _check_batch(spec, batch)
        if batch.num_rows == 0:
            return 0
        with self._temp_view(spec, batch) as view:
            result = self._run(merge_sql(spec, self.table_name(spec), view, batch))
            inserted = self._inserted_rows(spec, result)
        log.debug("merge into %s: %d inserted, %s", spec.name, inserted, self.last_merge_metrics)
        return inserted

    def append(self, spec: TableSpec, batch: pa.Table) -> None:
        _check_batch(spec, batch)
        if batch.num_rows == 0:
            return
        with self._temp_view(spec, batch) as view:
            self._run(insert_sql(spec, self.table_name(spec), view))

    def upsert(self, spec: TableSpec, batch: pa.Table) -> None:
        _check_batch(spec, batch)
        if batch.num_rows == 0:
            return
        with self._temp_view(spec, batch) as view:
            self._run(upsert_sql(spec, self.table_name(spec), view))

    def save_checkpoint(self, account_id: str, stream: str, cursor: datetime, run_id: str) -> None:
        row = checkpoint_row(account_id, stream, cursor, run_id)
        with self._temp_view(CHECKPOINTS, row) as view:
            self._run(
                upsert_sql(
                    CHECKPOINTS,
                    self.table_name(CHECKPOINTS),
                    view,
                    only_if_later=rules.CHECKPOINT_CURSOR,
                )
            )

    def write_lease(self, lease: pa.Table) -> list[LeaseHolder]:
        """The lease MERGE (`rules.lease_claim_condition`). Delta checks every MERGE's
        commit against those committed since it read the table: a concurrent lease
        write conflicts (DELTA_CONCURRENT_APPEND when both inserted the row,
        DELTA_CONCURRENT_DELETE_READ when both rewrote it), and `_run` re-runs the
        loser, which then finds the lease taken and changes nothing."""
        _check_batch(LEASES, lease)
        if self._table_schema(LEASES) is None:  # a lease location may hold nothing else
            if self.warehouse is None:
                self._ensure_schema()
            self._create_table(LEASES)
        with self._temp_view(LEASES, lease) as view:
            self._run(
                upsert_sql(
                    LEASES,
                    self.table_name(LEASES),
                    view,
                    matched_if=rules.lease_claim_condition(SPARK_SQL),
                )
            ).collect()
        rows = self._run(
            f"SELECT {quote_identifier('run_id')}, "
            f"unix_micros({quote_identifier('expires_at')}) AS expires_micros "
            f"FROM {self.table_name(LEASES)} "
            f"WHERE {quote_identifier('account_id')} = :account_id",
            {"account_id": lease.column("account_id")[0].as_py()},
        ).collect()
        return [LeaseHolder(row["run_id"], _from_micros(row["expires_micros"])) for row in rows]

    # -- reads ---------------------------------------------------------------------------

    def read_checkpoints(self, account_id: str) -> dict[str, datetime]:
        statement = (
            f"SELECT {quote_identifier('stream')}, "
            f"unix_micros({quote_identifier('cursor')}) AS cursor_micros "
            f"FROM {self.table_name(CHECKPOINTS)} "
            f"WHERE {quote_identifier('account_id')} = :account_id"
        )
        rows = self._run(statement, {"account_id": account_id}).collect()
        return {row["stream"]: _from_micros(row["cursor_micros"]) for row in rows}

    def read_table(self, spec: TableSpec) -> pa.Table:
        return select_as_arrow(self._run, self.table_name(spec), spec.schema)

    # -- run lock, maintenance -------------------------------------------------------------

    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Refuses a second run on the same catalog.schema from this process.

        Across processes nothing is locked here: on Databricks the job's
        `max_concurrent_runs: 1` keeps one run per job, and Delta's optimistic
        concurrency keeps any other writer (another job, a notebook) safe, because every
        write here is an idempotent MERGE or an append that is re-run on conflict.
        """
        if self.warehouse is not None:
            # A folder: the local engine's lock file, so that a local run and a Spark run
            # (or two processes) never write the same warehouse at once.
            with warehouse_lock(self.warehouse):
                yield
            return
        key = f"{self.catalog}.{self.schema}"
        with self._held_guard:
            if key in self._held:
                raise EngineBusy(f"another run in this process is writing to {key}")
            self._held.add(key)
        try:
            yield
        finally:
            with self._held_guard:
                self._held.discard(key)

    def maintain(self) -> None:
        """OPTIMIZE the liquid-clustered tables: clusters the files written since the last
        OPTIMIZE (incremental; history is kept, nothing is vacuumed)."""
        if not self.optimize:
            return
        for spec in ALL_TABLES.values():
            if spec.cluster_by is not None:
                self._run(f"OPTIMIZE {self.table_name(spec)}")

    # -- plumbing ------------------------------------------------------------------------

    def _run(self, statement: str, args: Mapping[str, Any] | None = None) -> DataFrame:
        """Execute one statement, re-running it when its commit loses to another writer."""
        retrying = Retrying(
            retry=retry_if_exception(is_commit_conflict),
            stop=stop_after_attempt(self.commit_attempts),
            wait=wait_random_exponential(multiplier=self.conflict_backoff_seconds, max=30),
            before_sleep=lambda state: log.info(
                "a concurrent writer committed first; re-running %s (attempt %d)",
                statement.split(" (", 1)[0][:120],  # identifiers only, never values
                state.attempt_number + 1,
            ),
            reraise=True,
        )
        return retrying(self._execute, statement, args)

    def _execute(self, statement: str, args: Mapping[str, Any] | None = None) -> DataFrame:
        """The one place SQL reaches Spark."""
        if args:
            return self.spark.sql(statement, args=dict(args))
        return self.spark.sql(statement)

    @contextmanager
    def _temp_view(self, spec: TableSpec, batch: pa.Table) -> Iterator[str]:
        """The batch as a temporary view with a name no other batch uses; dropped after."""
        name = f"zoom_ingest_batch_{uuid.uuid4().hex}"
        dataframe(self.spark, spec, batch).createOrReplaceTempView(name)
        try:
            yield quote_identifier(name)
        finally:
            self.spark.catalog.dropTempView(name)

    def _inserted_rows(self, spec: TableSpec, result: DataFrame) -> int:
        rows = result.collect()
        self.last_merge_metrics = {}
        if rows and "num_inserted_rows" in rows[0].asDict():
            return int(rows[0]["num_inserted_rows"])
        # Runtimes whose MERGE returns no metrics: the table's last commit has them.
        history = self._execute(f"DESCRIBE HISTORY {self.table_name(spec)} LIMIT 1").collect()
        metrics = history[0]["operationMetrics"] if history else {}
        self.last_merge_metrics = dict(metrics or {})
        return int(self.last_merge_metrics.get("numTargetRowsInserted", 0))

    def last_commit_metrics(self, spec: TableSpec) -> dict[str, str]:
        """The operation and metrics of a table's latest commit (DESCRIBE HISTORY)."""
        history = self._execute(f"DESCRIBE HISTORY {self.table_name(spec)} LIMIT 1").collect()
        if not history:
            return {}
        return {"operation": history[0]["operation"], **(history[0]["operationMetrics"] or {})}


# -- SQL text --------------------------------------------------------------------------------

#: How Spark SQL spells the shared rules.
SPARK_SQL = rules.Dialect(
    quote=quote_identifier, timestamp=timestamp_literal, target="tgt", source="src"
)


def column_definitions(spec: TableSpec) -> str:
    """`name TYPE [NOT NULL] [COMMENT '…'], …` in table order."""
    definitions = []
    for f in spec.schema:
        definition = f"{quote_identifier(f.name)} {spark_sql_type(f.type)}"
        if not f.nullable:
            definition += " NOT NULL"
        if spec.column_comment(f.name):
            definition += f" COMMENT {sql_string(spec.column_comment(f.name))}"
        definitions.append(definition)
    return ", ".join(definitions)


def comment_column_sql(table: str, column: str, comment: str) -> str:
    return (
        f"ALTER TABLE {table} ALTER COLUMN {quote_identifier(column)} COMMENT {sql_string(comment)}"
    )


def set_column_tag_sql(table: str, column: str, key: str, value: str) -> str:
    """Unity Catalog's column tag statement (Databricks SQL; setting it again is a no-op)."""
    return (
        f"ALTER TABLE {table} ALTER COLUMN {quote_identifier(column)} "
        f"SET TAGS ({sql_string(key)} = {sql_string(value)})"
    )


def create_table_sql(spec: TableSpec, table: str) -> str:
    clauses = [f"CREATE TABLE IF NOT EXISTS {table} ({column_definitions(spec)})", "USING DELTA"]
    if spec.cluster_by is not None:
        clauses.append(f"CLUSTER BY ({quote_identifier(spec.cluster_by)})")
    if spec.comment:
        clauses.append(f"COMMENT {sql_string(spec.comment)}")
    return " ".join(clauses)


def merge_condition(spec: TableSpec, batch: pa.Table) -> str:
    """The key, and the batch's range of `spec.cluster_by` (inclusive) if there is one
    (`rules.merge_condition` in Spark SQL)."""
    return rules.merge_condition(spec, batch, SPARK_SQL)


def merge_sql(spec: TableSpec, table: str, view: str, batch: pa.Table) -> str:
    """Insert-only MERGE of the rows of `view` whose key is not in `table` yet."""
    columns = [quote_identifier(c) for c in spec.columns]
    return (
        f"MERGE INTO {table} AS tgt USING {view} AS src "
        f"ON {merge_condition(spec, batch)} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'src.{c}' for c in columns)})"
    )


def upsert_sql(
    spec: TableSpec,
    table: str,
    view: str,
    *,
    only_if_later: str | None = None,
    matched_if: str | None = None,
) -> str:
    """MERGE that updates the row with the same key, or inserts it (checkpoints, runs, leases).

    `only_if_later`: a column the update may only move forward (the cursor), so that of
    two overlapping runs the one that writes last never takes back the other's claim.
    `matched_if`: any other condition the update needs (the lease's).
    """
    columns = [quote_identifier(c) for c in spec.columns]
    others = [quote_identifier(c) for c in spec.columns if c not in spec.key]
    condition = rules.key_condition(spec, SPARK_SQL)
    matched = "WHEN MATCHED"
    if only_if_later is not None:
        matched += f" AND {rules.moves_forward(only_if_later, SPARK_SQL)}"
    if matched_if is not None:
        matched += f" AND {matched_if}"
    return (
        f"MERGE INTO {table} AS tgt USING {view} AS src ON {condition} "
        f"{matched} THEN UPDATE SET {', '.join(f'{c} = src.{c}' for c in others)} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'src.{c}' for c in columns)})"
    )


def insert_sql(spec: TableSpec, table: str, view: str) -> str:
    columns = ", ".join(quote_identifier(c) for c in spec.columns)
    return f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}"


# -- types and DataFrames ---------------------------------------------------------------------


def spark_sql_type(arrow_type: pa.DataType) -> str:
    try:
        return _SQL_TYPES[arrow_type]
    except KeyError:
        raise ValueError(f"no Spark SQL type for Arrow type {arrow_type}") from None


def spark_schema(spec: TableSpec, *, comments: bool = False) -> StructType:
    """The table's exact Spark schema (types and nullability) from its Arrow schema;
    with `comments`, each field carries its column comment as a table read gives it."""
    from pyspark.sql.types import (
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    types = {
        "STRING": StringType,
        "TIMESTAMP_LTZ": TimestampType,
        "BIGINT": LongType,
        "DOUBLE": DoubleType,
    }
    return StructType(
        [
            StructField(
                f.name,
                types[spark_sql_type(f.type)](),
                nullable=f.nullable,
                metadata={"comment": spec.column_comment(f.name)} if comments else None,
            )
            for f in spec.schema
        ]
    )


#: Spark SQL types of the columns in `tables.ADDED_COLUMNS`.
_ADDED_TYPES = {pa.float64(): "DOUBLE", pa.int64(): "BIGINT", pa.string(): "STRING"}


def table_differences(spec: TableSpec, existing: StructType) -> list[str]:
    """How an existing table's Spark schema differs from the spec (empty when it fits)."""
    from pyspark.sql.pandas.types import to_arrow_type

    fields, foreign = [], {}
    for field in existing.fields:
        try:
            arrow_type = to_arrow_type(field.dataType)
        except Exception:  # a type with no Arrow twin (e.g. VARIANT) can't be ours
            arrow_type = pa.null()
            foreign[field.name] = field.dataType.simpleString()
        fields.append(pa.field(field.name, arrow_type, nullable=field.nullable))
    differences = schema_differences(spec.schema, pa.schema(fields))
    # Name the foreign type rather than the null stand-in.
    for name, spark_type in foreign.items():
        prefixes = (f"{name}: expected ", f"unexpected column {name} ")
        differences = [
            d.removesuffix("null") + spark_type
            if d.startswith(prefixes) and d.endswith(" null")
            else d
            for d in differences
        ]
    return differences


def dataframe(spark: SparkSession, spec: TableSpec, batch: pa.Table) -> DataFrame:
    """The Arrow batch as a DataFrame with exactly the table's Spark schema."""
    schema = spark_schema(spec)
    if _takes_arrow_tables(spark):
        return spark.createDataFrame(batch, schema=schema)
    # Spark 3.5 classic takes no Arrow table. Python rows keep nulls, integers and aware
    # datetimes exact, where a pandas round trip turns a null into NaN or a float.
    return spark.createDataFrame(batch.to_pylist(), schema=schema)


def _takes_arrow_tables(spark: SparkSession) -> bool:
    """Spark 4 (classic or Connect) and Spark Connect 3.5 accept a pyarrow.Table."""
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        return True
    return int(spark.version.split(".")[0]) >= 4


def _check_batch(spec: TableSpec, batch: pa.Table) -> None:
    differences = schema_differences(spec.schema, batch.schema)
    if differences:
        raise ValueError(f"batch for {spec.name} is not in its schema: {'; '.join(differences)}")


# -- errors, values ---------------------------------------------------------------------------


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether `exc` is Delta telling that a concurrent writer committed first."""
    return _mentions(exc, _CONFLICT_MARKERS)


def _mentions(exc: BaseException, markers: Sequence[str]) -> bool:
    condition = ""
    # PySpark errors carry their error class: getCondition (Spark 4; getErrorClass is
    # deprecated there) or getErrorClass (Spark 3.4/3.5).
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    if callable(getter):
        with suppress(Exception):  # a getter that cannot answer tells nothing
            condition = str(getter() or "")
    text = f"{type(exc).__name__} {condition} {exc}"
    return any(marker in text for marker in markers)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def select_as_arrow(run: Callable[[str], DataFrame], source: str, schema: pa.Schema) -> pa.Table:
    """The columns of `schema` selected from `source` (a table, or a parenthesised query)
    as an Arrow table in `schema`.

    Timestamps travel as microseconds since the epoch: collect() would turn them into
    naive datetimes in the Python process's local zone."""
    columns = ", ".join(
        f"unix_micros({quote_identifier(f.name)}) AS {quote_identifier(f.name)}"
        if pa.types.is_timestamp(f.type)
        else quote_identifier(f.name)
        for f in schema
    )
    rows = run(f"SELECT {columns} FROM {source}").collect()
    arrays = []
    for index, field in enumerate(schema):
        values = [row[index] for row in rows]
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(micros))
