"""The Databricks bundle: its YAML against the Databricks CLI's own JSON schema, its jobs
against the entry point they run, the wheel it deploys, and the notebooks beside it.

The configuration is assembled as `databricks bundle validate` assembles it: the files of
`include` are merged into databricks.yml, then each target's settings are merged over the
top level (resources merged by key; tasks, job clusters, environments and job parameters
by their own keys).
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import regex
import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from zoom_ingest import databricks_job, detections

ROOT = Path(__file__).resolve().parents[1]
# The Databricks CLI's own JSON schema for bundle configuration (`databricks bundle
# schema`), kept in the repo so the test runs on any clone.
SCHEMA_PATH = ROOT / "tests" / "data" / "databricks-bundle-schema.json"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
DOCS = ROOT / "docs" / "databricks.md"
# Sequences the CLI merges by a key field rather than by position.
KEYED_SEQUENCES = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "environments": "environment_key",
    "parameters": "name",
}
TARGET_SECTIONS = (
    "artifacts",
    "bundle",
    "workspace",
    "resources",
    "run_as",
    "permissions",
    "presets",
    "sync",
    "git",
)
JOB_PARAMETER = re.compile(r"\{\{job\.parameters\.([A-Za-z0-9_.-]+)\}\}")
INPUT_FIELD = re.compile(r"\{\{input\.([A-Za-z0-9_]+)\}\}")
VARIABLE = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")
# The variables without a default, as a user passes them (`--var name=value`).
GIVEN = {
    "catalog": "zoom_catalog",
    "warehouse_id": "1234567890abcdef",
    "service_principal": "aaaaaaaa-bbbb-4ccc-dddd-eeeeeeeeeeee",
    "failure_email": "zoom-alerts@example.com",
}


# -- assembling the configuration --------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    assert isinstance(loaded, dict), f"{path} is not a YAML mapping"
    return loaded


def merge(base: Any, override: Any, path: str = "") -> Any:
    """`override` over `base`: maps key by key, keyed sequences item by item."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value, f"{path}.{key}") if key in base else value
        return merged
    field = KEYED_SEQUENCES.get(path.rsplit(".", 1)[-1])
    if field and isinstance(base, list) and isinstance(override, list):
        merged_items = {item[field]: item for item in base}
        for item in override:
            key = item[field]
            merged_items[key] = (
                merge(merged_items[key], item, path) if key in merged_items else item
            )
        return list(merged_items.values())
    return copy.deepcopy(override)


def include_files(root: dict[str, Any]) -> list[Path]:
    files: list[Path] = []
    for pattern in root.get("include", []):
        matches = sorted(ROOT.glob(pattern))
        assert matches, f"include pattern {pattern!r} matches no file"
        files.extend(matches)
    return files


def bundle_root() -> dict[str, Any]:
    """databricks.yml with its includes merged in; a resource defined twice is an error."""
    root = load_yaml(ROOT / "databricks.yml")
    for path in include_files(root):
        included = load_yaml(path)
        for kind, resources in included.get("resources", {}).items():
            known = root.setdefault("resources", {}).setdefault(kind, {})
            for name in resources:
                assert name not in known, f"{kind}.{name} is defined twice ({path.name})"
        root = merge(root, included)
    return root


def for_target(root: dict[str, Any], target: str) -> dict[str, Any]:
    """The configuration `databricks bundle validate -t <target>` works on."""
    settings = root["targets"][target] or {}
    merged = copy.deepcopy({key: value for key, value in root.items() if key != "targets"})
    for section in TARGET_SECTIONS:
        if section in settings:
            merged[section] = merge(merged.get(section, {}), settings[section], section)
    for name, value in (settings.get("variables") or {}).items():
        assert name in merged["variables"], f"target {target} sets undeclared variable {name}"
        merged["variables"][name] = {**merged["variables"][name], "default": value}
    for name, variable in merged["variables"].items():
        if "default" not in variable:  # required: the user passes it with --var
            merged["variables"][name] = {**variable, "default": GIVEN[name]}
    return merged


