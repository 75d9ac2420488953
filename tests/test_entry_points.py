"""The console-script entry points, called the way Databricks' wheel runner calls them.

A python_wheel_task loads the entry point from the wheel's metadata, sets `sys.argv` to
the task's parameters, calls the function and ignores what it returns: a task fails only
on an exception. So every entry point must raise SystemExit with its code when the task
must fail, and each code must mean one thing (`zoom_ingest.exit_codes`).

On Databricks only the wheel's runtime dependencies are installed: the job's and the
detections' entry points must run without the `local` extra (deltalake, duckdb, sqlglot,
rich, click), which a subprocess here blocks from being imported at all.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from zoom_ingest import databricks_job, detections, exit_codes, job
from zoom_ingest.engines.base import EngineBusy
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import UTC

ROOT = Path(__file__).resolve().parents[1]
LOCAL_EXTRA = ("deltalake", "duckdb", "sqlglot", "rich", "click")


def console_scripts() -> set[str]:
    installed = importlib.metadata.distribution("zoom-ingest")
    return {e.name for e in installed.entry_points if e.group == "console_scripts"}


def call_as_the_runner(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Load `name` from the installed metadata, set sys.argv, call it without arguments."""
    [entry_point] = importlib.metadata.entry_points(group="console_scripts", name=name)
    monkeypatch.setattr(sys, "argv", [name, *argv])
    return entry_point.load()()


