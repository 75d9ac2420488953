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
from pathlib import Path
from typing import Any, NoReturn

import pytest

from conftest import on_ci

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".cache" / "bin"
USER = "tester@databricks.com"  # the stand-in's current user for a dbapi0… token
SERVICE_PRINCIPAL = "aaaaaaaa-bbbb-4ccc-dddd-eeeeeeeeeeee"
WAREHOUSE = "8ec9edc1-db0c-40df-af8d-7580020fe61e"
CATALOG = "zoom_catalog"
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
    return [f"--var={name}={value}" for name, value in given.items()]


def validated(databricks: Cli, target: str) -> dict[str, Any]:
    done = databricks.run("bundle", "validate", "-o", "json", "-t", target, *variables(target))
    assert done.returncode == 0, done.stderr
    # A warning would be the CLI saying that something will not deploy as written (a
    # CLI built from source, not a release, only warns that it skips the version check).
    warnings = [
        line
        for line in done.stderr.splitlines()
        if line.startswith("Warning:") and "constraint for development build" not in line
    ]
    assert warnings == [], done.stderr
    return json.loads(done.stdout)


def ingest_task(job: dict[str, Any]) -> dict[str, Any]:
    [loop] = job["tasks"]
    assert loop["task_key"] == "accounts"
    assert loop["for_each_task"]["inputs"] == "{{job.parameters.accounts}}"
    return loop["for_each_task"]["task"]


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_the_cli_validates_each_target_into_the_jobs_we_mean(databricks: Cli, target: str) -> None:
    config = validated(databricks, target)
    assert config["bundle"]["target"] == target
    jobs = config["resources"]["jobs"]
    assert set(jobs) == {"zoom_ingest", "zoom_ingest_reconcile", "zoom_detections"}
    schema = "zoom_tester" if target == "dev" else "zoom"
    for key, job in jobs.items():
        loop = job["tasks"][0]["for_each_task"]
        task = ingest_task(job)
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == "zoom_ingest"
        assert wheel["entry_point"] == (
            "zoom-ingest-detections" if key == "zoom_detections" else "zoom-ingest-job"
        )
        assert "--catalog={{job.parameters.catalog}}" in wheel["parameters"]
        assert "--schema={{input.schema}}" in wheel["parameters"]
        assert task.get("max_retries", 0) == 0, key  # the next scheduled run is the retry
        assert loop["concurrency"] == (1 if key == "zoom_detections" else 4)
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
        if target == "prod":
            assert job["run_as"] == {"service_principal_name": SERVICE_PRINCIPAL}, key
            levels = {
                (p.get("user_name") or p.get("group_name") or p.get("service_principal_name")): (
                    p["level"]
                )
                for p in job["permissions"]
            }
            # The CLI makes the deployer the owner.
            assert levels == {
                USER: "IS_OWNER",
                SERVICE_PRINCIPAL: "CAN_MANAGE",
                "users": "CAN_VIEW",
            }, key
    crons = {k: j["schedule"]["quartz_cron_expression"] for k, j in jobs.items()}
    assert crons == {
        "zoom_ingest": "0 7 * * * ?",
        "zoom_ingest_reconcile": "0 37 3 * * ?",
        "zoom_detections": "0 27 * * * ?",
    }
    reconcile = {p["name"]: p["default"] for p in jobs["zoom_ingest_reconcile"]["parameters"]}
    assert reconcile["mode"] == "reconcile"
    [dashboard] = config["resources"]["dashboards"].values()
    assert (dashboard["dataset_catalog"], dashboard["dataset_schema"]) == (CATALOG, schema)
    assert dashboard["warehouse_id"] == WAREHOUSE
    root = config["workspace"]["root_path"]
    # Prod in the deploying principal's own folder, never /Workspace/Shared.
    assert root == f"/Workspace/Users/{USER}/.bundle/zoom_ingest/{target}"


def test_the_cli_names_each_missing_variable(databricks: Cli) -> None:
    cases = {
        ("-t", "prod", f"--var=catalog={CATALOG}", f"--var=warehouse_id={WAREHOUSE}"): (
            "service_principal"
        ),
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
    # Prod also sets each resource's permissions (the deployer, the users group).
    resources = 4 if target == "dev" else 8
    assert f"Resources: {resources} created, 0 changed, 0 deleted" in done.stderr, done.stderr
    # Deployed again: only the jobs change (dynamic_version stamps a new wheel), nothing
    # is created twice, the dashboard is left as it is.
    again = databricks.run("bundle", "deploy", "-t", target, *variables(target))
    assert again.returncode == 0, again.stderr
    unchanged = f"0 created, 3 changed, 0 deleted, {resources - 3} unchanged"
    assert f"Resources: {unchanged}" in again.stderr, again.stderr
    root = f"/Workspace/Users/{USER}/.bundle/zoom_ingest/{target}"
    listed = databricks.api("/api/2.2/jobs/list", expand_tasks="true").get("jobs", [])
    deployed = {
        job["settings"]["name"]: job["settings"]
        for job in listed
        if job["settings"]["name"].endswith(("zoom_ingest", "zoom_ingest_reconcile"))
    }
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


def test_prod_deploys_as_its_service_principal_into_its_own_folder(
    cli: Path, standin: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """How docs/databricks.md says to deploy prod: authenticated as the service principal
    (e.g. from CI), so its files sit in its own folder and it owns the jobs it runs as."""
    bundle = copy_bundle(tmp_path_factory.mktemp("sp-bundle"))
    principal = Cli(cli, bundle, standin, tmp_path_factory.mktemp("sp-home"), "dbapi1")
    done = principal.run("bundle", "deploy", "-t", "prod", *variables("prod"))
    assert done.returncode == 0, done.stderr
    assert f"/Workspace/Users/{SERVICE_PRINCIPAL}/.bundle/zoom_ingest/prod/files" in done.stderr
    # The deploying identity is in the permissions: the CLI has nothing to recommend.
    assert "should explicitly include the current deployment identity" not in done.stderr
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
