"""The query files of `zoom_ingest/sql/`: their names, headers and Databricks SQL.

Kept apart from analytics.py, which runs the queries locally with DuckDB and sqlglot
(the `local` extra): the Databricks detections task reads the same files with nothing
but the standard library and pyarrow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

import pyarrow as pa

from .engines.rules import quote_identifier
from .tables import TIMESTAMP

KINDS = ("analytics", "detections", "views")
#: The columns every detection returns, in this order.
ALERT_SCHEMA = pa.schema(
    [
        pa.field("alert_id", pa.string()),  # sha2 of the detection name and what it saw
        pa.field("detection", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("time", TIMESTAMP),
        pa.field("actor", pa.string()),
        pa.field("target", pa.string()),
        pa.field("change", pa.string()),
    ]
)

_HEADER_LINE = re.compile(r"--\s?(?P<key>[a-z_]+):\s*(?P<value>.*)")
_CONTINUATION = re.compile(r"--\s{2,}(?P<value>\S.*)")


@dataclass(frozen=True)
class Query:
    """One query file: its name (the file name), its header and its Databricks SQL."""

    name: str
    kind: str
    sql: str
    header: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.header.get("title", self.name)

    @property
    def description(self) -> str:
        """What it answers (analytics) or what it detects (detections)."""
        return self.header.get("description") or self.header.get("answers", "")

    @property
    def severity(self) -> str | None:
        return self.header.get("severity")


def parse_header(sql: str) -> dict[str, str]:
    """The `-- key: value` lines at the top of a query file (continuations joined)."""
    header: dict[str, str] = {}
    key: str | None = None
    for line in sql.splitlines():
        text = line.rstrip()
        if not text.startswith("--"):
            break
        continuation = _CONTINUATION.fullmatch(text)
        if continuation and key is not None:
            header[key] = f"{header[key]} {continuation['value'].strip()}".strip()
            continue
        entry = _HEADER_LINE.fullmatch(text)
        if entry is None:
            key = None
            continue
        key = entry["key"]
        header[key] = entry["value"].strip()
    return header


def load_queries(kind: str) -> dict[str, Query]:
    """name → Query for every `.sql` file of one kind ("analytics" or "detections")."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    folder = resources.files(__package__ or "zoom_ingest").joinpath("sql", kind)
    queries: dict[str, Query] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        sql = entry.read_text(encoding="utf-8")
        name = entry.name.removesuffix(".sql")
        queries[name] = Query(name=name, kind=kind, sql=sql, header=parse_header(sql))
    return queries


def in_creation_order(views: Mapping[str, Query]) -> dict[str, Query]:
    """`views` ordered so that each comes after the views it reads (a view is checked
    against what it reads when it is created), otherwise by name."""
    ordered: dict[str, Query] = {}
    waiting = dict(views)
    while waiting:
        ready = [
            name
            for name, view in waiting.items()
            if not any(
                re.search(rf"\b{re.escape(other)}\b", view.sql)
                for other in waiting
                if other != name
            )
        ]
        if not ready:
            raise ValueError(f"views that read each other: {', '.join(sorted(waiting))}")
        for name in ready:
            ordered[name] = waiting.pop(name)
    return ordered


QUERIES: dict[str, Query] = load_queries("analytics")
DETECTIONS: dict[str, Query] = load_queries("detections")
#: Views the queries read, created before they run (in this order): locally in DuckDB by
#: LocalWarehouse, on Databricks by the detections task (`view_statements`).
#: `operation_changes` is the one parse of operation_detail; `changed_settings`, its rows
#: that change a setting's value, is what the "setting turned off" detections read.
VIEWS: dict[str, Query] = in_creation_order(load_queries("views"))


def view_statements(*, temporary: bool = False) -> list[str]:
    """Databricks SQL that creates (or replaces) every view of `VIEWS` in the current schema.

    `temporary`: session-scoped views (tests on a local SparkSession, ad-hoc notebooks).
    """
    kind = "TEMPORARY VIEW" if temporary else "VIEW"
    return [
        f"CREATE OR REPLACE {kind} {view.name} AS\n{view.sql.rstrip().rstrip(';')}\n"
        for view in VIEWS.values()
    ]


# `WITH params AS (SELECT 60 AS travel_minutes, 'CU,IR' AS watched_countries)`: the one
# CTE of a detection whose literals are its settings.
_PARAMS_CTE = re.compile(
    r"(?P<head>\bparams\s+AS\s*\(\s*SELECT\b)(?P<body>.*?)(?P<tail>\))", re.I | re.S
)
_PARAM = re.compile(
    r"(?P<value>'(?:[^']|'')*'|-?\d+(?:\.\d+)?)(?P<alias>\s+AS\s+(?P<name>\w+))", re.I
)


def with_params(sql: str, params: Mapping[str, object]) -> str:
    """The Databricks SQL query with the literals of its `params` CTE set to `params`.

    A detection's tunable values (countries, windows, thresholds) sit in one CTE named
    `params` (`WITH params AS (SELECT 60 AS travel_minutes)`); names it does not have are
    ignored, so one mapping (settings.DetectionSettings.sql_params) serves every query.
    Text in, text out, with the standard library only: the Databricks detections task
    runs it without the local extra.
    """
    match = _PARAMS_CTE.search(sql)
    if match is None or not params:
        return sql

    def literal(found: re.Match[str]) -> str:
        name = found["name"]
        if name not in params:
            return found[0]
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"parameter {name}: {value!r} is not a number or text")
        text = "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)
        return text + found["alias"]

    body = _PARAM.sub(literal, match["body"])
    return sql[: match.start("body")] + body + sql[match.end("body") :]


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