def resolve_variables(config: Any, variables: dict[str, Any], user: str = "ada") -> Any:
    """${var.X} and ${workspace.current_user.short_name / userName} replaced by their
    values (the user `ada`, ada@example.com)."""
    if isinstance(config, dict):
        return {k: resolve_variables(v, variables, user) for k, v in config.items()}
    if isinstance(config, list):
        return [resolve_variables(v, variables, user) for v in config]
    if not isinstance(config, str):
        return config
    whole = VARIABLE.fullmatch(config)
    if whole:  # a complex value stands in for the whole string
        return resolve_variables(variables[whole[1]]["default"], variables, user)
    text = VARIABLE.sub(lambda m: str(variables[m[1]]["default"]), config)
    text = text.replace("${workspace.current_user.userName}", f"{user}@example.com")
    return text.replace("${workspace.current_user.short_name}", user)


# -- validating against the CLI's schema -------------------------------------------------------


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    # The schema's patterns use \p{L} / \p{N}, which Python's `re` does not know.
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


BundleValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"the Databricks CLI bundle schema is not at {SCHEMA_PATH}")
    return BundleValidator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def schema_errors(validator: Any, config: dict[str, Any]) -> list[str]:
    """One line per error, naming the most relevant cause inside oneOf branches."""
    errors = []
    for error in validator.iter_errors(config):
        cause = best_match([error])
        errors.append(f"{'/'.join(map(str, cause.absolute_path))}: {cause.message[:300]}")
    return errors


@pytest.fixture(scope="module")
def root() -> dict[str, Any]:
    return bundle_root()


@pytest.fixture(scope="module")
def targets(root: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: for_target(root, name) for name in root["targets"]}


def test_every_bundle_file_and_every_target_validates_against_the_cli_schema(
    validator: Any, root: dict[str, Any], targets: dict[str, dict[str, Any]]
) -> None:
    for path in [ROOT / "databricks.yml", *include_files(root)]:
        alone = load_yaml(path)
        alone.setdefault("bundle", {"name": "fragment"})
        assert schema_errors(validator, alone) == [], path.name
    assert schema_errors(validator, root) == []
    for name, config in targets.items():
        assert schema_errors(validator, config) == [], f"target {name}"


def test_the_schema_check_catches_mistakes(validator: Any, root: dict[str, Any]) -> None:
    """The validator really applies the schema (typos, enums, \\p{L} patterns)."""
    typo = copy.deepcopy(root)
    job = typo["resources"]["jobs"]["zoom_ingest"]
    job["max_concurent_runs"] = job.pop("max_concurrent_runs")
    assert any("max_concurent_runs" in e for e in schema_errors(validator, typo))

    bad_enum = copy.deepcopy(root)
    bad_enum["resources"]["jobs"]["zoom_ingest"]["health"]["rules"][0]["op"] = "BIGGER"
    assert schema_errors(validator, bad_enum)

    bad_reference = copy.deepcopy(root)
    bad_reference["resources"]["jobs"]["zoom_ingest"]["max_concurrent_runs"] = "${vars.x}"
    assert schema_errors(validator, bad_reference)
    good_reference = copy.deepcopy(root)
    good_reference["resources"]["jobs"]["zoom_ingest"]["max_concurrent_runs"] = "${var.någon}"
    assert schema_errors(validator, good_reference) == []


# -- what the jobs promise ---------------------------------------------------------------------


INGEST_JOBS = ("zoom_ingest", "zoom_ingest_reconcile")


