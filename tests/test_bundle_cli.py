"""The genuine Databricks CLI judges the bundle: `bundle validate -o json` on each target,
then `bundle deploy` against a stand-in for the workspace API on 127.0.0.1.

The CLI and the stand-in (tests/workspace_standin: the CLI's own fake workspace, the one
its acceptance tests run the binary against) are built from the CLI's Go module by
`make cli` / `make test` into .cache/bin (scripts/databricks_cli.sh: from the Go module,
or from the CLI's source tarball when the module proxy refuses it); DATABRICKS_CLI and
ZOOM_INGEST_WORKSPACE_STANDIN name other builds. Without them every test here skips and
says why; under CI=true they fail instead, since CI builds them. The deploy uses the
`direct` engine (the terraform engine would download Terraform), builds the wheel
offline, and talks to nothing but the stand-in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from conftest import on_ci
from zoom_ingest import detections, exit_codes

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".cache" / "bin"
USER = "tester@databricks.com"  # the stand-in's current user for a dbapi0… token
SERVICE_PRINCIPAL = "aaaaaaaa-bbbb-4ccc-dddd-eeeeeeeeeeee"
WAREHOUSE = "8ec9edc1-db0c-40df-af8d-7580020fe61e"
CATALOG = "zoom_catalog"
FAILURE_EMAIL = "zoom-alerts@example.com"
JOB_PARAMETER = re.compile(r"\{\{job\.parameters\.(\w+)\}\}")
INPUT_FIELD = re.compile(r"\{\{input\.(\w+)\}\}")
# What the bundle deploys from (the rest of the repo is not part of it).
BUNDLE_FILES = ("databricks.yml", "resources", "src", "notebooks", "pyproject.toml")
BUNDLE_FILES += ("README.md", "LICENSE")
TIMEOUT = 300
BUILD_WAIT_SECONDS = 900


def _unavailable(reason: str) -> NoReturn:
    """Skip, saying why; under CI=true fail instead: `make test` builds the CLI there (from
    the vendored source when the module proxy refuses it), so a skip would hide a bug."""
    if on_ci():
        pytest.fail(f"CI=true, and the genuine-CLI tests may not skip there: {reason}")
    pytest.skip(reason)


def _wait_for_the_build() -> None:
    """`make test` builds the CLI in the background (its pid in .cache/cli-build.pid)."""
    pid_file = ROOT / ".cache" / "cli-build.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            # A finished build stays a zombie until make's shell reaps it, after pytest.
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state == "Z":
            return
        time.sleep(2)
    _unavailable(f"the CLI build (pid {pid}) took over {BUILD_WAIT_SECONDS} s; see .cache/bin")


def _binary(env: str, name: str) -> Path:
    _wait_for_the_build()
    given = os.environ.get(env)
    path = Path(given) if given else BIN / name
    if path.is_file() and os.access(path, os.X_OK):
        return path
    why = BIN / "databricks.unavailable"
    reason = why.read_text().strip() if why.is_file() else "run `make cli` to build it"
    _unavailable(f"no {name} at {path} (or ${env}): {reason}")


@pytest.fixture(scope="module")
def cli() -> Path:
    path = _binary("DATABRICKS_CLI", "databricks")
    version = subprocess.run(
        [str(path), "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    # The Go CLI ("Databricks CLI v1.13.0"), not the legacy Python package's `databricks`.
    assert re.match(r"Databricks CLI v\d+\.\d+\.\d+", version), version
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = _binary("ZOOM_INGEST_WORKSPACE_STANDIN", "workspace-standin")
    # A file, not a pipe: a full pipe would stall the stand-in mid-request.
    log = tmp_path_factory.mktemp("standin") / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    assert process.stdin is not None and process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url + log.read_text()
    yield url
    process.stdin.close()  # the stand-in stops when its stdin closes
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
    errors = log.read_text()
    # A request the fake workspace has no handler for is an API call nobody checked.
    assert "standin: error:" not in errors, errors[-3000:]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_bundle(tmp_path_factory.mktemp("bundle"))


def copy_bundle(folder: Path) -> Path:
    """A copy of the bundle's files: deploy writes dist/, build/ and .databricks/."""
    for name in BUNDLE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, folder / name)
    return folder


