"""The AI/BI (Lakeview) dashboard of the bundle, built from the query files.

`zoom_audit.lvdash.json` beside this module is what `resources/zoom_ingest.dashboard.yml`
deploys. Its datasets are the text of `sql/analytics/*.sql`, so the dashboard never
drifts from the queries the tests check, and, for the latest detections, a read of the
`zoom_detections` table the detections task fills (a dashboard refresh does not run
every detection again). After changing a query or a widget here, regenerate the file:

    python -m zoom_ingest.dashboards

(tests/test_analytics.py fails while the file and this module disagree). The queries
name their tables without catalog or schema; the dashboard resource sets
`dataset_catalog` and `dataset_schema`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlglot

from ..analytics import QUERIES, SOURCE_DIALECT
from ..tables import DETECTIONS as DETECTIONS_TABLE

DASHBOARD_PATH = Path(__file__).with_name("zoom_audit.lvdash.json")
DETECTIONS_DATASET = "latest_detections"
#: The latest detections: the alerts the hourly job's detections task stored, not the
#: detections computed again on every refresh (14 queries over 30 days of logs).
DETECTIONS_SQL = (
    "-- title: Latest detections\n"
    "-- answers: The alerts the detections task stored in zoom_detections, for activity\n"
    "--   in the last 30 days, newest first, with the run that first detected each.\n"
    f"SELECT {', '.join(DETECTIONS_TABLE.schema.names)}\n"
    f"FROM {DETECTIONS_TABLE.name}\n"
    "WHERE time >= current_timestamp() - INTERVAL 30 DAYS\n"
    "ORDER BY time DESC, alert_id\n"
)
#: The grid of an AI/BI dashboard page is 6 columns wide.
GRID_WIDTH = 6

Json = dict[str, Any]


def build_dashboard() -> Json:
    """The dashboard as the `.lvdash.json` document."""
    return {"datasets": _datasets(), "pages": [_overview_page(), _hunting_page()]}


def render_dashboard() -> str:
    """The `.lvdash.json` text, as written to DASHBOARD_PATH."""
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def write_dashboard(path: Path = DASHBOARD_PATH) -> Path:
    path.write_text(render_dashboard(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- datasets

_DATASETS = (
    "data_freshness",
    "daily_sign_ins",
    "daily_active_users",
    "daily_record_counts",
    "client_versions",
    "operations_by_category",
    "role_changes",
    "setting_changes",
    "new_ip_sign_ins",
    "users_many_ips",
    "users_added_removed",
    "recording_deletions",
)


def _datasets() -> list[Json]:
    datasets = [
        {
            "name": name,
            "displayName": QUERIES[name].title,
            "queryLines": _lines(QUERIES[name].sql),
        }
        for name in _DATASETS
    ]
    datasets.append(
        {
            "name": DETECTIONS_DATASET,
            "displayName": "Latest detections",
            "queryLines": _lines(DETECTIONS_SQL),
        }
    )
    return datasets


def _lines(sql: str) -> list[str]:
    return sql.rstrip("\n").splitlines(keepends=True)


# --------------------------------------------------------------------------- pages


def _overview_page() -> Json:
    layout = [
        _text(
            "overview_title",
            "# Zoom audit\nSign-ins, admin changes and detections from the Zoom activity and "
            "operation logs. Times and days are UTC.",
            0,
            0,
            GRID_WIDTH,
            2,
        ),
        _table("freshness", "data_freshness", "Data freshness", 0, 2, GRID_WIDTH, 3),
        _counter("alert_count", DETECTIONS_DATASET, "Alerts (30 days)", 0, 5, 1, 3),
        _table(
            "detections",
            DETECTIONS_DATASET,
            "Latest detections",
            1,
            5,
            GRID_WIDTH - 1,
            7,
            columns=[
                "time",
                "severity",
                "detection",
                "actor",
                "target",
                "change",
                "detected_at",
                "alert_id",
            ],
        ),
        _chart(
            "sign_ins",
            "line",
            "daily_sign_ins",
            "Sign-ins and sign-outs per day",
            x=("day", "Day", "temporal"),
            ys=[("sign_ins", "Sign-ins"), ("sign_outs", "Sign-outs")],
            position=(0, 12, 3, 6),
        ),
        _chart(
            "active_users",
            "line",
            "daily_active_users",
            "Active users per day",
            x=("day", "Day", "temporal"),
            ys=[("active_users", "Active users"), ("first_seen_users", "First seen")],
            position=(3, 12, 3, 6),
        ),
        _chart(
            "records",
            "bar",
            "daily_record_counts",
            "Records per day (a gap shows as a missing bar)",
            x=("day", "Day", "temporal"),
            ys=[("activity_logs", "activity_logs"), ("operation_logs", "operation_logs")],
            position=(0, 18, 3, 6),
        ),
        _chart(
            "clients",
            "bar",
            "client_versions",
            "Users per client (last 30 days)",
            x=("client_type", "Client", "categorical"),
            ys=[("users", "Users")],
            position=(3, 18, 3, 6),
            aggregate=True,
        ),
        _chart(
            "operations",
            "bar",
            "operations_by_category",
            "Operations per category",
            x=("category_type", "Category", "categorical"),
            ys=[("operations", "Operations")],
            position=(0, 24, 3, 6),
            aggregate=True,
        ),
        _table(
            "roles",
            "role_changes",
            "Admin and role changes",
            3,
            24,
            3,
            6,
            columns=["time", "operator", "change", "target", "role_from", "role_to"],
        ),
    ]
    return _page("overview", "Overview", layout)


def _hunting_page() -> Json:
    layout = [
        _text(
            "hunting_title",
            "# Hunting\nSign-ins from new addresses, address hopping, setting changes, users "
            "and recordings. Each table is one query of sql/analytics.",
            0,
            0,
            GRID_WIDTH,
            2,
        ),
        _table("new_ips", "new_ip_sign_ins", "Sign-ins from new IP addresses", 0, 2, GRID_WIDTH, 7),
        _table(
            "many_ips",
            "users_many_ips",
            "Users signing in from many IP addresses",
            0,
            9,
            GRID_WIDTH,
            5,
        ),
        _table("settings", "setting_changes", "Setting changes", 0, 14, GRID_WIDTH, 7),
        _table("users", "users_added_removed", "Users added and removed", 0, 21, 3, 6),
        _table("recordings", "recording_deletions", "Recording deletions", 3, 21, 3, 6),
        _table("versions", "client_versions", "Clients and versions in use", 0, 27, GRID_WIDTH, 6),
    ]
    return _page("hunting", "Hunting", layout)


def _page(name: str, title: str, layout: list[Json]) -> Json:
    # pageType: the current Lakeview format. The API adds it to a page that lacks it, and
    # every later deploy would then see the dashboard as changed remotely.
    return {"name": name, "displayName": title, "pageType": "PAGE_TYPE_CANVAS", "layout": layout}


# --------------------------------------------------------------------------- widgets


def _position(x: int, y: int, width: int, height: int) -> Json:
    return {"x": x, "y": y, "width": width, "height": height}


def _text(name: str, markdown: str, x: int, y: int, width: int, height: int) -> Json:
    return {
        "widget": {"name": name, "textbox_spec": markdown},
        "position": _position(x, y, width, height),
    }


def _chart(
    name: str,
    kind: str,
    dataset: str,
    title: str,
    *,
    x: tuple[str, str, str],
    ys: list[tuple[str, str]],
    position: tuple[int, int, int, int],
    aggregate: bool = False,
) -> Json:
    """A line or bar chart; `aggregate` sums each y per x (the dataset has several rows
    per x), otherwise the dataset has one row per x and is plotted as is."""
    x_field, x_title, x_scale = x
    fields = [{"name": x_field, "expression": f"`{x_field}`"}]
    encoded = []
    for column, label in ys:
        field = f"sum({column})" if aggregate else column
        expression = f"SUM(`{column}`)" if aggregate else f"`{column}`"
        fields.append({"name": field, "expression": expression})
        encoded.append({"fieldName": field, "displayName": label})
    y: Json = {"scale": {"type": "quantitative"}}
    if len(encoded) == 1:
        y.update(encoded[0])
    else:
        y["fields"] = encoded
    return {
        "widget": {
            "name": name,
            "queries": [
                {
                    "name": "main_query",
                    "query": {
                        "datasetName": dataset,
                        "fields": fields,
                        "disaggregated": not aggregate,
                    },
                }
            ],
            "spec": {
                "version": 3,
                "widgetType": kind,
                "encodings": {
                    "x": {"fieldName": x_field, "displayName": x_title, "scale": {"type": x_scale}},
                    "y": y,
                },
                "frame": {"showTitle": True, "title": title},
            },
        },
        "position": _position(*position),
    }


def _counter(name: str, dataset: str, title: str, x: int, y: int, width: int, height: int) -> Json:
    return {
        "widget": {
            "name": name,
            "queries": [
                {
                    "name": "main_query",
                    "query": {
                        "datasetName": dataset,
                        "fields": [{"name": "count(alert_id)", "expression": "COUNT(`alert_id`)"}],
                        "disaggregated": False,
                    },
                }
            ],
            "spec": {
                "version": 2,
                "widgetType": "counter",
                "encodings": {"value": {"fieldName": "count(alert_id)", "displayName": "Alerts"}},
                "frame": {"showTitle": True, "title": title},
            },
        },
        "position": _position(x, y, width, height),
    }


def _table(
    name: str,
    dataset: str,
    title: str,
    x: int,
    y: int,
    width: int,
    height: int,
    *,
    columns: list[str] | None = None,
) -> Json:
    """A table of the dataset's columns (all of them unless `columns` is given)."""
    shown = columns or table_columns(dataset)
    return {
        "widget": {
            "name": name,
            "queries": [
                {
                    "name": "main_query",
                    "query": {
                        "datasetName": dataset,
                        "fields": [{"name": c, "expression": f"`{c}`"} for c in shown],
                        "disaggregated": True,
                    },
                }
            ],
            "spec": {
                # The current table spec (version 2): each column names its field; the
                # version 1 attributes (order, visible, title, ...) are gone from it.
                "version": 2,
                "widgetType": "table",
                "encodings": {"columns": [{"fieldName": c, "displayName": c} for c in shown]},
                "frame": {"showTitle": True, "title": title},
            },
        },
        "position": _position(x, y, width, height),
    }


def table_columns(dataset: str) -> list[str]:
    """The output columns of an analytics query, in order (what a full table shows)."""
    tree = sqlglot.parse_one(QUERIES[dataset].sql, read=SOURCE_DIALECT)
    return list(tree.named_selects)