def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two jobs: hourly (ingest, then detections) and daily reconcile."""
    return {name: config["resources"]["jobs"][name] for name in INGEST_JOBS}


def wheel_tasks(job: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for task in job["tasks"]:
        inner = task.get("for_each_task", {}).get("task")
        found.extend(t for t in (task, inner) if t and "python_wheel_task" in t)
    return found


#: The wheel's entry points the jobs' tasks call → the parser of their flags.
PARSERS = {
    "zoom-ingest-job": databricks_job.build_parser,
    "zoom-ingest-detections": detections.build_parser,
}


def entry_task(job: dict[str, Any], entry_point: str = "zoom-ingest-job") -> dict[str, Any]:
    """The job's one wheel task that calls `entry_point`."""
    [task] = [t for t in wheel_tasks(job) if t["python_wheel_task"]["entry_point"] == entry_point]
    return task


def test_both_jobs_run_the_wheel_entry_point_once_per_account(root: dict[str, Any]) -> None:
    installed = importlib.metadata.distribution("zoom-ingest")
    scripts = {e.name: e.value for e in installed.entry_points if e.group == "console_scripts"}
    # Detections are a task of the hourly job: one job run an hour, not two.
    assert set(root["resources"]["jobs"]) == set(INGEST_JOBS)
    for name, job in jobs(root).items():
        for loop in job["tasks"]:
            assert loop["for_each_task"]["inputs"] == "{{job.parameters.accounts}}", name
        assert job["tasks"][0]["task_key"] == "accounts"
        entry_points = [t["python_wheel_task"]["entry_point"] for t in wheel_tasks(job)]
        assert entry_points == (
            ["zoom-ingest-job", "zoom-ingest-detections"]
            if name == "zoom_ingest"
            else ["zoom-ingest-job"]
        ), name
        for task in wheel_tasks(job):
            wheel = task["python_wheel_task"]
            module = PARSERS[wheel["entry_point"]].__module__
            assert scripts[wheel["entry_point"]] == f"{module}:main"
            assert wheel["package_name"].replace("_", "-") == installed.metadata["Name"]
            # The next scheduled run is the retry (docs/databricks.md, "Failures and retries").
            assert task["max_retries"] == 0
            [environment] = job["environments"]
            assert task["environment_key"] == environment["environment_key"]
        # ../dist/*.whl is relative to resources/, i.e. the artifact's dist folder.
        [dependency] = environment["spec"]["dependencies"]
        assert (ROOT / "resources" / dependency).resolve().parent == ROOT / "dist"
        assert "--wheel-dir dist" in root["artifacts"]["zoom_ingest"]["build"]


def test_detections_follow_every_accounts_ingest_in_the_hourly_job(root: dict[str, Any]) -> None:
    hourly, daily = jobs(root)["zoom_ingest"], jobs(root)["zoom_ingest_reconcile"]
    ingest, detect = hourly["tasks"]
    assert detect["depends_on"] == [{"task_key": ingest["task_key"]}]
    # Failed accounts too: one account's failure does not blind the others' detections.
    assert detect["run_if"] == "ALL_DONE"
    # One schema at a time: accounts may share one, and so one zoom_detections table.
    assert detect["for_each_task"]["concurrency"] == 1
    # The reconcile job runs the hourly job's ingest task, in its own mode.
    [reconcile] = daily["tasks"]
    assert reconcile == ingest
    assert daily["environments"] == hourly["environments"]
    hourly_parameters = {p["name"]: p["default"] for p in hourly["parameters"]}
    daily_parameters = {p["name"]: p["default"] for p in daily["parameters"]}
    assert hourly_parameters.pop("fail_on") == "high"
    assert hourly_parameters.pop("source") == ""  # the detections task's: its own tables
    assert hourly_parameters.pop("mode") == "incremental"
    assert daily_parameters.pop("mode") == "reconcile"
    assert hourly_parameters == daily_parameters


