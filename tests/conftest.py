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
from typing import Any, NoReturn

import pytest

from zoom_ingest.engines import Engine, LocalEngine

EngineFactory = Callable[[Path], Engine]


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_delta(reason: str) -> NoReturn:
    """Skip a test that needs Spark + Delta, saying why; under CI=true fail instead: CI
    has Maven Central and `make test` fetches the jars, so a skip there hides a bug."""
    if on_ci():
        pytest.fail(f"CI=true, and a Spark + Delta test may not skip there: {reason}")
    pytest.skip(reason)


def delta_session() -> Any:
    """The process's one local SparkSession with Delta (shared by every test), or a skip
    (a failure under CI) that says how to get the jars."""
    try:
        from zoom_ingest.engines.spark_session import (
            delta_jars,
            has_delta,
            how_to_get_delta_jars,
            local_session,
            missing_delta_jars,
        )
    except ImportError:
        skip_delta("spark engine: pyspark is not installed (pip install -e '.[spark]')")
    if missing_delta_jars(delta_jars()):
        skip_delta(f"spark engine: {how_to_get_delta_jars()}")
    spark = local_session()  # one per process: the first call's configuration holds
    if not has_delta(spark):
        skip_delta(
            "spark engine: this process's SparkSession started without Delta "
            f"(it was created before the jars were found). {how_to_get_delta_jars()}"
        )
    return spark


def _local_engine(where: Path) -> Engine:
    return LocalEngine(where / "warehouse")


def _spark_engine(where: Path) -> Engine:
    """Delta tables in a schema of the local SparkSession named after `where`."""
    from zoom_ingest.engines.spark import SparkEngine

    spark = delta_session()
    schema = "contract_" + hashlib.sha256(str(where).encode()).hexdigest()[:16]
    return SparkEngine(
        spark, "spark_catalog", schema, conflict_backoff_seconds=0.05, commit_attempts=40
    )


ENGINE_FACTORIES: dict[str, EngineFactory] = {
    "local": _local_engine,
    "spark": _spark_engine,
}


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per session from this tree's sources."""
    from support.wheel import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


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
    cli_tests = ("test_bundle_cli.py", "test_release_rehearsal.py")
    items.sort(key=lambda item: item.path.name in cli_tests)


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


@pytest.fixture(scope="session")
def delta_spark() -> Any:
    """The shared local SparkSession with Delta; skips (fails under CI) without the jars."""
    return delta_session()
