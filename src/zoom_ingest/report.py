"""`zoom-ingest report`: one self-contained HTML page from the local tables.

The page runs the analytics queries and the detections (analytics.py) over a local
warehouse and shows the main charts and tables: data freshness, the latest alerts,
sign-ins per day, active users, records per day (gaps stand out), clients and versions,
operations per category, admin and role changes, sign-ins from new addresses.

Self-contained: charts are inline SVG drawn here, styles are inline, there is no script
and no external resource, so the file opens anywhere, offline, and can be mailed as is.
Every value from the data is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .analytics import DETECTIONS, QUERIES, LocalWarehouse
from .tables import UTC

#: How many rows the tables of the page show (the newest first).
TABLE_ROWS = 25
ALERT_ROWS = 30
FRESHNESS_WARNING_HOURS = 24.0
_COLOURS = ("#1f6feb", "#d29922", "#2da44e", "#cf222e", "#8250df", "#57606a")
_SEVERITY_COLOURS = {"high": "#cf222e", "medium": "#d29922", "low": "#57606a"}

Row = dict[str, Any]


def write_report(
    warehouse: str | Path,
    output: str | Path,
    *,
    now: datetime | None = None,
    params: Mapping[str, object] | None = None,
    source: Path | None = None,
) -> Path:
    """Write the report of a local warehouse to `output` (an .html file); return its path.

    `params`: the detections' settings (DetectionSettings.sql_params(); default: from the
    environment)."""
    page = render_report(warehouse, now=now, params=params, source=source)
    path = Path(output).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def render_report(
    warehouse: str | Path,
    *,
    now: datetime | None = None,
    params: Mapping[str, object] | None = None,
    source: Path | None = None,
) -> str:
    """The report as one HTML document (a string); `source`: the log tables' folder when
    they are not in `warehouse`."""
    generated = (now or datetime.now(UTC)).astimezone(UTC)
    with LocalWarehouse(warehouse, now=now, params=params, source=source) as session:
        results: dict[str, list[Row]] = {name: _rows(session.named(name)) for name in QUERIES}
        alerts = _rows(session.detections())
        location = str(session.path.absolute())
    sections = [
        _freshness_section(results["data_freshness"]),
        _alerts_section(alerts),
        _sign_ins_section(results["daily_sign_ins"], results["daily_active_users"]),
        _records_section(results["daily_record_counts"]),
        _clients_section(results["client_versions"]),
        _operations_section(results["operations_by_category"]),
        _table_section(
            "role_changes",
            results["role_changes"],
            [
                "time",
                "operator",
                "change",
                "target",
                "role_from",
                "role_to",
                "privileges_added",
                "privileges_removed",
            ],
        ),
        _table_section(
            "setting_changes",
            results["setting_changes"],
            ["time", "operator", "category_type", "target", "setting", "old_value", "new_value"],
        ),
        _table_section(
            "new_ip_sign_ins",
            results["new_ip_sign_ins"],
            ["time", "email", "ip_address", "client_type", "version", "prior_ips"],
        ),
        _table_section(
            "users_many_ips",
            results["users_many_ips"],
            ["email", "first_sign_in", "last_sign_in", "ip_addresses", "sign_ins", "addresses"],
        ),
        _table_section(
            "users_added_removed",
            results["users_added_removed"],
            ["time", "operator", "change", "user_email"],
        ),
        _table_section(
            "recording_deletions",
            results["recording_deletions"],
            ["time", "operator", "action", "meeting_id", "topic"],
        ),
    ]
    return _page(location, generated, sections)


# --------------------------------------------------------------------------- sections


def _freshness_section(rows: list[Row]) -> str:
    cells = []
    for row in rows:
        hours = row["hours_since_latest"]
        stale = hours is None or hours > FRESHNESS_WARNING_HOURS
        status = "no data" if hours is None else f"{hours:g} h ago"
        cells.append(
            f'<div class="card{" stale" if stale else ""}"><h3>{_e(row["table_name"])}</h3>'
            f'<p class="big">{_number(row["total_records"])}</p><p>records · newest '
            f"{_e(_format(row['latest_time']))} ({_e(status)})</p><p>last 24 h: "
            f"{_number(row['records_last_24h'])} · checkpoint "
            f"{_e(_format(row['checkpoint_cursor']))}"
            f" · last run {_e(_format(row['last_run_status']))}</p></div>"
        )
    return _section("data_freshness", f'<div class="cards">{"".join(cells)}</div>')


def _alerts_section(alerts: list[Row]) -> str:
    if not alerts:
        body = '<p class="quiet">No detection raised an alert.</p>'
    else:
        counts = defaultdict(int)
        for alert in alerts:
            counts[alert["severity"]] += 1
        summary = " · ".join(
            f'<span class="badge" style="background:{_SEVERITY_COLOURS.get(s, "#57606a")}">'
            f"{_e(s)} {n}</span>"
            for s, n in sorted(counts.items(), key=lambda item: _severity_rank(item[0]))
        )
        rows = [
            {
                **alert,
                "detection": DETECTIONS[alert["detection"]].title
                if alert["detection"] in DETECTIONS
                else alert["detection"],
            }
            for alert in alerts[:ALERT_ROWS]
        ]
        body = f"<p>{summary}</p>" + _table(
            rows,
            ["time", "severity", "detection", "actor", "target", "change"],
            formatters={"severity": _severity_badge},
        )
        if len(alerts) > ALERT_ROWS:
            body += f'<p class="quiet">The newest {ALERT_ROWS} of {len(alerts)} alerts.</p>'
    title = "Latest detections"
    description = "Alerts of the detections over the last 30 days, newest first."
    return (
        f'<section id="detections"><h2>{title}</h2>'
        f'<p class="quiet">{description}</p>{body}</section>'
    )


def _sign_ins_section(daily: list[Row], active: list[Row]) -> str:
    days = [row["day"] for row in daily]
    chart = _column_chart(
        [_day(d) for d in days],
        {
            "sign-ins": [row["sign_ins"] for row in daily],
            "sign-outs": [row["sign_outs"] for row in daily],
        },
    )
    users = _column_chart(
        [_day(row["day"]) for row in active],
        {"active users": [row["active_users"] for row in active]},
    )
    return _section("daily_sign_ins", chart) + _section("daily_active_users", users)


def _records_section(rows: list[Row]) -> str:
    labels = [_day(row["day"]) for row in rows]
    chart = _column_chart(
        labels,
        {
            "activity_logs": [row["activity_logs"] for row in rows],
            "operation_logs": [row["operation_logs"] for row in rows],
        },
        highlight=[row["activity_logs"] == 0 for row in rows],
    )
    empty = [label for label, row in zip(labels, rows, strict=True) if row["activity_logs"] == 0]
    note = f'<p class="warn">No activity records on {_e(", ".join(empty))}.</p>' if empty else ""
    return _section("daily_record_counts", chart + note)


def _clients_section(rows: list[Row]) -> str:
    users: dict[str, int] = defaultdict(int)
    for row in rows:
        users[row["client_type"] or "(none)"] += row["users"]
    chart = _bar_list(sorted(users.items(), key=lambda item: (-item[1], item[0])), unit="users")
    outdated = [row for row in rows if row["is_outdated"]]
    outdated.sort(key=lambda row: (-row["users"], row["client_type"], row["version"]))
    table = (
        "<h3>Outdated versions</h3>"
        + _table(
            outdated[:TABLE_ROWS],
            ["client_type", "version", "users", "sign_ins", "latest_version", "last_seen"],
        )
        if outdated
        else '<p class="quiet">No outdated versions.</p>'
    )
    return _section("client_versions", "<h3>Users per client (last 30 days)</h3>" + chart + table)


def _operations_section(rows: list[Row]) -> str:
    per_category: dict[str, int] = defaultdict(int)
    for row in rows:
        per_category[row["category_type"] or "(none)"] += row["operations"]
    chart = _bar_list(
        sorted(per_category.items(), key=lambda item: (-item[1], item[0])), unit="operations"
    )
    top = _table(
        rows[:TABLE_ROWS], ["category_type", "action", "operator", "operations", "last_time"]
    )
    return _section("operations_by_category", chart + top)


def _table_section(name: str, rows: list[Row], columns: list[str]) -> str:
    shown = rows[:TABLE_ROWS]
    # Columns that are empty in every row shown only take room.
    columns = [c for c in columns if any(row.get(c) is not None for row in shown)]
    body = _table(shown, columns) if rows else '<p class="quiet">None.</p>'
    if len(rows) > TABLE_ROWS:
        body += f'<p class="quiet">The first {TABLE_ROWS} of {len(rows)} rows.</p>'
    return _section(name, body)


def _section(query_name: str, body: str) -> str:
    query = QUERIES[query_name]
    return (
        f'<section id="{_e(query_name)}"><h2>{_e(query.title)}</h2>'
        f'<p class="quiet">{_e(query.description)}</p>{body}</section>'
    )


# --------------------------------------------------------------------------- charts


def _column_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    highlight: Sequence[bool] | None = None,
    height: int = 220,
) -> str:
    """Grouped columns, one group per label; a `<title>` on each column shows its value."""
    if not labels:
        return '<p class="quiet">No data.</p>'
    left, bottom, top = 48, 40, 12
    group = max(8.0, min(48.0, 860.0 / len(labels)))
    width = int(left + group * len(labels) + 12)
    plot = height - bottom - top
    peak = _nice_ceiling(max((v for values in series.values() for v in values), default=0))
    bar = max(2.0, (group - 4) / len(series))
    parts = [_axis(left, top, plot, width, peak)]
    for index, label in enumerate(labels):
        x0 = left + index * group + 2
        if highlight and highlight[index]:
            parts.append(
                f'<rect x="{x0 - 2:.1f}" y="{top}" width="{group:.1f}" height="{plot}" '
                'fill="#ffebe9"><title>no activity records</title></rect>'
            )
        for s, (name, values) in enumerate(series.items()):
            value = values[index] or 0
            h = plot * value / peak
            parts.append(
                f'<rect x="{x0 + s * bar:.1f}" y="{top + plot - h:.1f}" width="{bar - 1:.1f}" '
                f'height="{h:.1f}" fill="{_COLOURS[s % len(_COLOURS)]}">'
                f"<title>{_e(label)} · {_e(name)}: {_number(value)}</title></rect>"
            )
        if index % max(1, len(labels) // 12) == 0:
            parts.append(
                f'<text x="{x0 + group / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle" class="tick">{_e(label)}</text>'
            )
    legend = "".join(
        f'<span class="key"><i style="background:{_COLOURS[s % len(_COLOURS)]}"></i>'
        f"{_e(name)}</span>"
        for s, name in enumerate(series)
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg><p>{legend}</p>'
    )


def _nice_ceiling(value: float) -> float:
    """The top of the y axis: 4 grid steps of a round size (whole numbers), at or above `value`."""
    if value <= 4:
        return 4.0
    quarter = value / 4
    magnitude = 10 ** math.floor(math.log10(quarter))
    for multiple in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if multiple * magnitude >= quarter:
            return 4 * max(1.0, multiple * magnitude)
    return value  # unreachable: 10 × magnitude ≥ quarter


def _axis(left: int, top: int, plot: int, width: int, peak: float) -> str:
    lines = []
    for step in range(5):
        value = peak * step / 4
        y = top + plot - plot * step / 4
        lines.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{_number(value)}</text>"
        )
    return "".join(lines)


def _bar_list(items: Sequence[tuple[str, float]], *, unit: str) -> str:
    """Horizontal bars, one per (label, value), longest first as given."""
    if not items:
        return '<p class="quiet">No data.</p>'
    row, label_width, width = 24, 160, 720
    peak = max(value for _, value in items) or 1
    parts = []
    for index, (label, value) in enumerate(items):
        y = index * row
        length = (width - label_width - 80) * value / peak
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{length:.1f}" height="{row - 8}" '
            f'fill="{_COLOURS[0]}"><title>{_e(label)}: {_number(value)} {_e(unit)}</title></rect>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 16}" class="tick">'
            f"{_number(value)}</text>"
        )
    height = row * len(items)
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


# --------------------------------------------------------------------------- tables and text


def _table(
    rows: Sequence[Row],
    columns: Sequence[str],
    formatters: dict[str, Callable[[Any], str]] | None = None,
) -> str:
    if not rows:
        return '<p class="quiet">None.</p>'
    formatters = formatters or {}
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(row.get(c), formatters.get(c)) for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any, formatter: Callable[[Any], str] | None) -> str:
    text = formatter(value) if formatter else _e(_format(value))
    # Times stay on one line; long text wraps.
    return f'<td class="time">{text}</td>' if isinstance(value, datetime) else f"<td>{text}</td>"


def _severity_badge(severity: Any) -> str:
    colour = _SEVERITY_COLOURS.get(str(severity), "#57606a")
    return f'<span class="badge" style="background:{colour}">{_e(_format(severity))}</span>'


def _severity_rank(severity: str) -> int:
    order = list(_SEVERITY_COLOURS)
    return order.index(severity) if severity in order else len(order)


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return _number(value)
    text = str(value)
    return text if len(text) <= 300 else text[:299] + "…"


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _day(value: date) -> str:
    return value.strftime("%m-%d")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _rows(table: pa.Table) -> list[Row]:
    return table.to_pylist()


def _page(location: str, generated: datetime, sections: list[str]) -> str:
    nav = "".join(
        f'<a href="#{_e(name)}">{_e(title)}</a>'
        for name, title in [
            ("data_freshness", "Freshness"),
            ("detections", "Detections"),
            ("daily_sign_ins", "Sign-ins"),
            ("daily_record_counts", "Records"),
            ("client_versions", "Clients"),
            ("operations_by_category", "Operations"),
            ("role_changes", "Roles"),
            ("new_ip_sign_ins", "New addresses"),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="zoom_ingest">
<title>Zoom audit report</title>
<style>{_STYLE}</style>
</head>
<body>
<header><h1>Zoom audit report</h1>
<p class="quiet">Local tables in {_e(location)} · generated {_e(_format(generated))} UTC ·
all times and days are UTC</p><nav>{nav}</nav></header>
<main>
{"".join(sections)}
</main>
</body>
</html>
"""


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:0}
body{background:#f6f8fa}
header{background:#fff;border-bottom:1px solid #d0d7de;padding:16px 32px}
h1{margin:0 0 4px;font-size:22px}
h2{font-size:18px;margin:0 0 4px}
h3{font-size:15px;margin:16px 0 6px}
nav a{margin-right:14px;color:#0969da;text-decoration:none}
main{padding:16px 32px;max-width:1200px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px}
section{padding:16px 20px;margin:0 0 16px}
.quiet{color:#57606a}
.warn{color:#cf222e}
.cards{display:flex;gap:16px;flex-wrap:wrap}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 16px;min-width:260px}
.card.stale{border-color:#cf222e;background:#ffebe9}
.card p{margin:2px 0}
.big{font-size:24px;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2}
th,td{vertical-align:top;word-break:break-word}
th{background:#f6f8fa}
.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
td.time{white-space:nowrap}
.key{margin-right:16px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
svg{max-width:100%;height:auto}
svg text{font-size:11px;fill:#1f2328}
svg .tick{fill:#57606a}
svg .grid{stroke:#eaeef2}
"""
