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
from collections.abc import Callable
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
        from zoom_ingest.engines.spark import (
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


@pytest.fixture(scope="session")
def delta_spark() -> Any:
    """The shared local SparkSession with Delta; skips (fails under CI) without the jars."""
    return delta_session()
