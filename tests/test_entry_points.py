"""The console-script entry points, called the way Databricks' wheel runner calls them.

A python_wheel_task loads the entry point from the wheel's metadata, sets `sys.argv` to
the task's parameters, calls the function and ignores what it returns: a task fails only
on an exception. So every entry point must raise SystemExit with its code when the task
must fail, and each code must mean one thing (`zoom_ingest.exit_codes`).

On Databricks only the wheel and its base requirements are installed (next to the
runtime's pyspark): the job's and the detections' entry points must run with nothing
else. A subprocess here blocks every import outside the standard library, pyspark, and
the base requirements of the wheel built from this tree with what they require in turn
(`Requires-Dist`, read from the wheel: no hand-written list of what to block).
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
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from support.loopback import serve
from support.wheel import allowed_top_level_modules, base_requirements
from zoom_ingest import databricks_job, detections, exit_codes, job
from zoom_ingest.engines.base import EngineBusy, TableSchemaMismatch
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import UTC

ROOT = Path(__file__).resolve().parents[1]
#: A destination table that zoom_ingest did not create.
MISMATCH = TableSchemaMismatch("activity_logs", "main.zoom", ["missing column lw_id string"])


@pytest.fixture(scope="module")
def databricks_modules(built_wheel: Path) -> list[str]:
    """The top-level modules a Databricks run may import besides the standard library:
    the wheel's own package, its base requirements with theirs, and pyspark with its own
    (the runtime brings pyspark)."""
    allowed = allowed_top_level_modules(base_requirements(built_wheel))
    allowed |= allowed_top_level_modules(["pyspark"]) | {"zoom_ingest"}
    return sorted(allowed)


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
    # A destination table with another schema: the user's to fix, 2 from every entry point.
    ingest_without_spark[0] = MISMATCH
    assert exit_code_of("zoom-ingest-job", base, monkeypatch) == exit_codes.BAD_SETTING == 2
    # An error that is no known outcome keeps its traceback (and fails the task).
    ingest_without_spark[0] = ZeroDivisionError("a bug")
    with pytest.raises(ZeroDivisionError):
        exit_code_of("zoom-ingest-job", base, monkeypatch)

    # zoom-ingest-detections: a new alert at --fail-on fails the task, distinctly.
    new: dict[str, int] = {}
    raised: list[BaseException] = []

    def write_detections_spark(
        spark: Any, catalog: str, schema: str, **settings: Any
    ) -> detections.DetectionRun:
        if raised:
            raise raised[0]
        return detections.DetectionRun(
            datetime(2025, 1, 1, tzinfo=UTC), sum(new.values()), dict(new)
        )

    monkeypatch.setattr(detections, "_active_session", lambda: object())
    monkeypatch.setattr(detections, "write_detections_spark", write_detections_spark)
    assert exit_code_of("zoom-ingest-detections", [*base, "--fail-on=high"], monkeypatch) == 0
    new["high"] = 1
    assert exit_code_of("zoom-ingest-detections", [*base, "--fail-on=high"], monkeypatch) == 6
    assert exit_code_of("zoom-ingest-detections", base, monkeypatch) == 0  # no --fail-on
    assert exit_code_of("zoom-ingest-detections", [*base, "--fail-on=urgent"], monkeypatch) == 2
    raised.append(MISMATCH)  # zoom_detections (or another table) with another schema
    assert exit_code_of("zoom-ingest-detections", base, monkeypatch) == exit_codes.BAD_SETTING
    raised[0] = ZeroDivisionError("a bug")
    with pytest.raises(ZeroDivisionError):
        exit_code_of("zoom-ingest-detections", base, monkeypatch)

    # zoom-ingest (local): a bad setting.
    assert exit_code_of("zoom-ingest", ["run", "--lookback", "soon"], monkeypatch) == 2


WORKSPACE_SECRET = "FAKE-workspace-secret-LEAKCHECK-5d1c"


def test_a_workspace_client_that_cannot_be_set_up_is_a_bad_setting(tmp_path: Path) -> None:
    """With a secret scope, the workspace client reads the secrets. When it cannot even be
    made (here: a host and a client secret but no client id, so no way to authenticate),
    the task exits 2 with one line that says so: no traceback, no secret."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABRICKS_", "ZOOM_"))
    }
    with serve(NotFound) as host:  # the SDK asks the host for its metadata first
        env.update(
            {
                "HOME": str(tmp_path),  # no ~/.databrickscfg
                "DATABRICKS_HOST": host,
                "DATABRICKS_CLIENT_SECRET": WORKSPACE_SECRET,
            }
        )
        done = run_job_with_a_scope(env)
    assert done.returncode == exit_codes.BAD_SETTING, done.stderr
    assert "Traceback" not in done.stderr
    assert WORKSPACE_SECRET not in done.stdout + done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "secret_scope" in error and "'zoom_ingest'" in error, error
    assert "workspace client could not be set up (ValueError: " in error, error


class NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def run_job_with_a_scope(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from zoom_ingest.databricks_job import main; main()",
            "--catalog=main",
            "--schema=zoom",
            "--secret-scope=zoom_ingest",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_one_module_declares_the_exit_codes_and_the_docs_list_them() -> None:
    assert (exit_codes.OK, exit_codes.STREAM_FAILED, exit_codes.DAILY_LIMIT) == (0, 1, 3)
    assert (exit_codes.BAD_SETTING, exit_codes.ALERTS) == (2, 6)
    codes = [v for k, v in vars(exit_codes).items() if k.isupper() and isinstance(v, int)]
    assert sorted(codes) == sorted(exit_codes.DESCRIPTIONS) == list(range(8))
    docs = (ROOT / "docs" / "databricks.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in exit_codes.DESCRIPTIONS:
        assert re.search(rf"^\| `{code}` \|", docs, re.M), f"docs/databricks.md: exit {code}"
        assert f"`{code}`" in readme, f"README.md: exit {code}"
    # No entry point keeps a private copy of a code, nor an alias of one.
    for path in (ROOT / "src" / "zoom_ingest").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^EXIT_\w+ = ", text, re.M), path.name
        assert not re.search(r"(sys\.exit|SystemExit)\([1-9]\)", text), path.name


# -- with the base requirements alone ---------------------------------------------------------

BLOCKED_RUN = textwrap.dedent(
    """
    import importlib.abc, importlib.metadata, json, sys

    ALLOWED = set(sys.argv[1].split(",")) | set(sys.stdlib_module_names)
    BEFORE = set(sys.modules)

    def allowed(name):
        # sysconfig's build-time data is standard library under a platform's name; Cython
        # extensions (pyarrow's) register their runtime (`_cython_<version>`, cython_runtime).
        top = name.split(".")[0]
        return top in ALLOWED or top.startswith(("_sysconfigdata_", "_cython_", "cython_"))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if not allowed(name):
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
        def setCurrentCatalog(self, name):
            self.statements.append(f"setCurrentCatalog({name})")
        def setCurrentDatabase(self, name):
            self.statements.append(f"setCurrentDatabase({name})")
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
    loaded = sorted(
        m for m in set(sys.modules) - BEFORE if not allowed(m)
    )
    print(json.dumps({"code": code, "statements": session.statements, "loaded": loaded}))
    """
)


def run_blocked(
    allowed: list[str], name: str, *argv: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, ",".join(allowed), name, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_base_requirements_exclude_the_local_extra(built_wheel: Path) -> None:
    """What the blocked runs below allow is derived from the wheel: this shows that the
    derivation leaves the local-only packages out and keeps what the job imports."""
    names = {r.name for r in base_requirements(built_wheel)}
    assert names >= {"requests", "pyarrow", "databricks-sdk", "iptocc"}, names
    assert not names & {"deltalake", "duckdb", "sqlglot", "rich", "click", "pyspark"}, names


def test_the_job_runs_to_the_write_with_the_base_requirements_alone(
    databricks_modules: list[str],
) -> None:
    pytest.importorskip("pyspark", reason="the Spark engine's types need pyspark")
    start = date.today() - timedelta(days=2)
    with Simulator(seed=11, days=4, activity_per_day=40, operation_per_day=10) as sim:
        env = {
            "ZOOM_ACCOUNT_ID": sim.account_id,
            "ZOOM_CLIENT_ID": sim.client_id,
            "ZOOM_CLIENT_SECRET": sim.client_secret,
        }
        result = run_blocked(
            databricks_modules,
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
    # zoom_ip_countries: the activity rows' addresses, looked up with iptocc.
    tables = ("activity_logs", "operation_logs", "zoom_ip_countries", "zoom_ingest_checkpoints")
    for table in tables:
        assert [s for s in merged if f"`main`.`zoom`.`{table}`" in s], table


def test_the_detections_task_runs_to_the_write_with_the_base_requirements_alone(
    databricks_modules: list[str],
) -> None:
    pytest.importorskip("pyspark", reason="the Spark engine's types need pyspark")
    result = run_blocked(
        databricks_modules, "zoom-ingest-detections", "--catalog=main", "--schema=zoom"
    )
    assert result["loaded"] == []
    assert result["code"] == 0, result
    statements = result["statements"]
    assert any(
        s.startswith("CREATE TABLE IF NOT EXISTS `main`.`zoom`.`zoom_detections`")
        for s in statements
    )
    assert any(s.startswith("SELECT `alert_id`") for s in statements)


def test_the_local_command_says_how_to_install_its_extra(databricks_modules: list[str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKED_RUN.split("class Row", 1)[0] + "from zoom_ingest.console import main\nmain()\n",
            ",".join(databricks_modules),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == exit_codes.BAD_SETTING, done.stderr
    assert "pip install 'zoom-ingest[local]'" in done.stderr
    assert "Traceback" not in done.stderr
