"""The analytics and detection queries, and how to run them locally.

The queries are Databricks SQL, one file each, under `zoom_ingest/sql/analytics/` and
`zoom_ingest/sql/detections/`. Each file starts with a header of comment lines
(`-- key: value`, continued on lines indented by more than one space) saying what it
answers; detections also carry a `severity`. The same text runs on Databricks (dashboard,
detections task) and, here, in DuckDB over the local Delta tables: sqlglot translates the
dialect, so there is one copy of every query.

Locally every table folder of the warehouse (`<warehouse>/<table>`) is registered under
its table name; a bookkeeping or derived table that does not exist reads as empty. With a
`source` folder the log tables come from there instead (tables another tool wrote, with
the documented columns), everything else from the warehouse. Queries see
timestamps in UTC, as a Databricks session with the UTC time zone does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa
import sqlglot
from deltalake import DeltaTable
from sqlglot import exp
from sqlglot.errors import ParseError

from .engines.local import read_delta
from .queries import (  # noqa: F401  (re-exported: the names analytics users know)
    ALERT_SCHEMA,
    DETECTIONS,
    KINDS,
    QUERIES,
    VIEWS,
    Query,
    load_queries,
    parse_header,
    view_statements,
    with_params,
)
from .tables import ALL_TABLES, LOG_TABLES, UTC
from .tables import SEVERITIES as SEVERITIES  # re-exported, as above

SOURCE_DIALECT = "databricks"
# DuckDB's HUGEINT (COUNT_IF, SUM of BIGINT) as Arrow gives it.
_HUGEINT = pa.decimal128(38, 0)


class QueryError(ValueError):
    """A query that cannot be parsed, translated or run; the message says why."""


def to_duckdb(
    sql: str,
    *,
    now: datetime | None = None,
    tables: frozenset[str] = frozenset(),
    params: Mapping[str, object] | None = None,
) -> str:
    """One Databricks SQL query → DuckDB SQL.

    `now` (aware) replaces current_timestamp()/now()/current_date(), so that queries about
    "the last 24 hours" have known answers in tests. Names in `tables` lose any
    catalog/schema qualifier (`main.zoom.activity_logs` → `activity_logs`), so a query
    copied from Databricks runs unchanged.
    """
    if params:
        sql = with_params(sql, params)
    try:
        statements = [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]
    except ParseError as exc:
        raise QueryError(f"cannot parse the query as Databricks SQL: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise QueryError(f"expected one query, found {len(statements)} statements")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryError(f"only queries (SELECT …) can run here, not {tree.key.upper()} statements")
    if now is not None:
        tree = _pin_now(tree, now)
    if tables:
        tree = _unqualify(tree, tables)
    try:
        return tree.sql(dialect="duckdb")
    except sqlglot.errors.SqlglotError as exc:  # an unsupported construct
        raise QueryError(f"cannot translate the query to DuckDB: {_first_line(exc)}") from None


def pin_now(sql: str, now: datetime) -> str:
    """The Databricks SQL query with current_timestamp()/current_date() fixed at `now`.

    Runs on Databricks as the query would have run at `now`: replaying a detection for a
    past moment, or comparing engines on the same data.
    """
    return _pin_now(sqlglot.parse_one(sql, read=SOURCE_DIALECT), now).sql(dialect=SOURCE_DIALECT)


def _pin_now(tree: exp.Expression, now: datetime) -> exp.Expression:
    if now.tzinfo is None:
        raise ValueError(f"now must be an aware datetime, got {now!r}")
    instant = now.astimezone(UTC)

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.CurrentTimestamp):
            return exp.cast(exp.Literal.string(instant.isoformat()), exp.DataType.Type.TIMESTAMPTZ)
        if isinstance(node, exp.CurrentDate):
            return exp.cast(exp.Literal.string(instant.date().isoformat()), exp.DataType.Type.DATE)
        return node

    return tree.transform(replace)


def _unqualify(tree: exp.Expression, tables: frozenset[str]) -> exp.Expression:
    for table in tree.find_all(exp.Table):
        if table.name in tables and (table.args.get("db") or table.args.get("catalog")):
            table.set("db", None)
            table.set("catalog", None)
    return tree


class LocalWarehouse:
    """A DuckDB session over the Delta tables of one local warehouse folder.

    Open it once to run several queries (the report does); `run_query` and `run_named`
    open one per call. `now` pins the current time for every query of the session.
    """

    def __init__(
        self,
        warehouse: str | Path,
        *,
        now: datetime | None = None,
        params: Mapping[str, object] | None = None,
        source: str | Path | None = None,
    ) -> None:
        self.path = Path(warehouse).expanduser()
        #: Where the log tables are (default: the warehouse).
        self.source = Path(source).expanduser() if source else self.path
        if not self.source.is_dir():
            raise QueryError(
                f"no warehouse at {self.source}: run `zoom-ingest run` or `zoom-ingest demo` first"
            )
        self.now = now
        #: values of the detections' params CTEs (DetectionSettings.sql_params()); None:
        #: the DetectionSettings from the environment (ZOOM_INGEST_WATCHED_COUNTRIES, …)
        self.params = dict(params) if params is not None else _env_params()
        self._connection = duckdb.connect(":memory:")
        # Databricks jobs and warehouses run in UTC; days and hours mean UTC days here too.
        self._connection.execute("SET TimeZone = 'UTC'")
        self.tables = frozenset(self._register_tables())
        self._create_views()
        self.tables = self.tables | frozenset(VIEWS)

    def _register_tables(self) -> Iterator[str]:
        found: set[str] = set()
        folders = [self.source / name for name in LOG_TABLES]
        if self.path.is_dir():
            folders += [
                p for p in sorted(self.path.iterdir()) if p.is_dir() and p.name not in LOG_TABLES
            ]
        for folder in folders:
            if DeltaTable.is_deltatable(str(folder)):
                self._register_delta(folder.name, DeltaTable(str(folder)))
                found.add(folder.name)
                yield folder.name
        for spec in ALL_TABLES.values():
            if spec.name not in found:  # not created yet: reads as empty
                self._connection.register(spec.name, spec.schema.empty_table())
                yield spec.name

    def _create_views(self) -> None:
        """The views of `VIEWS`, translated like any query (they read the tables above)."""
        for view in VIEWS.values():
            translated = to_duckdb(view.sql, tables=self.tables)
            try:
                self._connection.execute(f"CREATE OR REPLACE VIEW {view.name} AS {translated}")
            except duckdb.Error as exc:
                raise QueryError(f"the view {view.name} failed: {_first_line(exc)}") from None

    def _register_delta(self, name: str, table: DeltaTable) -> None:
        """A view over the table's current files, scanned by DuckDB's own Parquet reader.

        The files of the current version are the whole table as long as no reader feature
        (deletion vectors, column mapping) changes what they mean; delta-rs writes none.
        Otherwise delta-rs reads the table and DuckDB gets it in memory.
        """
        files = table.file_uris()
        features = table.protocol().reader_features or []
        schema = pa.schema(table.schema().to_arrow())
        if features or not files:
            data = read_delta(table) if files else schema.empty_table()
            self._connection.register(name, data)
            return
        self._connection.read_parquet(files).create_view(name)

    def query(self, sql: str) -> pa.Table:
        """Run one Databricks SQL query; the result as an Arrow table."""
        translated = to_duckdb(sql, now=self.now, tables=self.tables, params=self.params)
        try:
            result = self._connection.sql(translated).arrow()
            if isinstance(result, pa.RecordBatchReader):  # DuckDB 1.4 and later
                result = result.read_all()
        except duckdb.Error as exc:
            raise QueryError(f"the query failed: {_first_line(exc)}") from None
        return _as_spark_types(result)

    def named(self, name: str) -> pa.Table:
        """Run an analytics query or a detection by name."""
        query = QUERIES.get(name) or DETECTIONS.get(name) or VIEWS.get(name)
        if query is None:
            known = ", ".join(sorted({*QUERIES, *DETECTIONS, *VIEWS}))
            raise QueryError(f"no query named {name!r}; known: {known}")
        return self.query(query.sql)

    def detections(self, names: list[str] | None = None) -> pa.Table:
        """The alerts of every detection (or of `names`), in ALERT_SCHEMA, newest first."""
        selected = names if names is not None else sorted(DETECTIONS)
        tables = [
            self.named(name).select(ALERT_SCHEMA.names).cast(ALERT_SCHEMA) for name in selected
        ]
        alerts = pa.concat_tables(tables) if tables else ALERT_SCHEMA.empty_table()
        return alerts.sort_by([("time", "descending"), ("alert_id", "ascending")])

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> LocalWarehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _env_params() -> dict[str, object]:
    from .options import detection_settings_from_env

    return detection_settings_from_env().sql_params()


def run_query(
    warehouse: str | Path, sql: str, *, now: datetime | None = None, source: Path | None = None
) -> pa.Table:
    """Run one Databricks SQL query over a local warehouse folder (for `zoom-ingest query`)."""
    with LocalWarehouse(warehouse, now=now, source=source) as session:
        return session.query(sql)


def run_named(
    warehouse: str | Path, name: str, *, now: datetime | None = None, source: Path | None = None
) -> pa.Table:
    """Run the analytics query or detection called `name` over a local warehouse folder."""
    with LocalWarehouse(warehouse, now=now, source=source) as session:
        return session.named(name)


def run_detections(
    warehouse: str | Path,
    *,
    now: datetime | None = None,
    params: Mapping[str, object] | None = None,
    source: Path | None = None,
) -> pa.Table:
    """Every detection's alerts over a local warehouse folder, in ALERT_SCHEMA."""
    with LocalWarehouse(warehouse, now=now, params=params, source=source) as session:
        return session.detections()


def _as_spark_types(table: pa.Table) -> pa.Table:
    """Integer results as Spark types them: DuckDB's COUNT_IF and SUM return HUGEINT
    (Arrow decimal128(38, 0)) where Spark returns BIGINT."""
    for index, column in enumerate(table.schema):
        if column.type == _HUGEINT:
            table = table.set_column(index, column.name, table.column(index).cast(pa.int64()))
    return table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