def test_jobs_are_hourly_and_daily_one_run_at_a_time_with_health_and_alerts(
    root: dict[str, Any],
) -> None:
    hourly, daily = jobs(root)["zoom_ingest"], jobs(root)["zoom_ingest_reconcile"]
    assert re.fullmatch(r"0 \d+ \* \* \* \?", hourly["schedule"]["quartz_cron_expression"])
    assert re.fullmatch(r"0 \d+ \d+ \* \* \?", daily["schedule"]["quartz_cron_expression"])
    params = {
        name: {p["name"]: p["default"] for p in job["parameters"]}
        for name, job in jobs(root).items()
    }
    assert params["zoom_ingest"]["mode"] == "incremental"
    assert params["zoom_ingest_reconcile"]["mode"] == "reconcile"
    for name, job in jobs(root).items():
        # Development mode pauses a schedule only when pause_status is left unset.
        assert "pause_status" not in job["schedule"], name
        assert job["schedule"]["timezone_id"] == "UTC"
        assert job["max_concurrent_runs"] == 1
        [rule] = job["health"]["rules"]
        assert rule["metric"] == "RUN_DURATION_SECONDS" and rule["op"] == "GREATER_THAN"
        assert 0 < rule["value"] < job["timeout_seconds"]
        emails = job["email_notifications"]
        assert emails["on_failure"] == emails["on_duration_warning_threshold_exceeded"]
        assert emails["on_failure"] == ["${var.failure_email}"]
        assert job["performance_target"] == "${var.performance_target}"


def test_every_job_parameter_reaches_the_entry_point_and_every_reference_is_defined(
    root: dict[str, Any],
) -> None:
    for name, job in jobs(root).items():
        defined = {p["name"] for p in job["parameters"]}
        text = json.dumps(job["tasks"])
        used = set(JOB_PARAMETER.findall(text))
        assert used == defined, name
        for task in wheel_tasks(job):
            wheel = task["python_wheel_task"]
            parser_flags = {a.dest for a in PARSERS[wheel["entry_point"]]()._actions}
            for argument in wheel["parameters"]:
                flag, _, value = argument.partition("=")
                assert flag.startswith("--") and value, argument
                assert flag[2:].replace("-", "_") in parser_flags, argument
        # Each accounts entry must carry every field the task reads.
        entries = json.loads(root["variables"]["accounts"]["default"])
        assert entries and all(set(INPUT_FIELD.findall(text)) == set(e) for e in entries)
    declared = set(root["variables"])
    for path in [ROOT / "databricks.yml", *include_files(root)]:
        assert set(VARIABLE.findall(path.read_text(encoding="utf-8"))) <= declared, path.name


def rendered_arguments(
    job: dict[str, Any],
    variables: dict[str, Any],
    entry_point: str = "zoom-ingest-job",
    **overrides: str,
) -> list[str]:
    """A wheel task's argv as Databricks renders it for the first accounts entry."""
    values = {p["name"]: str(resolve_variables(p["default"], variables)) for p in job["parameters"]}
    values.update(overrides)
    entry = json.loads(values["accounts"])[0]
    task = entry_task(job, entry_point)
    argv = []
    for argument in task["python_wheel_task"]["parameters"]:
        argument = JOB_PARAMETER.sub(lambda m: values[m[1]], argument)
        argv.append(INPUT_FIELD.sub(lambda m: str(entry[m[1]]), argument))
    return argv