def cli_env(url: str, home: Path, token: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABRICKS_", "BUNDLE_VAR_", "ZOOM_"))
        and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        {
            "HOME": str(home),  # no ~/.databrickscfg of the person running the tests
            "DATABRICKS_HOST": url,
            "DATABRICKS_TOKEN": token,
            "DATABRICKS_BUNDLE_ENGINE": "direct",
            "NO_PROXY": "127.0.0.1",
            # The artifact's build (`python3 -m pip wheel … .`) runs this venv's Python,
            # offline: the build backend is installed here (dev extra), not fetched.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PIP_NO_INDEX": "1",
            "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of --no-build-isolation
        }
    )
    return env


class Cli:
    def __init__(
        self, binary: Path, bundle: Path, url: str, home: Path, identity: str = "dbapi0"
    ) -> None:
        self.binary, self.bundle, self.url = binary, bundle, url
        # The stand-in keeps one fake workspace per token; its prefix is who calls:
        # dbapi0 the user tester@databricks.com, dbapi1 the service principal.
        self.token = f"{identity}{uuid.uuid4().hex}"
        self.env = cli_env(url, home, self.token)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            cwd=self.bundle,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def api(self, endpoint: str, **query: str) -> Any:
        url = f"{self.url}{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def databricks(
    cli: Path, standin: str, bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Cli:
    return Cli(cli, bundle, standin, tmp_path_factory.mktemp("home"))


def variables(target: str) -> list[str]:
    given = {"catalog": CATALOG, "warehouse_id": WAREHOUSE}
    if target == "prod":
        given["service_principal"] = SERVICE_PRINCIPAL
        given["failure_email"] = FAILURE_EMAIL
    return [f"--var={name}={value}" for name, value in given.items()]


def validated(databricks: Cli, target: str) -> dict[str, Any]:
    done = databricks.run("bundle", "validate", "-o", "json", "-t", target, *variables(target))
    assert done.returncode == 0, done.stderr
    # A warning would be the CLI saying that something will not deploy as written, a
    # recommendation that it would be written otherwise; the CLI logs each on stderr.
    said = [
        line
        for line in done.stderr.splitlines()
        if line.startswith(("Warning:", "Recommendation:"))
    ]
    assert said == [], done.stderr
    return json.loads(done.stdout)


def ingest_task(job: dict[str, Any]) -> dict[str, Any]:
    loop = job["tasks"][0]
    assert loop["task_key"] == "accounts"
    assert loop["for_each_task"]["inputs"] == "{{job.parameters.accounts}}"
    return loop["for_each_task"]["task"]


def job_permissions(job: dict[str, Any]) -> dict[str, str]:
    return {
        (p.get("user_name") or p.get("group_name") or p.get("service_principal_name")): p["level"]
        for p in job["permissions"]
    }


