"""A local Spark Connect server with Delta on 127.0.0.1, started and always stopped by a test.

Serverless Databricks runs a job's Python over Spark Connect: the process has a Spark
Connect client and no JVM. Tests that want that shape start this server (the JVM side,
from the pyspark that runs the tests: its `spark-submit` and its Spark Connect jar) and
point a client at the URL it yields:

    from support.spark_connect import SparkConnectUnavailable, spark_connect_server

    try:
        with spark_connect_server(tmp_path) as url:  # "sc://127.0.0.1:PORT"
            spark = SparkSession.builder.remote(url).getOrCreate()  # needs grpcio, ...
    except SparkConnectUnavailable as exc:
        skip_delta(str(exc))  # conftest: a skip here, a failure under CI=true

Tables are Delta (the Delta jars of `zoom_ingest.engines.spark_session.delta_jars()`, i.e.
$ZOOM_INGEST_DELTA_JARS, with the Delta SQL extension and catalog) in a warehouse folder
under `work_dir`. The server's output goes to `work_dir/spark-connect.log`; a server that
does not come up within `startup_seconds` raises with the end of that log.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The class `start-connect-server.sh` runs (Spark 4.0 ships it in pyspark's jars).
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
STARTUP_SECONDS = 180.0
STOP_SECONDS = 30.0
LOG_TAIL_CHARS = 4000


class SparkConnectUnavailable(RuntimeError):
    """This machine cannot start the server (no Java, no pyspark, no Delta jars): why."""


class SparkConnectFailed(RuntimeError):
    """The server was started but did not come up, or died: with the end of its log."""


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_command(work_dir: Path, port: int, jars: list[str]) -> list[str]:
    """The `spark-submit` command line of a Spark Connect server with Delta on `port`."""
    spark_home = _spark_home()
    warehouse = work_dir / "spark-warehouse"
    conf = {
        "spark.master": "local[2]",
        "spark.app.name": "zoom_ingest spark connect",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={work_dir / 'derby'}",
        "spark.jars": ",".join(jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # A local table's log fits in one task; Delta's default (50) costs a second a read.
        "spark.databricks.delta.snapshotPartitions": "2",
    }
    command = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    # No application jar: the class is on Spark's own classpath.
    return [*command, "spark-internal"]


@contextmanager
def spark_connect_server(
    work_dir: str | Path,
    *,
    jars: list[str] | None = None,
    startup_seconds: float = STARTUP_SECONDS,
) -> Iterator[str]:
    """Start a Spark Connect server with Delta; yield its URL, `sc://127.0.0.1:PORT`.

    `work_dir`: a folder private to the caller (warehouse, metastore, log). `jars`: the
    Delta jars (default `delta_jars()`). Raises SparkConnectUnavailable when this machine
    lacks what the server needs, SparkConnectFailed when it does not come up in time. The
    server (its whole process group) is stopped when the `with` ends."""
    work_dir = Path(work_dir).absolute()
    work_dir.mkdir(parents=True, exist_ok=True)
    jars = _delta_jars() if jars is None else list(jars)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise SparkConnectUnavailable("no Java (java on PATH or $JAVA_HOME) for Spark")
    port = free_port()
    log_path = work_dir / "spark-connect.log"
    env = {**os.environ, "SPARK_HOME": str(_spark_home())}
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(work_dir, port, jars),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work_dir,
            start_new_session=True,  # its own process group: stopped whole, JVM included
        )
    try:
        _wait_until_listening(process, port, startup_seconds, log_path)
        yield f"sc://127.0.0.1:{port}"
    finally:
        _stop(process)


def log_tail(log_path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of the server's log, for failure messages."""
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


def _wait_until_listening(
    process: subprocess.Popen[bytes], port: int, seconds: float, log_path: Path
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SparkConnectFailed(
                f"the Spark Connect server exited with {process.returncode} before "
                f"listening on 127.0.0.1:{port}:\n{log_tail(log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise SparkConnectFailed(
        f"the Spark Connect server did not listen on 127.0.0.1:{port} within "
        f"{seconds:.0f} s:\n{log_tail(log_path)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _spark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SparkConnectUnavailable("pyspark is not installed (pip install -e '.[spark]')")
    home = Path(spec.origin).parent
    if not (home / "bin" / "spark-submit").is_file():
        raise SparkConnectUnavailable(f"pyspark at {home} has no bin/spark-submit")
    if not list((home / "jars").glob("spark-connect_*.jar")):
        raise SparkConnectUnavailable(f"pyspark at {home} has no Spark Connect server jar")
    return home


def _delta_jars() -> list[str]:
    from zoom_ingest.engines.spark_session import (
        delta_jars,
        how_to_get_delta_jars,
        missing_delta_jars,
    )

    jars = delta_jars()
    if missing_delta_jars(jars):
        raise SparkConnectUnavailable(how_to_get_delta_jars())
    return jars