def exit_code_of(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """The code the runner sees: 0 when the function returns, else SystemExit's code."""
    try:
        returned = call_as_the_runner(name, argv, monkeypatch)
    except SystemExit as exc:
        assert exc.code not in (None, 0), "a successful run must not raise"
        return int(exc.code)  # type: ignore[arg-type]
    assert returned in (None, 0), f"{name} returned {returned!r}: the runner ignores that"
    return 0


class Summary:
    def __init__(self, code: int) -> None:
        self.exit_code = code

    def lines(self) -> list[str]:
        return [f"summary with exit code {self.exit_code}"]


@pytest.fixture
def ingest_without_spark(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """zoom-ingest-job with the session, the engine and the run stubbed; returns a list
    that decides what the next run does (an exit code, or an exception to raise)."""
    outcome: list[Any] = [exit_codes.OK]

    def run(settings: Any, engine: Any, progress: bool, **where: Any) -> Summary:
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return Summary(outcome[0])

    monkeypatch.setattr(databricks_job, "get_spark", lambda: object())
    monkeypatch.setattr(
        databricks_job,
        "SparkEngine",
        lambda *a, **k: type("E", (), {"describe": lambda self: "stub"})(),
    )
    monkeypatch.setattr(job, "run", run)
    for env, value in {"ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "c"}.items():
        monkeypatch.setenv(env, value)
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", "not-logged")
    return outcome


def test_every_wheel_entry_point_fails_the_task_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, ingest_without_spark: list[Any]
) -> None:
    assert set(console_scripts()) == {"zoom-ingest", "zoom-ingest-job", "zoom-ingest-detections"}
    base = ["--catalog=main", "--schema=zoom"]

    # zoom-ingest-job: each outcome of the run, as the task sees it.
    assert exit_code_of("zoom-ingest-job", [*base, "--lookback=soon"], monkeypatch) == 2
    assert exit_code_of("zoom-ingest-job", ["--schema=zoom"], monkeypatch) == 2
    assert exit_code_of("zoom-ingest-job", [*base, "--no-such-flag=1"], monkeypatch) == 2
    # BUSY as a summary's code: another run held the Zoom account's lease.
    for code in (exit_codes.OK, exit_codes.STREAM_FAILED, exit_codes.DAILY_LIMIT, exit_codes.BUSY):
        ingest_without_spark[0] = code
        assert exit_code_of("zoom-ingest-job", base, monkeypatch) == code
    ingest_without_spark[0] = EngineBusy("another run in this process is writing to main.zoom")
    assert exit_code_of("zoom-ingest-job", base, monkeypatch) == exit_codes.BUSY

    # zoom-ingest-detections: a new alert at --fail-on fails the task, distinctly.
    new: dict[str, int] = {}
    monkeypatch.setattr(detections, "_active_session", lambda: object())
    monkeypatch.setattr(
        detections,
        "write_detections_spark",
        lambda spark, catalog, schema, **settings: detections.DetectionRun(
            datetime(2025, 1, 1, tzinfo=UTC), sum(new.values()), dict(new)
        ),
    )
    assert exit_code_of("zoom-ingest-detections", [*base, "--fail-on=high"], monkeypatch) == 0
    new["high"] = 1
    assert exit_code_of("zoom-ingest-detections", [*base, "--fail-on=high"], monkeypatch) == 6
    assert exit_code_of("zoom-ingest-detections", base, monkeypatch) == 0  # no --fail-on
    assert exit_code_of("zoom-ingest-detections", [*base, "--fail-on=urgent"], monkeypatch) == 2

    # zoom-ingest (local): a bad setting.
    assert exit_code_of("zoom-ingest", ["run", "--lookback", "soon"], monkeypatch) == 2


def test_one_module_declares_the_exit_codes_and_the_docs_list_them() -> None:
    assert (job.EXIT_OK, job.EXIT_STREAM_FAILED, job.EXIT_DAILY_LIMIT) == (0, 1, 3)
    assert databricks_job.EXIT_SETTINGS == exit_codes.BAD_SETTING == 2
    assert detections.EXIT_ALERTS == exit_codes.ALERTS
    codes = [v for k, v in vars(exit_codes).items() if k.isupper() and isinstance(v, int)]
    assert sorted(codes) == sorted(exit_codes.DESCRIPTIONS) == list(range(7))
    docs = (ROOT / "docs" / "databricks.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in exit_codes.DESCRIPTIONS:
        assert re.search(rf"^\| `{code}` \|", docs, re.M), f"docs/databricks.md: exit {code}"
        assert f"`{code}`" in readme, f"README.md: exit {code}"
    # No entry point keeps a private copy of a code.
    for path in (ROOT / "src" / "zoom_ingest").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^EXIT_\w+ = \d", text, re.M), path.name
        assert not re.search(r"(sys\.exit|SystemExit)\([1-9]\)", text), path.name


# -- without the local extra ---------------------------------------------------------------

BLOCKED_RUN = textwrap.dedent(
    """
    import importlib.abc, importlib.metadata, json, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Block())

    class Row(dict):
        def asDict(self):
            return dict(self)

    class Frame:
        def __init__(self, spark, rows=(), batch=None):
            self.spark, self.rows, self.batch = spark, list(rows), batch
        def collect(self):
            return self.rows
        def createOrReplaceTempView(self, name):
            self.spark.views[name] = self.batch.num_rows
            if "expires_at" in self.batch.column_names:  # the lease row, as written
                self.spark.lease = self.batch.to_pylist()[0]

    class Session:
        # What the Spark engine asks of a session, recorded: no JVM needed.
        version = "4.0.1"
        def __init__(self):
            self.statements, self.views = [], {}
            self.conf = self
            self.catalog = self
        def set(self, key, value):
            pass
        def dropTempView(self, name):
            self.views.pop(name, None)
        def setCurrentCatalog(self, name):
            self.statements.append(f"USE CATALOG `{name}`")
        def setCurrentDatabase(self, name):
            self.statements.append(f"USE SCHEMA `{name}`")
        def table(self, name):
            raise RuntimeError("[TABLE_OR_VIEW_NOT_FOUND] " + name)
        def createDataFrame(self, batch, schema=None):
            return Frame(self, batch=batch)
        def sql(self, statement, args=None):
            self.statements.append(statement)
            if statement.startswith("SELECT `run_id`") and "zoom_ingest_leases" in statement:
                # Who holds the lease: the last writer (no other run here).
                expires = self.lease["expires_at"].timestamp() * 1_000_000
                return Frame(self, [Row(run_id=self.lease["run_id"], expires_micros=expires)])
            if statement.startswith("MERGE INTO"):
                view = statement.split(" USING `", 1)[1].split("`", 1)[0]
                return Frame(self, [Row(num_inserted_rows=self.views[view])])
            return Frame(self)

    session = Session()
    name = sys.argv[2]
    [entry_point] = importlib.metadata.entry_points(group="console_scripts", name=name)
    main = entry_point.load()
    module = sys.modules[entry_point.module]
    setattr(module, "get_spark" if name == "zoom-ingest-job" else "_active_session",
            lambda: session)
    sys.argv = [name, *sys.argv[3:]]
    try:
        code = main() or 0
    except SystemExit as exc:
        code = exc.code
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"code": code, "statements": session.statements, "loaded": loaded}))
    """
)


def run_blocked(name: str, *argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, ",".join(LOCAL_EXTRA), name, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_job_runs_to_the_write_without_the_local_extra() -> None:
    pytest.importorskip("pyspark", reason="the Spark engine's types need pyspark")
    start = date.today() - timedelta(days=2)
    with Simulator(seed=11, days=4, activity_per_day=40, operation_per_day=10) as sim:
        env = {
            "ZOOM_ACCOUNT_ID": sim.account_id,
            "ZOOM_CLIENT_ID": sim.client_id,
            "ZOOM_CLIENT_SECRET": sim.client_secret,
        }
        result = run_blocked(
            "zoom-ingest-job",
            "--catalog=main",
            "--schema=zoom",
            f"--backfill-start={start.isoformat()}",
            "--requests-per-second=200",
            f"--api-url={sim.api_url}",
            f"--oauth-url={sim.oauth_url}",
            env=env,
        )
    assert result["loaded"] == []
    assert result["code"] == 0, result
    merged = [s for s in result["statements"] if s.startswith("MERGE INTO")]
    for table in ("activity_logs", "operation_logs", "zoom_ingest_checkpoints"):
        assert [s for s in merged if f"`main`.`zoom`.`{table}`" in s], table


def test_the_detections_task_runs_to_the_write_without_the_local_extra() -> None:
    pytest.importorskip("pyspark", reason="the Spark engine's types need pyspark")
    result = run_blocked("zoom-ingest-detections", "--catalog=main", "--schema=zoom")
    assert result["loaded"] == []
    assert result["code"] == 0, result
    statements = result["statements"]
    assert any(
        s.startswith("CREATE TABLE IF NOT EXISTS `main`.`zoom`.`zoom_detections`")
        for s in statements
    )
    assert any(s.startswith("SELECT `alert_id`") for s in statements)


def test_the_local_command_says_how_to_install_its_extra() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKED_RUN.split("class Row", 1)[0] + "from zoom_ingest.console import main\nmain()\n",
            ",".join(LOCAL_EXTRA),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == exit_codes.BAD_SETTING, done.stderr
    assert "pip install 'zoom-ingest[local]'" in done.stderr
    assert "Traceback" not in done.stderr