@pytest.mark.parametrize(
    ("target", "identity"), [("dev", "dbapi0"), ("prod", "dbapi0"), ("prod", "dbapi1")]
)
def test_each_target_validates_with_nothing_to_warn_or_recommend(
    cli: Path, standin: str, bundle: Path, tmp_path: Path, target: str, identity: str
) -> None:
    """0 warnings and 0 recommendations, as the user (dev, and prod by an admin's hand)
    and as the service principal (prod as docs/databricks.md deploys it)."""
    databricks = Cli(cli, bundle, standin, tmp_path, identity)
    done = databricks.run("bundle", "validate", "--strict", "-t", target, *variables(target))
    assert done.returncode == 0, done.stdout + done.stderr
    # The text summary counts errors, warnings and recommendations; none: "Validation OK!".
    assert done.stdout.rstrip().endswith("Validation OK!"), done.stdout + done.stderr
    assert "Recommendation" not in done.stderr and "Warning" not in done.stderr, done.stderr


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_the_cli_validates_each_target_into_the_jobs_we_mean(databricks: Cli, target: str) -> None:
    config = validated(databricks, target)
    assert config["bundle"]["target"] == target
    jobs = config["resources"]["jobs"]
    # Detections are a task of the hourly job, not a job of their own.
    assert set(jobs) == {"zoom_ingest", "zoom_ingest_reconcile"}
    schema = "zoom_tester" if target == "dev" else "zoom"
    for key, job in jobs.items():
        loop = job["tasks"][0]["for_each_task"]
        task = ingest_task(job)
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == "zoom_ingest"
        assert wheel["entry_point"] == "zoom-ingest-job"
        assert "--catalog={{job.parameters.catalog}}" in wheel["parameters"]
        assert "--schema={{input.schema}}" in wheel["parameters"]
        assert task.get("max_retries", 0) == 0, key  # the next scheduled run is the retry
        assert loop["concurrency"] == 4
        defaults = {p["name"]: p["default"] for p in job["parameters"]}
        assert (defaults["catalog"], defaults["schema"]) == (CATALOG, schema), key
        assert json.loads(defaults["accounts"]) == [
            {"account": "", "schema": "", "secret_scope": ""}
        ]
        [environment] = job["environments"]
        assert environment["environment_key"] == task["environment_key"]
        assert environment["spec"]["environment_version"] == "4"
        [wheel_file] = environment["spec"]["dependencies"]
        assert wheel_file.endswith(".whl") and "dist" in wheel_file, wheel_file
        schedule = job["schedule"]
        assert schedule["timezone_id"] == "UTC"
        # Development mode pauses the schedules; production runs them.
        assert schedule.get("pause_status", "UNPAUSED") == (
            "PAUSED" if target == "dev" else "UNPAUSED"
        ), key
        assert job["max_concurrent_runs"] == 1
        assert job["name"] == (f"[dev tester] {key}" if target == "dev" else key)
        # Standard mode for the scheduled runs; dev's runs are started by hand and waited on.
        assert job["performance_target"] == (
            "PERFORMANCE_OPTIMIZED" if target == "dev" else "STANDARD"
        ), key
        # Failures reach a person: prod's address, dev's deployer.
        told = [FAILURE_EMAIL] if target == "prod" else [USER]
        assert job["email_notifications"]["on_failure"] == told, key
        if target == "prod":
            assert job["run_as"] == {"service_principal_name": SERVICE_PRINCIPAL}, key
            # The CLI makes the deployer the owner.
            assert job_permissions(job) == {
                USER: "IS_OWNER",
                SERVICE_PRINCIPAL: "CAN_MANAGE",
                "users": "CAN_VIEW",
            }, key
    hourly = jobs["zoom_ingest"]
    [_, detections] = hourly["tasks"]
    assert detections["task_key"] == "detections"
    # After every account's ingest, the failed ones too.
    assert detections["depends_on"] == [{"task_key": "accounts"}]
    assert detections["run_if"] == "ALL_DONE"
    assert detections["for_each_task"]["inputs"] == "{{job.parameters.accounts}}"
    assert detections["for_each_task"]["concurrency"] == 1  # accounts may share a schema
    detect = detections["for_each_task"]["task"]
    assert detect["python_wheel_task"]["entry_point"] == "zoom-ingest-detections"
    assert detect["environment_key"] == hourly["environments"][0]["environment_key"]
    assert [len(job["tasks"]) for job in jobs.values()] == [2, 1]
    crons = {k: j["schedule"]["quartz_cron_expression"] for k, j in jobs.items()}
    assert crons == {"zoom_ingest": "0 7 * * * ?", "zoom_ingest_reconcile": "0 37 3 * * ?"}
    reconcile = {p["name"]: p["default"] for p in jobs["zoom_ingest_reconcile"]["parameters"]}
    assert reconcile["mode"] == "reconcile"
    [dashboard] = config["resources"]["dashboards"].values()
    assert (dashboard["dataset_catalog"], dashboard["dataset_schema"]) == (CATALOG, schema)
    assert dashboard["warehouse_id"] == WAREHOUSE
    assert dashboard["embed_credentials"] is False
    root = config["workspace"]["root_path"]
    # dev in the deployer's folder; prod in the service principal's, whoever deploys.
    owner = USER if target == "dev" else SERVICE_PRINCIPAL
    assert root == f"/Workspace/Users/{owner}/.bundle/zoom_ingest/{target}"


