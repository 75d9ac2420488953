"""`zoom-ingest`: run the job locally, try it against the built-in simulator, inspect tables.

Exit codes: 0 ok · 1 a stream failed · 2 bad settings, or a table in the warehouse with
another schema · 3 stopped at Zoom's daily rate limit (run again later; checkpoints are
kept) · 4 another run holds the warehouse or the Zoom account's lease · 5 Zoom could not
be reached (DNS, refused connection, TLS); nothing was fetched · 7 Zoom's answer could
not be proven complete (src/zoom_ingest/exit_codes.py declares them all and maps each
outcome to its code).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from . import exit_codes
from .logs import configure_logging
from .masking import mask
from .options import (
    BY_NAME,
    DEMO,
    RUN,
    SETTINGS,
    SETTINGS_DEFAULTS,
    Option,
    checked_settings,
    for_entry_point,
)
from .settings import DEFAULT_ENGINE, ENGINES, Settings, SettingsError
from .simulated import simulate as simulate_command
from .tables import LOG_TABLES, UTC

DEFAULT_WAREHOUSE = "warehouse"
DEMO_WAREHOUSE = "demo-warehouse"
#: The demo's simulated account is a Business one (Heavy APIs: 40 requests/s).
DEMO_REQUESTS_PER_SECOND = 40.0

log = logging.getLogger("zoom_ingest")


def invoked_as() -> str:
    """How the user started this command (e.g. `.venv/bin/zoom-ingest`), for hints."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return sys.argv[0] if name == "zoom-ingest" else "zoom-ingest"


def require_tables(warehouse: Path) -> None:
    """Exit 2 with a hint when the folder holds no zoom_ingest tables yet."""
    if not (warehouse / "zoom_ingest_checkpoints").is_dir():
        click.echo(
            f"error: no zoom_ingest tables in {warehouse}; run `zoom-ingest run` first", err=True
        )
        sys.exit(exit_codes.BAD_SETTING)


def require_log_tables(folder: Path) -> None:
    """Exit 2 with a hint when the folder holds neither log table: queries, detections and
    the report need only those (runs and checkpoints tables are optional)."""
    if not any((folder / name / "_delta_log").is_dir() for name in LOG_TABLE_NAMES):
        click.echo(
            f"error: no activity_logs or operation_logs Delta table in {folder}; run "
            "`zoom-ingest run` first, or point --source at a folder that has them",
            err=True,
        )
        sys.exit(exit_codes.BAD_SETTING)


def fail_settings(exc: SettingsError) -> None:
    click.echo(mask(f"error: {exc}"), err=True)
    sys.exit(exit_codes.BAD_SETTING)


class OptionValueError(click.ClickException):
    """An option value click itself refused (not a number, a file for a folder, …)."""

    exit_code = exit_codes.BAD_SETTING

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class SettingsCommand(click.Command):
    """A command whose wrong option values are reported like every other bad setting:
    one line naming the setting and what is allowed, exit code 2 (not click's usage
    block)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as exc:
            name = exc.param.name if exc.param is not None else exc.param_hint
            raise OptionValueError(f"invalid setting {name}: {exc.message}") from None


#: click types of the options that are not plain text or numbers.
CLICK_TYPES: dict[str, click.ParamType] = {
    "warehouse": click.Path(file_okay=False, path_type=Path),
    "engine": click.Choice(ENGINES),
}


def table_option(
    option: Option, default: object = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one entry of options.OPTIONS, with the table's default unless
    `default` is given."""
    if default is None:
        # Text is parsed by build_settings, so that its errors name the setting as the
        # job's do; click checks numbers itself ("'x' is not a valid integer").
        default = option.default if option.kind is not str else option.default_text or None
    return click.option(
        option.flag,
        envvar=option.env,
        show_envvar=option.env is not None,
        default=default,
        show_default=default is not None,
        type=CLICK_TYPES.get(option.name, option.kind),
        metavar=option.metavar,
        help=option.sentence
        if default is not None or not option.unset
        else f"{option.sentence} Default: {option.unset}.",
    )


