"""The release, rehearsed as serverless Databricks runs it: every task of the bundle, called
as the wheel runner calls it, in a venv holding only the wheel, its base requirements and
the Spark Connect client, against a local Spark Connect server with Delta.

- The wheel is built from this tree (`pip wheel --no-deps`) and installed into a clean
  venv with Python 3.12 (serverless environment 4 runs Python 3.12.3) and the Spark 4.0
  Connect client `pyspark-client==4.0.1`. What this cannot match of environment 4: its
  client is Databricks Connect 17.2 (Spark 4.0 plus Databricks' additions), this one
  open-source Spark Connect 4.0.1; the pre-installed packages of environment 4 are not
  there, only what the wheel requires (the stricter case: nothing the wheel forgets is
  provided by accident); the server is open-source Spark 4.0.1 with Delta 4.0.1 in the
  `spark_catalog` catalog, not Unity Catalog. The venv is cached under .cache/ keyed by
  the wheel's requirements, so later runs only reinstall the wheel.
- Every task comes from the genuine Databricks CLI's `bundle validate -o json` (dev
  target): its entry point, parameters, for_each inputs and the job parameters' defaults.
- Zoom is the simulator, with planted security scenarios; the job finds it through the
  ZOOM_API_URL / ZOOM_OAUTH_URL environment a user would set.
- Secrets come through databricks-sdk's WorkspaceClient, as on Databricks, from the CLI's
  own fake workspace (tests/workspace_standin) serving the secrets API on 127.0.0.1.

Needs Java, the Delta jars, the CLI and the stand-in (`make test` provides all four, and
CI has them): without them the test skips and says why, and under CI=true it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import skip_delta
from support.spark_connect import SparkConnectUnavailable, spark_connect_server
from support.wheel import allowed_top_level_modules, base_requirements
from zoom_ingest import exit_codes, scenarios
from zoom_ingest.normalise import Batch
from zoom_ingest.queries import DETECTIONS
from zoom_ingest.simulator import Simulator
from zoom_ingest.zoom import STREAMS_BY_NAME

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
#: The Spark Connect client closest to serverless environment 4 (Spark 4.0): the thin one.
CONNECT_CLIENT = "pyspark-client==4.0.1"
SCOPE = "zoom_ingest"
CATALOG = "spark_catalog"
SCHEMA = "zoom_rehearsal"
TASK_SECONDS = 600
BUNDLE_FILES = ("databricks.yml", "resources", "src", "notebooks", "pyproject.toml")
BUNDLE_FILES += ("README.md", "LICENSE")

#: Runs one task in the clean venv the way Databricks' wheel runner does: the entry point
#: from the installed wheel's metadata, sys.argv = [package_name, *parameters], SystemExit
#: mapped to the exit code. Prints the code and the modules the task imported.
RUNNER = textwrap.dedent(
    """
    import importlib.metadata, json, sys
    package, entry, parameters = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    before = set(sys.modules)
    [point] = importlib.metadata.entry_points(group="console_scripts", name=entry)
    sys.argv = [package, *parameters]
    try:
        point.load()()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    imported = sorted({m.split(".")[0] for m in set(sys.modules) - before})
    print("REHEARSAL " + json.dumps({"code": code, "imported": imported}), flush=True)
    """
)

#: Reads a query's rows over Spark Connect in the clean venv, as JSON.
QUERY = textwrap.dedent(
    """
    import json, sys
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.getOrCreate()
    rows = [r.asDict() for r in spark.sql(sys.argv[1]).collect()]
    print(json.dumps(rows, default=str))
    """
)


# --------------------------------------------------------------------------- the venv


def python_312() -> tuple[str, str]:
    """A Python 3.12 interpreter (environment 4's), or the running one, and a note."""
    candidates = [shutil.which("python3.12")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.12*/bin/python3"))
    for candidate in filter(None, candidates):
        try:  # a pyenv shim exists even when no 3.12 is selected: ask the interpreter
            version = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except OSError:
            continue
        if version == "(3, 12)":
            return candidate, "Python 3.12, as serverless environment 4"
    return sys.executable, f"no Python 3.12 here: ran on {sys.version.split()[0]}"


def clean_venv(wheel: Path) -> tuple[Path, str]:
    """The venv with only the wheel, its requirements and the Connect client; cached."""
    interpreter, note = python_312()
    requirements = [str(r) for r in base_requirements(wheel)]
    key = hashlib.sha256(
        json.dumps([interpreter, CONNECT_CLIENT, sorted(requirements)]).encode()
    ).hexdigest()[:16]
    venv = CACHE / f"rehearsal-venv-{key}"
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not (venv / "ready").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=300)
        done = subprocess.run(
            [*install, str(wheel), CONNECT_CLIENT], capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stderr[-3000:]
        (venv / "ready").write_text(note)
    done = subprocess.run(
        [*install, "--no-deps", "--force-reinstall", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return python, note


def site_packages(python: Path) -> list[str]:
    code = "import json, site; print(json.dumps(site.getsitepackages()))"
    return json.loads(subprocess.check_output([str(python), "-c", code], text=True, timeout=60))


# --------------------------------------------------------------------------- the CLI


def binary(env: str, name: str) -> Path:
    from test_bundle_cli import _wait_for_the_build

    _wait_for_the_build()  # `make test` builds the CLI and the stand-in meanwhile
    given = os.environ.get(env)
    path = Path(given) if given else CACHE / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        skip_delta(f"no {name} at {path} (or ${env}): run `make cli`")
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = binary("ZOOM_INGEST_WORKSPACE_STANDIN", "workspace-standin")
    log = tmp_path_factory.mktemp("standin") / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    assert process.stdin is not None and process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url + log.read_text()
    yield url
    process.stdin.close()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


def api(url: str, token: str, endpoint: str, body: dict[str, Any]) -> None:
    import urllib.request

    request = urllib.request.Request(
        url + endpoint,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def validated_bundle(cli: Path, url: str, token: str, folder: Path, rps: int) -> dict[str, Any]:
    folder.mkdir(parents=True)
    for name in BUNDLE_FILES:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, folder / name, ignore=ignore)
        else:
            shutil.copy2(source, folder / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "BUNDLE_"))}
    env.update(
        {"HOME": str(folder), "DATABRICKS_HOST": url, "DATABRICKS_TOKEN": token}
        | {"DATABRICKS_BUNDLE_ENGINE": "direct", "NO_PROXY": "127.0.0.1"}
    )
    variables = {"catalog": CATALOG, "warehouse_id": "0123456789abcdef", "schema": SCHEMA}
    variables["requests_per_second"] = str(rps)
    done = subprocess.run(
        [str(cli), "bundle", "validate", "-o", "json", "-t", "dev"]
        + [f"--var={k}={v}" for k, v in variables.items()],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- the tasks


def resolve(text: str, values: dict[str, str]) -> str:
    """`{{job.parameters.x}}` and `{{input.x}}` references replaced by their values."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        assert name in values, f"unresolved reference {{{{{name}}}}}"
        return values[name]

    return re.sub(r"\{\{\s*([\w.]+)\s*\}\}", value, text)


def wheel_tasks(config: dict[str, Any], overrides: dict[str, str]) -> list[dict[str, Any]]:
    """Every python_wheel_task of every job, once per for_each input, its parameters
    resolved from the job parameters' defaults (with `overrides`, as "Run now with
    different parameters" gives them) and the input."""
    tasks: list[dict[str, Any]] = []
    for job_key, job in config["resources"]["jobs"].items():
        parameters = {p["name"]: str(p.get("default", "")) for p in job.get("parameters", [])}
        parameters |= {k: v for k, v in overrides.items() if k in parameters}
        values = {f"job.parameters.{k}": v for k, v in parameters.items()}
        for task in job.get("tasks", []):
            loop = task.get("for_each_task")
            inner = loop["task"] if loop else task
            wheel = inner.get("python_wheel_task")
            if not wheel:
                continue
            inputs = json.loads(resolve(loop["inputs"], values)) if loop else [None]
            for item in inputs:
                scope = dict(values)
                if isinstance(item, dict):
                    scope |= {f"input.{k}": str(v) for k, v in item.items()}
                elif item is not None:
                    scope["input"] = str(item)
                if wheel.get("named_parameters"):
                    argv = [
                        f"--{k}={resolve(str(v), scope)}"
                        for k, v in wheel["named_parameters"].items()
                    ]
                else:
                    argv = [resolve(str(p), scope) for p in wheel.get("parameters", [])]
                tasks.append(
                    {
                        "job": job_key,
                        "task": inner["task_key"],
                        "package": wheel["package_name"],
                        "entry_point": wheel["entry_point"],
                        "argv": argv,
                        "mode": parameters.get("mode", ""),
                    }
                )
    return tasks


def rehearsal_order(task: dict[str, Any]) -> tuple[int, str]:
    """Hourly ingest, then the daily reconcile, then the detections."""
    if task["entry_point"] == "zoom-ingest-detections":
        return 2, task["job"]
    return (1 if task["mode"] == "reconcile" else 0), task["job"]


def runner_arguments(task: dict[str, Any]) -> list[str]:
    return [task["package"], task["entry_point"], json.dumps(task["argv"])]


def lw_ids(stream: str, records: list[Any]) -> set[str]:
    batch = Batch(STREAMS_BY_NAME[stream].spec)
    batch.add(records)
    return set(batch.rows)


# --------------------------------------------------------------------------- the test


def test_the_release_runs_as_serverless_runs_it(
    built_wheel: Path, standin: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    cli = binary("DATABRICKS_CLI", "databricks")
    python, interpreter_note = clean_venv(built_wheel)
    print(f"rehearsal venv: {interpreter_note}; client {CONNECT_CLIENT}")
    token = f"dbapi0{uuid.uuid4().hex}"

    # 20 days: the backfill (from the first midnight) holds more than the 14 days of history
    # a new-country sign-in needs, so every detection but the gap has planted alerts to find.
    with Simulator(seed=23, days=20, activity_per_day=40, operation_per_day=10) as sim:
        backfill_start = (sim.start_time + timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        planted = scenarios.plant_standard_scenarios(sim, history_start=backfill_start)
        promised = {a.detection for a in scenarios.alerts_of(planted)}
        assert promised == set(DETECTIONS) - {"activity_gap"}, promised  # no gap planted
        backfill = backfill_start.date().isoformat()
        config = validated_bundle(cli, standin, token, tmp_path / "bundle", rps=200)
        tasks = sorted(wheel_tasks(config, {"backfill_start": backfill}), key=rehearsal_order)
        entry_points = {t["entry_point"] for t in tasks}
        assert entry_points == {"zoom-ingest-job", "zoom-ingest-detections"}, tasks

        # The secrets, in the scope the job parameters name, in the fake workspace.
        api(standin, token, "/api/2.0/secrets/scopes/create", {"scope": SCOPE})
        for key, value in (
            ("account_id", sim.account_id),
            ("client_id", sim.client_id),
            ("client_secret", sim.client_secret),
        ):
            api(
                standin,
                token,
                "/api/2.0/secrets/put",
                {"scope": SCOPE, "key": key} | {"string_value": value},
            )

        try:
            server = spark_connect_server(tmp_path / "spark")
            url = server.__enter__()
        except SparkConnectUnavailable as exc:
            skip_delta(str(exc))
        try:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DATABRICKS_", "ZOOM_", "SPARK_", "PYSPARK_"))
            }
            env |= {
                "HOME": str(tmp_path),
                "SPARK_REMOTE": url,
                "DATABRICKS_HOST": standin,
                "DATABRICKS_TOKEN": token,
                "ZOOM_API_URL": sim.api_url,
                "ZOOM_OAUTH_URL": sim.oauth_url,
                "NO_PROXY": "127.0.0.1",
            }
            allowed = allowed_top_level_modules(
                base_requirements(built_wheel), site_packages(python)
            )
            allowed |= allowed_top_level_modules(
                [CONNECT_CLIENT.split("=")[0]], site_packages(python)
            )
            allowed |= {"zoom_ingest", "pyspark"} | set(sys.stdlib_module_names)

            def run(
                task: dict[str, Any], extra_env: dict[str, str] | None = None
            ) -> dict[str, Any]:
                done = subprocess.run(
                    [str(python), "-c", RUNNER, *runner_arguments(task)],
                    env=env | (extra_env or {}),
                    capture_output=True,
                    text=True,
                    timeout=TASK_SECONDS,
                    cwd=tmp_path,
                )
                lines = [x for x in done.stdout.splitlines() if x.startswith("REHEARSAL ")]
                assert lines, f"{task['job']}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
                result = json.loads(lines[-1].removeprefix("REHEARSAL "))
                result["stderr"] = done.stderr
                outside = [
                    m
                    for m in result["imported"]
                    if m not in allowed and not m.startswith(("_", "cython_"))
                ]
                assert outside == [], (
                    f"{task['job']} imported {outside} outside the wheel's requirements"
                )
                assert sim.client_secret not in done.stdout + done.stderr
                return result

            def query(sql: str) -> list[dict[str, Any]]:
                done = subprocess.run(
                    [str(python), "-c", QUERY, sql],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert done.returncode == 0, done.stderr[-3000:]
                return json.loads(done.stdout.splitlines()[-1])

            codes: dict[str, int] = {}
            for task in tasks:
                result = run(task)
                codes[task["job"]] = result["code"]
                want = exit_codes.OK
                if task["entry_point"] == "zoom-ingest-detections":
                    # The planted high alerts are new: the bundle's fail_on (high) fails
                    # the run with exit 6, so that failure_email hears of them.
                    assert "--fail-on=high" in task["argv"], task["argv"]
                    want = exit_codes.ALERTS
                assert result["code"] == want, f"{task['job']}: {result['stderr'][-4000:]}"
            assert set(codes) >= {"zoom_ingest", "zoom_ingest_reconcile"}, codes

            # Exact rows: what the simulator serves from the backfill start, by lw_id.
            table = f"`{CATALOG}`.`{SCHEMA}`"
            first = sim.start_time.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
                days=1
            )
            for stream in ("activity_logs", "operation_logs"):
                truth = lw_ids(stream, sim.ground_truth(stream, first))
                stored = {r["lw_id"] for r in query(f"SELECT lw_id FROM {table}.{stream}")}
                assert stored == truth, (stream, len(stored), len(truth))
                assert truth, stream
            cursors = query(f"SELECT stream, cursor FROM {table}.zoom_ingest_checkpoints")
            assert {r["stream"] for r in cursors} == {"activity_logs", "operation_logs"}
            assert all(r["cursor"] > backfill for r in cursors), cursors
            runs = query(f"SELECT stream, status FROM {table}.zoom_ingest_runs")
            assert len(runs) >= 4 and {r["status"] for r in runs} == {"succeeded"}, runs
            countries = query(f"SELECT ip_address, country FROM {table}.zoom_ip_countries")
            assert countries and any(r["country"] for r in countries), countries[:5]
            stored_alerts = {
                r["alert_id"] for r in query(f"SELECT alert_id FROM {table}.zoom_detections")
            }
            expected = {a.alert_id: a for a in scenarios.alerts_of(planted)}
            missing = [a.as_row() for k, a in expected.items() if k not in stored_alerts]
            assert missing == [], missing

            # A bad workspace token: the secrets cannot be read, a bad setting.
            [ingest] = [t for t in tasks if t["job"] == "zoom_ingest"][:1]
            bad = run(ingest, {"DATABRICKS_TOKEN": "dbapi0" + "0" * 8 + "-not-a-token"})
            assert bad["code"] == exit_codes.BAD_SETTING, bad["stderr"][-3000:]
            assert "Traceback" not in bad["stderr"]
        finally:
            server.__exit__(None, None, None)
    print(f"rehearsal wall time {time.monotonic() - started:.0f} s; exit codes {codes}")