def test_a_high_severity_alert_in_prod_reaches_the_failure_address(databricks: Cli) -> None:
    """The detections task as prod renders it by default: --fail-on=high, so a new high
    alert exits 6 (ALERTS), the task and the run fail, and on_failure mails the address."""
    job = validated(databricks, "prod")["resources"]["jobs"]["zoom_ingest"]
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    assert defaults["fail_on"] == "high"
    detect = job["tasks"][1]["for_each_task"]["task"]
    entry = json.loads(defaults["accounts"])[0]
    argv = [
        INPUT_FIELD.sub(
            lambda m: str(entry[m[1]]), JOB_PARAMETER.sub(lambda m: defaults[m[1]], argument)
        )
        for argument in detect["python_wheel_task"]["parameters"]
    ]
    args = detections.build_parser().parse_args(argv)
    assert (args.catalog, args.schema, args.fail_on) == (CATALOG, "zoom", "high")
    run = detections.DetectionRun(datetime.now(UTC), 1, {"high": 1})
    assert run.new_at_or_above(args.fail_on) == 1  # what makes run_once return ALERTS
    assert exit_codes.ALERTS == 6
    assert job["email_notifications"]["on_failure"] == [FAILURE_EMAIL]
    # A failed run is never muted: only skipped runs are.
    assert job["notification_settings"] == {"no_alert_for_skipped_runs": True}


def test_the_cli_names_each_missing_variable(databricks: Cli) -> None:
    prod = ("-t", "prod", f"--var=catalog={CATALOG}", f"--var=warehouse_id={WAREHOUSE}")
    cases = {
        (*prod, f"--var=failure_email={FAILURE_EMAIL}"): "service_principal",
        # Prod cannot deploy without someone to tell of failures.
        (*prod, f"--var=service_principal={SERVICE_PRINCIPAL}"): "failure_email",
        ("-t", "dev", f"--var=warehouse_id={WAREHOUSE}"): "catalog",
        ("-t", "dev", f"--var=catalog={CATALOG}"): "warehouse_id",
    }
    for args, variable in cases.items():
        done = databricks.run("bundle", "validate", *args)
        assert done.returncode != 0, args
        assert f"no value assigned to required variable {variable}" in done.stderr, done.stderr


def test_the_bundle_requires_a_cli_that_deploys_every_field(databricks: Cli) -> None:
    done = databricks.run("bundle", "validate", "-o", "json", *variables("dev"))
    assert json.loads(done.stdout)["bundle"]["databricks_cli_version"] == ">= 0.281.0"


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_the_cli_deploys_each_target_to_the_stand_in(databricks: Cli, target: str) -> None:
    done = databricks.run("bundle", "deploy", "-t", target, *variables(target))
    assert done.returncode == 0, done.stdout + done.stderr
    # Two jobs and the dashboard; prod also sets each one's permissions.
    resources = 3 if target == "dev" else 6
    assert f"Resources: {resources} created, 0 changed, 0 deleted" in done.stderr, done.stderr
    # Deployed again: only the jobs change (dynamic_version stamps a new wheel), nothing
    # is created twice, the dashboard is left as it is.
    again = databricks.run("bundle", "deploy", "-t", target, *variables(target))
    assert again.returncode == 0, again.stderr
    unchanged = f"0 created, 2 changed, 0 deleted, {resources - 2} unchanged"
    assert f"Resources: {unchanged}" in again.stderr, again.stderr
    owner = USER if target == "dev" else SERVICE_PRINCIPAL
    root = f"/Workspace/Users/{owner}/.bundle/zoom_ingest/{target}"
    deployed = deployed_jobs(databricks)
    name = "[dev tester] zoom_ingest" if target == "dev" else "zoom_ingest"
    job = deployed[name]
    task = ingest_task(job)
    assert task["python_wheel_task"]["entry_point"] == "zoom-ingest-job"
    [wheel] = job["environments"][0]["spec"]["dependencies"]
    # The wheel built on deploy, uploaded under the artifact path with a fresh version.
    assert re.fullmatch(
        rf"{re.escape(root)}/artifacts/\.internal/zoom_ingest-0\.1\.0\+\d+-py3-none-any\.whl",
        wheel,
    ), wheel
    status = databricks.api("/api/2.0/workspace/get-status", path=wheel)
    assert status["object_type"] == "FILE"
    # The dashboard, by the id the CLI recorded for it.
    summary = databricks.run("bundle", "summary", "-o", "json", "-t", target, *variables(target))
    assert summary.returncode == 0, summary.stderr
    [dashboard] = json.loads(summary.stdout)["resources"]["dashboards"].values()
    deployed_dashboard = databricks.api(f"/api/2.0/lakeview/dashboards/{dashboard['id']}")
    assert deployed_dashboard["display_name"].endswith("Zoom audit")
    assert deployed_dashboard["warehouse_id"] == WAREHOUSE
    pages = json.loads(deployed_dashboard["serialized_dashboard"])["pages"]
    assert [p["displayName"] for p in pages] == ["Overview", "Hunting"]