def table_options(
    entry_point: str, defaults: dict[str, object] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Every option of `entry_point` in options.OPTIONS, in the table's order; `defaults`
    replaces the table's default of some (the demo's)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(for_entry_point(entry_point)):
            func = table_option(option, (defaults or {}).get(option.name))(func)
        return func

    return decorate


warehouse_option = table_option(BY_NAME["warehouse"])
#: `query`/`report --source`: the folder of the log tables when another tool wrote them.
source_option = click.option(
    "--source",
    envvar=BY_NAME["source"].env,
    show_envvar=True,
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of activity_logs and operation_logs when another tool wrote them (only "
    "the documented columns are read); outputs stay in --warehouse. Default: --warehouse.",
)
LOG_TABLE_NAMES = tuple(LOG_TABLES)

progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: when stderr is a terminal).",
)


def build_settings(given: dict[str, Any]) -> Settings:
    """Option values (click's, by name) → validated Settings (SettingsError names the bad
    one). Text is parsed as the job parses it; None means not given: the default applies."""
    values: dict[str, Any] = {}
    for name, value in given.items():
        option = BY_NAME[name]
        if option.configures != SETTINGS:
            continue
        if value is None and name not in SETTINGS_DEFAULTS:
            value = ""  # a required setting: Settings says which env var to set
        if value is not None:
            values[name] = option.value_of(value) if isinstance(value, str) else value
    return checked_settings(**values)


def make_engine(engine: str, warehouse: Path) -> Any:
    """The engine a local run writes with, both on `<warehouse>/<table>`. Exits 2 when the
    Spark engine cannot start here (no pyspark, no Java, no Delta jars), saying why."""
    if engine == "local":
        from .engines.local import LocalEngine

        return LocalEngine(warehouse)
    try:
        from .engines import spark_session
        from .engines.spark import SparkEngine
    except ImportError:
        click.echo(
            "error: --engine spark needs pyspark and delta-spark: "
            "pip install 'zoom-ingest[spark]' (and Java 17+)",
            err=True,
        )
        sys.exit(exit_codes.BAD_SETTING)
    if spark_session.missing_delta_jars(spark_session.delta_jars()):
        click.echo(
            f"Delta Lake jars not cached yet: fetching {spark_session.DELTA_PACKAGE} from "
            f"Maven Central into {spark_session.default_jar_cache()} (once)",
            err=True,
        )
    try:
        session = spark_session.local_session(fetch=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        click.echo(f"error: cannot start a local SparkSession with Delta: {first}", err=True)
        click.echo(f"hint: Java 17+ on PATH; {spark_session.how_to_get_delta_jars()}", err=True)
        sys.exit(exit_codes.BAD_SETTING)
    if not spark_session.has_delta(session):
        click.echo(f"error: {spark_session.how_to_get_delta_jars()}", err=True)
        sys.exit(exit_codes.BAD_SETTING)
    return SparkEngine(session, warehouse=warehouse)


def lease_engine_at(store: Any, location: str | None) -> Any:
    """The engine that keeps zoom_ingest_leases in the folder `location`, of the same kind
    as `store` (the Spark one shares its session); None (beside the tables) when empty."""
    if not location or not location.strip():
        return None
    folder = Path(location.strip()).expanduser()
    if store.name == "local":
        return type(store)(folder)
    return type(store)(store.spark, warehouse=folder)


def execute(
    settings: Settings,
    warehouse: Path,
    progress: bool | None,
    engine: str = DEFAULT_ENGINE,
    lease_location: str | None = None,
) -> int:
    """Run the job on the chosen engine and print the summary; return the exit code."""
    from .job import run

    try:
        store = make_engine(engine, warehouse)
        summary = run(
            settings,
            store,
            progress=progress,
            lease_engine=lease_engine_at(store, lease_location),
        )
    except Exception as exc:
        # A known outcome (busy, a destination that does not match, …) in one line;
        # anything else is a bug and keeps its traceback.
        code = exit_codes.for_exception(exc)
        if code is None:
            raise
        click.echo(mask(f"error: {exc}"), err=True)
        return code
    for line in summary.lines():
        click.echo(line)
    return summary.exit_code


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="zoom-ingest")
def main() -> None:
    """Zoom activity logs and operation logs into Delta tables."""


