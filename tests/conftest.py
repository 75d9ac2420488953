"""Shared fixtures.

`ENGINE_FACTORIES` lists every engine the contract tests (test_engine_contract.py) run
against. A factory gets a fresh folder private to the test and returns an engine whose
destination lives there (a warehouse folder, or a schema named after it). Calling a
factory twice with the same folder must give two engine objects on the SAME destination:
the lock tests rely on it. A factory that cannot run on this machine calls
`pytest.skip(reason)` with a reason that says what is missing.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from zoom_ingest.engines import Engine, LocalEngine

EngineFactory = Callable[[Path], Engine]


def _local_engine(where: Path) -> Engine:
    return LocalEngine(where / "warehouse")


def _spark_engine(where: Path) -> Engine:
    """Delta tables in a schema of the local SparkSession named after `where`."""
    try:
        from zoom_ingest.engines.spark import SparkEngine, delta_jars, has_delta, local_session
    except ImportError:
        pytest.skip("spark engine: pyspark is not installed (pip install -e '.[spark]')")
    if not delta_jars():
        pytest.skip(
            "spark engine: Delta jars unavailable; set ZOOM_INGEST_DELTA_JARS to the "
            "delta-spark and delta-storage jars (see DEVELOPERS.md)"
        )
    spark = local_session()  # one per process, shared with tests/test_spark_engine.py
    if not has_delta(spark):
        pytest.skip("spark engine: this process's SparkSession started without Delta")
    schema = "contract_" + hashlib.sha256(str(where).encode()).hexdigest()[:16]
    return SparkEngine(spark, "spark_catalog", schema, conflict_backoff_seconds=0.05)


ENGINE_FACTORIES: dict[str, EngineFactory] = {
    "local": _local_engine,
    "spark": _spark_engine,
}


@pytest.fixture(params=sorted(ENGINE_FACTORIES))
def engine_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Engine]:
    """Makes engine objects that all share one destination private to the test."""
    factory = ENGINE_FACTORIES[request.param]
    return lambda: factory(tmp_path)


@pytest.fixture
def engine(engine_factory: Callable[[], Engine]) -> Engine:
    """An engine whose tables exist and are empty."""
    made = engine_factory()
    made.ensure_tables()
    return made


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The genuine-CLI tests last: `make test` builds the CLI in the background while the
    rest of the suite runs, and those tests wait for the build (test_bundle_cli.py)."""
    items.sort(key=lambda item: item.path.name == "test_bundle_cli.py")


#: The host time zones the time, plan and lw_id tests run under, with their offset on
#: 2026-01-01. CI machines run in UTC, so a conversion to the host's zone instead of UTC
#: would pass there unnoticed: these zones put the host 14 hours ahead and 8 hours behind.
HOST_TIME_ZONES = {
    "UTC": timedelta(0),
    "Pacific/Kiritimati": timedelta(hours=14),
    "America/Los_Angeles": timedelta(hours=-8),
}


@pytest.fixture(scope="module", params=sorted(HOST_TIME_ZONES))
def host_time_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the tests that use it once per zone in HOST_TIME_ZONES, with the process's
    local time zone (`TZ`, `time.tzset()`) set to that zone. Module-scoped, so that
    Hypothesis tests can use it too."""
    if not hasattr(time, "tzset"):
        pytest.skip("host time zones: time.tzset() is POSIX-only")
    zone = request.param
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        offset = datetime(2026, 1, 1, tzinfo=timezone.utc).astimezone().utcoffset()
        assert offset == HOST_TIME_ZONES[zone], f"TZ={zone} did not take effect (tzdata?)"
        yield zone
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