def test_the_jobs_default_parameters_make_valid_settings_in_every_target(
    targets: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for env, value in {
        "ZOOM_ACCOUNT_ID": "a",
        "ZOOM_CLIENT_ID": "c",
        "ZOOM_CLIENT_SECRET": "s",
    }.items():
        monkeypatch.setenv(env, value)
    parser = databricks_job.build_parser()
    for target, config in targets.items():
        for name, job in jobs(config).items():
            args = parser.parse_args(rendered_arguments(job, config["variables"]))
            assert args.catalog == GIVEN["catalog"]
            assert args.schema == ("zoom_ada" if target == "dev" else "zoom"), (target, name)
            assert args.secret_scope == "zoom_ingest"
            settings = databricks_job.settings_from_args(args, read_secret=lambda s, k: f"{k}!")
            assert settings.mode == (
                "reconcile" if name == "zoom_ingest_reconcile" else "incremental"
            )
            assert settings.requests_per_second == 10
            assert settings.backfill_start is None
            assert settings.account_id == "account_id!"
        hourly = jobs(config)["zoom_ingest"]
        argv = rendered_arguments(hourly, config["variables"], "zoom-ingest-detections")
        args = detections.build_parser().parse_args(argv)
        assert (args.catalog, args.schema) == (
            GIVEN["catalog"],
            "zoom_ada" if target == "dev" else "zoom",
        )
        # A new high alert fails the run, so that failure_email hears of it.
        assert args.fail_on == "high"
        told = resolve_variables(hourly["email_notifications"]["on_failure"], config["variables"])
        assert told == (["ada@example.com"] if target == "dev" else [GIVEN["failure_email"]])


def test_an_accounts_entry_brings_its_own_schema_and_secrets(root: dict[str, Any]) -> None:
    job = jobs(root)["zoom_ingest"]
    entry = {"account": "acme", "schema": "zoom_acme", "secret_scope": "zoom_acme_scope"}
    argv = rendered_arguments(
        job, for_target(root, "dev")["variables"], accounts=json.dumps([entry])
    )
    args = databricks_job.build_parser().parse_args(argv)
    assert (args.account, args.schema, args.secret_scope) == (
        "acme",
        "zoom_acme",
        "zoom_acme_scope",
    )
    read: list[tuple[str, str]] = []
    databricks_job.settings_from_args(args, read_secret=lambda s, k: read.append((s, k)) or "x")
    assert read == [("zoom_acme_scope", f"acme_{key}") for key in databricks_job.SECRET_KEYS]


def test_dev_is_a_personal_copy_and_prod_runs_as_a_service_principal(
    root: dict[str, Any], targets: dict[str, dict[str, Any]]
) -> None:
    dev, prod = root["targets"]["dev"], root["targets"]["prod"]
    assert dev["mode"] == "development" and dev["default"] is True
    assert "${workspace.current_user.short_name}" in dev["variables"]["schema"]
    assert prod["mode"] == "production"
    assert prod["run_as"] == {"service_principal_name": "${var.service_principal}"}
    # One prod whoever deploys: in the service principal's folder, not the deployer's;
    # not /Workspace/Shared, where every user could replace the wheel the SP runs.
    assert prod["workspace"]["root_path"] == (
        "/Workspace/Users/${var.service_principal}/.bundle/${bundle.name}/${bundle.target}"
    )
    # Permissions per resource, every resource: a bundle-wide section would have to name
    # whoever deploys (the CLI recommends it).
    assert "permissions" not in prod and "permissions" not in root
    for kind, resources in root["resources"].items():
        for name in resources:
            granted = prod["resources"][kind][name]["permissions"]
            manager = {"service_principal_name": "${var.service_principal}", "level": "CAN_MANAGE"}
            assert manager in granted, (kind, name)
            assert {p.get("group_name") for p in granted} == {None, "users"}, (kind, name)
    # Required variables: no default that fails on some workspace, no lookup by name.
    for name in GIVEN:
        assert "default" not in root["variables"][name], name
        assert "lookup" not in root["variables"][name], name
    assert "service_principal" in dev["variables"]  # dev runs as the deployer
    assert "service_principal" not in (prod.get("variables") or {})
    # Prod does not deploy without someone to tell of failures; dev tells the deployer.
    assert dev["variables"]["failure_email"] == "${workspace.current_user.userName}"
    assert "failure_email" not in (prod.get("variables") or {})
    # The CLI names a missing variable; its description says what it is for.
    assert "required for prod" in root["variables"]["failure_email"]["description"]
    # Standard mode for the scheduled jobs; dev's runs are waited on.
    assert root["variables"]["performance_target"]["default"] == "STANDARD"
    assert dev["variables"]["performance_target"] == "PERFORMANCE_OPTIMIZED"
    assert root["bundle"]["databricks_cli_version"] == ">= 0.281.0"
    assert targets["prod"]["variables"]["schema"]["default"] == "zoom"
    artifact = root["artifacts"]["zoom_ingest"]
    assert artifact["type"] == "whl" and artifact["dynamic_version"] is True


def test_the_classic_compute_example_in_the_docs_validates(validator: Any) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    examples = [yaml.safe_load(b) for b in blocks if "new_cluster" in b]
    assert examples, "docs/databricks.md shows no classic-compute job"
    for example in examples:
        example.setdefault("bundle", {"name": "example"})
        assert schema_errors(validator, example) == []
        tasks = json.dumps(example)
        assert '"whl": "../dist/*.whl"' in tasks and "job_cluster_key" in tasks


# -- the wheel, the notebooks ---------------------------------------------------------------------


def test_the_wheel_declares_the_job_entry_point_and_no_spark(tmp_path: Path) -> None:
    """Built the way the artifact builds it (pip wheel), from a copy of the project.

    Offline: the build backend comes from this environment, not from PyPI.
    """
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None:
        pytest.skip("an offline wheel build needs setuptools>=77 installed (the dev extra)")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (project / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "src"), str(project / "src")], check=True, timeout=60)
    wheels = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(project),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = wheels.glob("zoom_ingest-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        scripts = archive.read(entry_points).decode()
        requires = [
            line
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]
    assert "zoom_ingest/databricks_job.py" in names
    assert "zoom_ingest/engines/spark.py" in names
    section = scripts.split("[console_scripts]", 1)[1]
    assert re.search(r"^zoom-ingest-job = zoom_ingest\.databricks_job:main$", section, re.M)
    assert requires and not [r for r in requires if "pyspark" in r or "delta-spark" in r]
    # What a serverless environment installs: only what the job uses there. The local
    # engine's, SQL's and terminal's packages are the `local` extra.
    names = {
        re.split(r"[<>=!~ ;\[]", r.removeprefix("Requires-Dist:").strip())[0] for r in requires
    }
    # iptocc: the job fills zoom_ip_countries on Databricks too.
    assert names == {"requests", "tenacity", "databricks-sdk", "pyarrow", "orjson", "iptocc"}, (
        requires
    )
    # Loose enough to keep the runtime's own databricks-sdk (DBR 15.4 LTS ships 0.20.0).
    [sdk] = [r for r in requires if "databricks-sdk" in r]
    assert sdk.endswith("databricks-sdk>=0.20"), sdk


def test_notebooks_are_databricks_source_files_that_compile() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"run_ingest.py", "explore_tables.py"}
    for path in NOTEBOOKS:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# Databricks notebook source\n"), path.name
        assert "\n# COMMAND ----------\n" in text, path.name
        tree = ast.parse(text, filename=str(path))  # `# MAGIC` lines are comments
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoom_ingest"):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}: {node.module}.{alias.name}"


def test_the_dashboard_is_in_the_current_lakeview_format() -> None:
    from zoom_ingest.dashboards import DASHBOARD_PATH

    dashboard = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    assert dashboard["pages"]
    tables = 0
    for page in dashboard["pages"]:
        # The API adds pageType to a page without it; the file says it itself.
        assert page["pageType"] == "PAGE_TYPE_CANVAS", page["name"]
        for item in page["layout"]:
            spec = item["widget"].get("spec", {})
            if spec.get("widgetType") != "table":
                continue
            tables += 1
            # The current table spec: version 2, each column its field and its label.
            assert spec["version"] == 2, item["widget"]["name"]
            assert not {"itemsPerPage", "withRowNumber"} & set(spec)
            fields = [f["name"] for f in item["widget"]["queries"][0]["query"]["fields"]]
            columns = spec["encodings"]["columns"]
            assert [c["fieldName"] for c in columns] == fields
            assert all(set(c) == {"fieldName", "displayName"} for c in columns)
    assert tables >= 5