@main.command("run", cls=SettingsCommand)
@table_options(RUN)
@progress_option
def run_command(
    warehouse: Path, engine: str, progress: bool | None, log_level: str, **opts: Any
) -> None:
    """Ingest both log streams into the local warehouse (incremental after the first run)."""
    configure_logging(log_level, [opts["client_secret"] or ""])
    lease_location = opts.pop("lease_location", None)
    try:
        settings = build_settings(opts)
    except SettingsError as exc:
        fail_settings(exc)
    sys.exit(execute(settings, warehouse, progress, engine, lease_location))


@main.command("demo", cls=SettingsCommand)
@click.option(
    "--warehouse",
    default=DEMO_WAREHOUSE,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 180),
    help="Days of simulated history to backfill.",
)
@click.option("--activity-per-day", default=400, show_default=True, type=click.IntRange(0))
@click.option("--operation-per-day", default=80, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=7, show_default=True, type=int)
# The simulated account is a Business one, whose rate the simulator enforces; an explicit
# --requests-per-second (or its env var) still wins, whatever its value.
@table_options(DEMO, defaults={"requests_per_second": DEMO_REQUESTS_PER_SECOND})
@progress_option
def demo_command(
    warehouse: Path,
    engine: str,
    days: int,
    activity_per_day: int,
    operation_per_day: int,
    seed: int,
    progress: bool | None,
    log_level: str,
    **opts: Any,
) -> None:
    """Run the real job against the built-in Zoom simulator and show what it ingested."""
    from .simulator import Simulator

    configure_logging(log_level)
    if opts["backfill_start"] is None:
        opts["backfill_start"] = (datetime.now(UTC).date() - timedelta(days=days)).isoformat()
    with Simulator(
        seed=seed,
        days=days,
        activity_per_day=activity_per_day,
        operation_per_day=operation_per_day,
        qps_limit=opts["requests_per_second"],
    ) as sim:
        from .scenarios import plant_standard_scenarios

        planted = plant_standard_scenarios(sim)
        click.echo(
            f"Zoom simulator on {sim.api_url} ({days} days of seeded history, "
            f"{len(planted)} planted security scenarios)"
        )
        try:
            # Its URLs and credentials as plain text, read like any option's.
            settings = build_settings({**sim.connection(), **opts})
        except SettingsError as exc:
            fail_settings(exc)
        code = execute(settings, warehouse, progress, engine)
    click.echo("")
    show_status(warehouse, settings.account_id, samples=3)
    click.echo("")
    show_alert_counts(warehouse, planted)
    click.echo("")
    me = invoked_as()
    click.echo(f"Tables are in {warehouse}/ (one Delta table per folder). Next:")
    click.echo(f"  {me} status --warehouse {warehouse}")
    click.echo(
        f"  {me} query --warehouse {warehouse} "
        '"SELECT type, count(*) AS n FROM activity_logs GROUP BY type"'
    )
    click.echo(f"  {me} query --warehouse {warehouse} --detections   # the alerts")
    click.echo(f"  {me} report --warehouse {warehouse}   # an HTML page with charts")
    sys.exit(code)


def show_alert_counts(warehouse: Path, planted: list[Any]) -> None:
    """Alerts per detection on the demo's data, beside how many the planted scenarios raise."""
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from .analytics import DETECTIONS, QueryError, run_detections

    try:
        alerts = run_detections(warehouse).to_pylist()
    except QueryError as exc:
        click.echo(f"detections: {exc}", err=True)
        return
    found = Counter(a["detection"] for a in alerts)
    expected = Counter(a.detection for s in planted for a in s.alerts)
    table = Table(title=f"Detections: {len(alerts)} alerts (the last 30 days)")
    for column in ("detection", "severity", "alerts", "planted"):
        table.add_column(column, justify="right" if column in ("alerts", "planted") else "left")
    for name, query in sorted(DETECTIONS.items()):
        table.add_row(name, query.severity or "", str(found[name]), str(expected[name]))
    Console(width=100).print(table)


