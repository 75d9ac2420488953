"""Bring your own tables: detections, queries and the report over log tables another tool
wrote (shaped like the Databricks Zoom Logs connector's: `activity_logs` and
`operation_logs` with the documented columns, nothing beside them), outputs in ours.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from support.sim_settings import simulator_settings
from zoom_ingest import cli, detections
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import run
from zoom_ingest.scenarios import plant_standard_scenarios
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import DETECTIONS, IP_COUNTRIES, LOG_TABLES, UTC

DAYS = 20


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, datetime]:
    """(a full warehouse of ours, a folder with only its two log tables, now)."""
    root = tmp_path_factory.mktemp("byo")
    ours = root / "ingested"
    with Simulator(seed=71, days=DAYS, activity_per_day=150, operation_per_day=30) as sim:
        planted = plant_standard_scenarios(sim)
        assert planted
        start = datetime.now(UTC).date() - timedelta(days=DAYS - 1)
        summary = run(simulator_settings(sim, backfill_start=start, requests_per_second=200),
                      LocalEngine(ours), progress=False)  # fmt: skip
        assert summary.exit_code == 0, summary.lines()
    connector = root / "connector"
    for name in LOG_TABLES:
        shutil.copytree(ours / name, connector / name)
    assert sorted(p.name for p in connector.iterdir()) == sorted(LOG_TABLES)
    return ours, connector, datetime.now(UTC)


def test_detections_over_connector_tables_equal_ours_and_land_in_our_folder(tables, tmp_path):
    ours, connector, now = tables
    expected = detections.write_detections_local(ours, now=now)
    assert expected.found > 0
    outputs = tmp_path / "outputs"
    got = detections.write_detections_local(outputs, now=now, source=connector)
    assert (got.found, got.new_by_severity) == (expected.found, expected.new_by_severity)
    ids = set(LocalEngine(outputs).read_table(DETECTIONS).column("alert_id").to_pylist())
    assert ids == set(LocalEngine(ours).read_table(DETECTIONS).column("alert_id").to_pylist())
    # The countries the country detections need were looked up from the source's logs.
    assert LocalEngine(outputs).read_table(IP_COUNTRIES).num_rows == (
        LocalEngine(ours).read_table(IP_COUNTRIES).num_rows
    )
    # Nothing was written beside the source's tables, nor log tables beside ours.
    assert sorted(p.name for p in connector.iterdir()) == sorted(LOG_TABLES)
    for name in LOG_TABLES:
        assert not DeltaTable.is_deltatable(str(outputs / name))
        assert len(DeltaTable(str(connector / name)).history()) == len(
            DeltaTable(str(ours / name)).history()
        )


def test_query_and_report_work_with_no_runs_or_checkpoints_tables(tables, tmp_path):
    _, connector, _ = tables
    outputs = tmp_path / "outputs"
    runner = CliRunner()
    base = ["--warehouse", str(outputs), "--source", str(connector)]
    freshness = runner.invoke(
        cli.main, ["query", *base, "--name", "data_freshness", "--format", "json"]
    )
    assert freshness.exit_code == 0, freshness.output
    rows = [line for line in freshness.output.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and all('"latest_time": "20' in row for row in rows)
    assert all('"checkpoint_cursor": null' in row for row in rows)  # no checkpoints table
    alerts = runner.invoke(cli.main, ["query", *base, "--detections", "--format", "csv"])
    assert alerts.exit_code == 0, alerts.output
    assert len(alerts.output.splitlines()) > 1
    report = runner.invoke(cli.main, ["report", *base, "--output", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert "Data freshness" in (tmp_path / "r.html").read_text(encoding="utf-8")
    # Without --source the (empty) output folder has no log tables: a clear exit 2.
    missing = runner.invoke(cli.main, ["query", "--warehouse", str(outputs), "SELECT 1"])
    assert missing.exit_code == 2 and "--source" in missing.output


def test_spark_detections_over_a_connector_schema_write_only_to_ours(tables, delta_spark):
    """The detections task on Spark + Delta: the connector's schema holds just its two
    tables; alerts, countries and views go to ours, and equal the local run's."""
    from zoom_ingest.engines.spark import SparkEngine

    ours, connector, now = tables
    spark = delta_spark
    source, output = "byo_connector", "byo_ours"
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {source}")
    for name in LOG_TABLES:
        spark.sql(
            f"CREATE OR REPLACE TABLE spark_catalog.{source}.{name} USING DELTA AS "
            f"SELECT * FROM delta.`{connector / name}`"
        )
    result = detections.write_detections_spark(
        spark, "spark_catalog", output, now=now, source=("spark_catalog", source)
    )
    expected = detections.write_detections_local(ours, now=now)
    assert result.found == expected.found > 0
    stored = SparkEngine(spark, "spark_catalog", output).read_table(DETECTIONS)
    local = LocalEngine(ours).read_table(DETECTIONS)
    assert set(stored.column("alert_id").to_pylist()) == set(local.column("alert_id").to_pylist())
    assert sorted(
        r["tableName"] for r in spark.sql(f"SHOW TABLES IN {source}").collect()
    ) == sorted(LOG_TABLES)
    views = {r["viewName"] for r in spark.sql(f"SHOW VIEWS IN {output}").collect()}
    assert set(LOG_TABLES) | {"operation_changes"} <= views
    countries = SparkEngine(spark, "spark_catalog", output).read_table(IP_COUNTRIES)
    assert countries.num_rows == LocalEngine(ours).read_table(IP_COUNTRIES).num_rows
