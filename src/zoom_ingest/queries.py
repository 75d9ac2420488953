"""The query files of `zoom_ingest/sql/`: their names, headers and Databricks SQL.

Kept apart from analytics.py, which runs the queries locally with DuckDB and sqlglot
(the `local` extra): the Databricks detections task reads the same files with nothing
but the standard library and pyarrow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

import pyarrow as pa

from .tables import TIMESTAMP

KINDS = ("analytics", "detections")
SEVERITIES = ("high", "medium", "low")
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


QUERIES: dict[str, Query] = load_queries("analytics")
DETECTIONS: dict[str, Query] = load_queries("detections")