@main.command("status")
@warehouse_option
@click.option(
    "--runs",
    "last_runs",
    default=6,
    show_default=True,
    type=click.IntRange(0),
    help="How many of the latest runs rows to show.",
)
def status_command(warehouse: Path, last_runs: int) -> None:
    """Checkpoints, row counts and the latest runs of a local warehouse."""
    require_tables(warehouse)
    show_status(warehouse, None, last_runs=last_runs)


def show_status(
    warehouse: Path, account_id: str | None, *, last_runs: int = 4, samples: int = 0
) -> None:
    from rich.console import Console
    from rich.table import Table

    from .engines.local import LocalEngine
    from .tables import ACTIVITY_LOGS, CHECKPOINTS, LOG_TABLES, RUNS

    engine = LocalEngine(warehouse)
    console = Console(width=max(140, Console().width))

    counts = Table(title=f"Tables in {warehouse}")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    counts.add_column("oldest time")
    counts.add_column("newest time")
    for spec in LOG_TABLES.values():
        data = engine.read_table(spec)
        times = data["time"] if data.num_rows else None
        counts.add_row(
            spec.name,
            f"{data.num_rows:,}",
            _cell(_min(times)) if times is not None else "-",
            _cell(_max(times)) if times is not None else "-",
        )
    console.print(counts)

    checkpoints = engine.read_table(CHECKPOINTS).to_pylist()
    table = Table(title="Checkpoints (every record before the cursor is committed)")
    for column in ("account_id", "stream", "cursor", "updated_at", "run_id"):
        table.add_column(column)
    for row in checkpoints:
        if account_id is None or row["account_id"] == account_id:
            table.add_row(
                *(_cell(row[c]) for c in ("account_id", "stream", "cursor", "updated_at", "run_id"))
            )
    console.print(table)

    if last_runs:
        runs = sorted(
            engine.read_table(RUNS).to_pylist(), key=lambda r: r["started_at"], reverse=True
        )[:last_runs]
        table = Table(title="Latest runs (zoom_ingest_runs)")
        columns = (
            "started_at",
            "stream",
            "mode",
            "status",
            "api_calls",
            "records_fetched",
            "records_inserted",
            "records_rejected",
            "retries",
            "rate_limited",
            "duration_seconds",
        )
        headers = (
            "started",
            "stream",
            "mode",
            "status",
            "calls",
            "fetched",
            "inserted",
            "rejected",
            "retries",
            "429s",
            "seconds",
        )
        for header in headers:
            table.add_column(
                header,
                justify="left" if header in ("started", "stream", "mode", "status") else "right",
            )
        for row in runs:
            table.add_row(*(_cell(row[c]) for c in columns))
        console.print(table)

    if samples:
        rows = engine.read_table(ACTIVITY_LOGS).slice(0, samples).to_pylist()
        table = Table(title="A few activity_logs rows")
        for column in ACTIVITY_LOGS.columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row[c]) for c in ACTIVITY_LOGS.columns))
        console.print(table)


def _cell(value: object) -> Any:
    """A value as a terminal table shows it: rich Text (never read as markup), with
    control characters escaped (`visible`)."""
    from rich.text import Text

    return Text(visible(_cell_text(value)))


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "…"
    return str(value)


#: Control characters (C0, DEL, C1) and the backslash that escapes them.
_CONTROL_OR_BACKSLASH = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def visible(text: str) -> str:
    """Text safe for a terminal: each control character (ESC, NUL, newline, …) written as
    its Python escape (`\\x1b`, `\\n`) and a backslash doubled, so data can neither
    drive the terminal nor pass for an escape. CSV and JSON output stay faithful."""
    return _CONTROL_OR_BACKSLASH.sub(_escape_character, text)


