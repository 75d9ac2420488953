"""The laptop's SparkSession: a local session with the Delta jars, for `--engine spark`,
tests and benchmarks.

Finds the Delta Lake jars ($ZOOM_INGEST_DELTA_JARS, or the user cache), fetches them
from Maven Central once when asked, and builds a small local session (UTC, loopback, no
UI) that can create Delta tables. Databricks needs none of this: the job uses the
session its runtime provides, so nothing on the Databricks path imports this module.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: Environment variable naming the Delta jars for local Spark sessions: a folder of jars,
#: or a `:`-separated list of jar files and folders. Default: `default_jar_cache()`.
DELTA_JARS_ENV = "ZOOM_INGEST_DELTA_JARS"
#: Delta Lake release matching the pinned pyspark (pyproject.toml's `spark` extra).
DELTA_VERSION = "4.0.1"
#: What a local session needs from Maven Central (delta-storage comes with delta-spark;
#: its other dependencies, antlr4-runtime and Scala, ship with pyspark).
DELTA_PACKAGE = f"io.delta:delta-spark_2.13:{DELTA_VERSION}"
DELTA_JAR_NAMES = (f"delta-spark_2.13-{DELTA_VERSION}.jar", f"delta-storage-{DELTA_VERSION}.jar")


def default_jar_cache() -> Path:
    """Where `local_session(fetch=True)` keeps the Delta jars it fetched:
    `$XDG_CACHE_HOME/zoom_ingest/jars` (default `~/.cache/zoom_ingest/jars`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zoom_ingest" / "jars"


def delta_jars(spec: str | None = None) -> list[str]:
    """Jar files named by `spec` (default: $ZOOM_INGEST_DELTA_JARS, or when it is unset
    `default_jar_cache()`): folders and files, `:`-separated. Empty when nothing there
    is a jar."""
    if spec is None:
        spec = os.environ.get(DELTA_JARS_ENV)
        if spec is None:
            spec = str(default_jar_cache())
    jars: list[str] = []
    for entry in filter(None, (part.strip() for part in spec.split(os.pathsep))):
        path = Path(entry).expanduser()
        if path.is_dir():
            jars.extend(sorted(glob.glob(str(path / "*.jar"))))
        elif path.is_file() and path.suffix == ".jar":
            jars.append(str(path))
    return jars


def missing_delta_jars(jars: Sequence[str]) -> list[str]:
    """Which of delta-spark and delta-storage `jars` lacks (any version)."""
    names = [Path(jar).name for jar in jars]
    return [
        wanted
        for wanted, prefix in zip(DELTA_JAR_NAMES, ("delta-spark_", "delta-storage-"), strict=True)
        if not any(name.startswith(prefix) for name in names)
    ]


def how_to_get_delta_jars() -> str:
    """One paragraph: how to get the jars onto this machine (skip messages, errors)."""
    where = os.environ.get(DELTA_JARS_ENV) or str(default_jar_cache())
    return (
        f"Delta Lake jars not found in {where} (${DELTA_JARS_ENV}, default "
        f"{default_jar_cache()}): run `make jars` (mvn dependency:copy "
        f"-Dartifact=io.delta:delta-spark_2.13:{DELTA_VERSION} and "
        f"-Dartifact=io.delta:delta-storage:{DELTA_VERSION} into .cache/jars), or put "
        f"{' and '.join(DELTA_JAR_NAMES)} in a folder and set {DELTA_JARS_ENV} to it; "
        "`zoom-ingest run --engine spark` fetches them itself when Maven Central is reachable"
    )


def local_session(
    warehouse: str | Path | None = None,
    jars: Sequence[str] | None = None,
    *,
    fetch: bool = False,
) -> SparkSession:
    """A local SparkSession (UTC, small, no UI), with Delta when there are Delta jars.

    `warehouse`: where managed tables go (default: a new temporary folder). `jars`:
    default `delta_jars()`. `fetch`: when those lack a Delta jar, resolve
    `io.delta:delta-spark_2.13` from Maven Central through Spark's own package resolution
    (as delta-spark's `configure_spark_with_delta_pip` does) and copy the jars into
    `default_jar_cache()`, so that later sessions start offline. Databricks needs none of
    this: the job uses the session the runtime provides. Spark allows one session
    configuration per process, so the first call's configuration holds for every later
    call.
    """
    from pyspark.sql import SparkSession

    jars = delta_jars() if jars is None else list(jars)
    resolve = fetch and bool(missing_delta_jars(jars))
    warehouse = Path(warehouse or tempfile.mkdtemp(prefix="zoom_ingest_spark_")).absolute()
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("zoom_ingest")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")  # a local session listens on loopback only
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        # A local table's log fits in one task; Delta's default (50) costs a second a read.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.warehouse.dir", str(warehouse / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse / 'derby'}")
    )
    if resolve:
        cache = default_jar_cache()
        ivy = cache.parent / "ivy"
        log.warning(
            "fetching the Delta Lake jars (%s) from Maven Central into %s; "
            "later runs use them from there",
            DELTA_PACKAGE,
            cache,
        )
        builder = builder.config("spark.jars.packages", DELTA_PACKAGE).config(
            "spark.jars.ivy", str(ivy)
        )
    elif jars:
        builder = builder.config("spark.jars", ",".join(jars))
    if resolve or jars:
        builder = builder.config(
            "spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension"
        ).config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
    session = builder.getOrCreate()
    if resolve:
        _keep_resolved_jars(ivy / "jars", default_jar_cache())
    return session


def _keep_resolved_jars(resolved: Path, cache: Path) -> None:
    """Copy the Delta jars Spark resolved (`io.delta_delta-spark_2.13-4.0.1.jar`) into the
    cache under their Maven names, where `delta_jars()` looks next time."""
    cache.mkdir(parents=True, exist_ok=True)
    for jar in resolved.glob("io.delta_*.jar"):
        target = cache / jar.name.removeprefix("io.delta_")
        if not target.exists():
            partial = target.with_suffix(".part")
            shutil.copyfile(jar, partial)
            partial.replace(target)


def has_delta(spark: SparkSession) -> bool:
    """Whether the session can create Delta tables (the Delta extension is loaded)."""
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "DeltaSparkSessionExtension" in extensions