def deployed_jobs(databricks: Cli) -> dict[str, dict[str, Any]]:
    """name → settings of every job in the caller's fake workspace (names are unique)."""
    listed = databricks.api("/api/2.2/jobs/list", expand_tasks="true").get("jobs", [])
    names = [job["settings"]["name"] for job in listed]
    assert len(names) == len(set(names)), names
    return {job["settings"]["name"]: job["settings"] for job in listed}


def test_prod_is_one_copy_whoever_deploys_it(
    cli: Path, standin: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Prod deployed by a user (an admin, by hand) and then by the service principal (as
    docs/databricks.md says: from CI), each from a checkout of its own: one set of jobs,
    in the service principal's folder, owned by whoever deployed last."""
    workspace = uuid.uuid4().hex  # the stand-in: one fake workspace per token suffix
    runs: dict[str, Cli] = {}
    for identity in ("dbapi0", "dbapi1"):
        bundle = copy_bundle(tmp_path_factory.mktemp(f"{identity}-bundle"))
        runs[identity] = databricks = Cli(
            cli, bundle, standin, tmp_path_factory.mktemp(f"{identity}-home"), identity
        )
        databricks.token = f"{identity}{workspace}"
        databricks.env["DATABRICKS_TOKEN"] = databricks.token
        done = databricks.run("bundle", "deploy", "-t", "prod", *variables("prod"))
        assert done.returncode == 0, done.stderr
        root = f"/Workspace/Users/{SERVICE_PRINCIPAL}/.bundle/zoom_ingest/prod"
        assert f"{root}/files" in done.stderr, done.stderr
        assert "Recommendation" not in done.stderr, done.stderr
    user, principal = runs["dbapi0"], runs["dbapi1"]
    # The second deploy found the first one's state in the folder: it created nothing.
    assert "Resources: 0 created," in done.stderr, done.stderr
    assert set(deployed_jobs(user)) == {"zoom_ingest", "zoom_ingest_reconcile"}
    assert deployed_jobs(user) == deployed_jobs(principal)
    [wheel] = deployed_jobs(principal)["zoom_ingest"]["environments"][0]["spec"]["dependencies"]
    assert wheel.startswith(f"{root}/artifacts/"), wheel
    summary = principal.run("bundle", "summary", "-o", "json", "-t", "prod", *variables("prod"))
    job_id = json.loads(summary.stdout)["resources"]["jobs"]["zoom_ingest"]["id"]
    acl = principal.api(f"/api/2.0/permissions/jobs/{job_id}")["access_control_list"]
    levels = {
        (a.get("user_name") or a.get("group_name") or a.get("service_principal_name")): [
            p["permission_level"] for p in a["all_permissions"]
        ]
        for a in acl
    }
    assert levels[SERVICE_PRINCIPAL] == ["IS_OWNER"], acl
    assert levels["users"] == ["CAN_VIEW"], acl