def _escape_character(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def _min(column: Any) -> Any:
    import pyarrow.compute as pc

    return pc.min(column).as_py()


def _max(column: Any) -> Any:
    import pyarrow.compute as pc

    return pc.max(column).as_py()


@main.command("query")
@click.argument("sql", required=False)
@warehouse_option
@source_option
@click.option(
    "--name",
    "query_name",
    default=None,
    help="Run one of the shipped queries by name (see --list).",
)
@click.option("--detections", is_flag=True, help="Run every shipped detection.")
@click.option("--list", "list_queries", is_flag=True, help="List the shipped queries.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(0),
    help="Rows shown in table format (0: all). CSV and JSON print every row.",
)
def query_command(
    sql: str | None,
    warehouse: Path,
    source: Path | None,
    query_name: str | None,
    detections: bool,
    list_queries: bool,
    output_format: str,
    limit: int,
) -> None:
    """Run SQL (Databricks dialect) on the local tables; prints a table, CSV or JSON."""
    from . import analytics

    if list_queries:
        for kind, queries in (
            ("analytics", analytics.QUERIES),
            ("detections", analytics.DETECTIONS),
        ):
            click.echo(f"{kind}:")
            for name, q in sorted(queries.items()):
                click.echo(f"  {name:<32} {q.title}")
        return
    if sum(x is not None and x is not False for x in (sql, query_name, detections or None)) != 1:
        click.echo("error: give one of SQL, --name NAME or --detections (see --list)", err=True)
        sys.exit(exit_codes.BAD_SETTING)
    require_log_tables(source or warehouse)
    try:
        if detections:
            result = analytics.run_detections(warehouse, source=source)
        elif query_name is not None:
            if query_name not in analytics.QUERIES and query_name not in analytics.DETECTIONS:
                click.echo(f"error: no query named {query_name!r}; see --list", err=True)
                sys.exit(exit_codes.BAD_SETTING)
            result = analytics.run_named(warehouse, query_name, source=source)
        else:
            result = analytics.run_query(warehouse, sql or "", source=source)
    except analytics.QueryError as exc:
        click.echo(mask(f"error: {exc}"), err=True)
        sys.exit(exit_codes.STREAM_FAILED)
    print_table(result, output_format, limit)


def print_table(result: Any, output_format: str, limit: int) -> None:
    """An Arrow table as a rich table, CSV or JSON lines on stdout."""
    if output_format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(result.column_names)
        for row in result.to_pylist():
            writer.writerow([_csv_cell(row[c]) for c in result.column_names])
        return
    if output_format == "json":
        import json

        for row in result.to_pylist():
            click.echo(json.dumps(row, default=_json_default, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for name in result.column_names:
        table.add_column(_cell(name), overflow="fold")
    rows = result.to_pylist()
    shown = rows if not limit else rows[:limit]
    for row in shown:
        table.add_row(*(_cell(row[c]) for c in result.column_names))
    console = Console(width=max(140, Console().width))
    console.print(table)
    if len(shown) < len(rows):
        console.print(f"{len(shown)} of {len(rows)} rows (--limit 0 for all, or --format csv)")
    else:
        console.print(f"{len(rows)} rows")


def _csv_cell(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    return str(value)


@main.command("report")
@warehouse_option
@source_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write (default: <warehouse>/zoom-report.html).",
)
def report_command(warehouse: Path, source: Path | None, output: Path | None) -> None:
    """Write a self-contained HTML report: sign-ins, clients, changes, latest detections."""
    from .report import write_report

    require_log_tables(source or warehouse)
    path = write_report(warehouse, output or warehouse / "zoom-report.html", source=source)
    click.echo(f"wrote {path}")


# The simulator declares its command line, once (simulator/command.py); simulated.py makes
# it print zoom-ingest's env vars. `python -m zoom_ingest.simulator` runs the same one.
main.add_command(simulate_command)


if __name__ == "__main__":  # pragma: no cover
    main()
