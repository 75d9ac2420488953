"""The one option table (zoom_ingest/options.py) against every place a setting shows up:
the CLI, both wheel entry points, the notebook's widgets, README.md and the bundle."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from zoom_ingest import cli, databricks_job, detections, options
from zoom_ingest.options import (
    BUNDLE,
    BY_NAME,
    DEMO,
    DETECTION_SETTINGS,
    DETECTIONS,
    JOB,
    NOTEBOOK,
    OPTIONS,
    RUN,
    SETTINGS,
    for_entry_point,
)
from zoom_ingest.settings import DetectionSettings, Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
#: Settings fields the job reads from the secret scope, never from a flag.
CREDENTIALS = {"account_id", "client_id", "client_secret"}


def names(entry_point: str) -> set[str]:
    return {option.name for option in for_entry_point(entry_point)}


def test_each_default_is_its_dataclass_field_default_and_reads_back() -> None:
    for dataclass_type, configures in (
        (Settings, SETTINGS),
        (DetectionSettings, DETECTION_SETTINGS),
    ):
        fields = {f.name: f for f in dataclasses.fields(dataclass_type)}
        declared = {o.name for o in OPTIONS if o.configures == configures}
        assert declared == set(fields), dataclass_type.__name__  # every field, once
        for name in declared:
            option, field = BY_NAME[name], fields[name]
            if field.default is not dataclasses.MISSING:
                expected = field.default
            elif field.default_factory is not dataclasses.MISSING:  # streams: the registry's
                expected = field.default_factory()
            else:
                expected = None
            assert option.default == expected, name
            if option.default_text:  # the text a flag, parameter or widget starts with
                assert option.value_of(option.default_text) == option.default, name
    assert len(BY_NAME) == len(OPTIONS)
    envs = [o.env for o in OPTIONS if o.env]
    assert len(envs) == len(set(envs))
    assert all(set(o.entry_points) <= set(options.ENTRY_POINTS) for o in OPTIONS)


def test_which_entry_point_sets_what() -> None:
    settings = {f.name for f in dataclasses.fields(Settings)}
    assert settings <= names(RUN)
    assert settings - CREDENTIALS <= names(JOB)
    assert settings - CREDENTIALS - {"api_url", "oauth_url"} <= names(DEMO) & names(BUNDLE)
    # The notebook and the bundle hand their values to zoom-ingest-job.
    assert names(NOTEBOOK) <= names(JOB) and names(BUNDLE) <= names(JOB)
    assert {f.name for f in dataclasses.fields(DetectionSettings)} <= names(DETECTIONS)


# -- the CLI ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "entry_point", "own"),
    [
        (cli.run_command, RUN, {"progress"}),
        (
            cli.demo_command,
            DEMO,
            {"progress", "warehouse", "days", "activity_per_day", "operation_per_day", "seed"},
        ),
    ],
)
def test_cli_options_are_the_table(command: click.Command, entry_point: str, own: set[str]) -> None:
    params = {p.name: p for p in command.params if isinstance(p, click.Option)}
    assert set(params) - own == names(entry_point)
    for option in for_entry_point(entry_point):
        param = params[option.name]
        assert param.opts == [option.flag]
        assert param.envvar == option.env, option.name
        if option.name == "requests_per_second" and entry_point == DEMO:
            continue  # the demo's simulated Business account: tested below
        default = param.default if option.kind is not str else param.default or ""
        expected = option.default if option.kind is not str else option.default_text
        assert default == expected, option.name


def demo_rate(monkeypatch: pytest.MonkeyPatch, *args: str, env: dict[str, str] | None = None):
    """The rate `zoom-ingest demo ARGS` gives its simulator (the run stops there)."""
    import zoom_ingest.simulator

    seen: list[float] = []

    class Stop(Exception):
        pass

    def simulator(**kwargs: Any) -> None:
        seen.append(kwargs["qps_limit"])
        raise Stop

    monkeypatch.setattr(zoom_ingest.simulator, "Simulator", simulator)
    monkeypatch.delenv("ZOOM_INGEST_REQUESTS_PER_SECOND", raising=False)
    result = CliRunner().invoke(cli.main, ["demo", *args], env=env)
    assert isinstance(result.exception, Stop), result.output
    return seen[0]


def test_demo_keeps_an_explicit_rate_even_the_default_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert demo_rate(monkeypatch) == 40.0  # a Business account unless told otherwise
    assert demo_rate(monkeypatch, "--requests-per-second", "10") == 10.0
    assert demo_rate(monkeypatch, "--requests-per-second", "25") == 25.0
    assert demo_rate(monkeypatch, env={"ZOOM_INGEST_REQUESTS_PER_SECOND": "10"}) == 10.0


def test_cli_settings_parse_like_the_jobs() -> None:
    given = {
        "account_id": " acct ",
        "client_id": "cid",
        "client_secret": "s3cret",
        "api_url": "http://127.0.0.1:9/v2/",
        "lookback": "90m",
        "streams": "operation_logs",
        "concurrency": None,
        "timeout": 5.0,
    }
    settings = cli.build_settings(given)
    assert (settings.account_id, settings.api_url) == ("acct", "http://127.0.0.1:9/v2")
    assert settings.lookback.total_seconds() == 5400 and settings.streams == ("operation_logs",)
    assert settings.concurrency is None and settings.timeout == 5.0
    with pytest.raises(SettingsError, match="ZOOM_CLIENT_ID"):
        cli.build_settings({**given, "client_id": None})


# -- the wheel entry points ---------------------------------------------------------------------


def flags(parser: Any) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings} - {"-h", "--help"}


def test_the_entry_points_flags_are_the_table() -> None:
    assert flags(databricks_job.build_parser()) == {o.flag for o in for_entry_point(JOB)}
    assert flags(detections.build_parser()) == {o.flag for o in for_entry_point(DETECTIONS)}


def test_the_job_sets_every_setting_but_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"):
        monkeypatch.setenv(env, "x")
    argv = [
        "--catalog=c",
        "--schema=s",
        "--concurrency=5",
        "--batch-rows=1000",
        "--timeout=12.5",
        "--max-retries=2",
        "--window-days=7",
    ]
    settings = databricks_job.settings_from_args(databricks_job.build_parser().parse_args(argv))
    assert (settings.concurrency, settings.batch_rows, settings.timeout) == (5, 1000, 12.5)
    assert (settings.max_retries, settings.window_days) == (2, 7)
    default = databricks_job.settings_from_args(
        databricks_job.build_parser().parse_args(["--concurrency=", "--max-retries="])
    )
    assert default.concurrency is None and default.max_retries == Settings.max_retries
    bad = databricks_job.build_parser().parse_args(["--batch-rows=lots"])
    with pytest.raises(SettingsError, match="batch_rows: 'lots' is not a whole number"):
        databricks_job.settings_from_args(bad)


def test_the_credentials_env_vars_and_the_detections_come_from_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert {name: BY_NAME[name].env for name in CREDENTIALS} == databricks_job.CREDENTIAL_ENV
    detection_envs = {o.name: o.env for o in OPTIONS if o.configures == DETECTION_SETTINGS}
    assert detection_envs == {
        "watched_countries": "ZOOM_INGEST_WATCHED_COUNTRIES",
        "travel_window": "ZOOM_INGEST_TRAVEL_WINDOW",
        "country_learning_days": "ZOOM_INGEST_COUNTRY_LEARNING_DAYS",
    }
    env = {"ZOOM_INGEST_TRAVEL_WINDOW": "2h", "ZOOM_INGEST_SOURCE": "elsewhere"}
    assert options.env_texts(DETECTIONS, env) == {"travel_window": "2h", "source": "elsewhere"}
    assert options.detection_settings_from_env(env).travel_window == timedelta(hours=2)
    bad = databricks_job.build_parser().parse_args(["--category-type=users"])
    for name in CREDENTIALS:  # without a secret scope, the job reads the table's env vars
        monkeypatch.setenv(str(BY_NAME[name].env), f"{name}-value")
    good = databricks_job.settings_from_args(databricks_job.build_parser().parse_args([]))
    assert (good.account_id, good.client_id) == ("account_id-value", "client_id-value")
    assert good.client_secret.reveal() == "client_secret-value"
    with pytest.raises(SettingsError, match="category_type: 'users' is not one of all, user,"):
        databricks_job.settings_from_args(bad)


def test_the_simulators_own_export_lines_are_zoom_ingests(tmp_path: Path) -> None:
    """`python -m zoom_ingest.simulator` stands alone (no option table): its ZOOM_* names
    are the ones the option table gives `zoom-ingest simulate`."""
    from zoom_ingest.simulated import env_lines, environment
    from zoom_ingest.simulator import Simulator, export_lines

    with Simulator(seed=5, days=1, activity_per_day=1, client_secret="it's $x") as sim:
        assert export_lines(sim) == env_lines(sim)
        assert set(environment(sim)) == {str(BY_NAME[name].env) for name in sim.connection()}
        assert environment(sim)["ZOOM_CLIENT_SECRET"] == "it's $x"


# -- the notebook -------------------------------------------------------------------------------


class FakeWidgets:
    def __init__(self) -> None:
        self.made: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def text(self, name: str, value: str, label: str) -> None:
        self.made[name] = (value, None)

    def dropdown(self, name: str, value: str, choices: list[str], label: str) -> None:
        assert value in choices, name
        self.made[name] = (value, tuple(choices))

    def get(self, name: str) -> str:
        return self.made[name][0]


def notebook_cell(text: str, marker: str) -> str:
    [cell] = [c for c in text.split("\n# COMMAND ----------\n") if marker in c]
    return cell


def test_the_notebooks_widgets_are_the_table_and_reach_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (ROOT / "notebooks" / "run_ingest.py").read_text(encoding="utf-8")
    widgets = FakeWidgets()
    scope: dict[str, Any] = {"dbutils": type("DBUtils", (), {"widgets": widgets})()}
    exec(notebook_cell(text, "widgets = dbutils.widgets"), scope)
    assert list(widgets.made) == [o.name for o in for_entry_point(NOTEBOOK)]
    for name, (value, choices) in widgets.made.items():
        option = BY_NAME[name]
        assert value == option.starting_value and choices == (option.choices or None), name
    assert widgets.made["schema"][0] == "zoom" and widgets.made["mode"][0] == "incremental"

    seen: list[list[str]] = []
    monkeypatch.setattr(databricks_job, "main", lambda argv: seen.append(argv) or 0)
    exec(notebook_cell(text, "exit_code = main("), scope)
    args = databricks_job.build_parser().parse_args(seen[0])
    assert {name: getattr(args, name) for name in widgets.made} == {
        name: value for name, (value, _) in widgets.made.items()
    }


# -- README -------------------------------------------------------------------------------------


def readme_settings_rows() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `--")]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    return {c[0].strip("`"): c for c in cells}


def test_the_readme_lists_every_cli_option_with_its_env_var_and_default() -> None:
    rows = readme_settings_rows()
    assert set(rows) == {o.flag for o in for_entry_point(RUN)}
    for option in for_entry_point(RUN):
        flag, env, default, meaning = rows[option.flag]
        assert env == f"`{option.env}`", flag
        if option.default_text:
            assert default == f"`{option.default_text}`", flag
        else:  # no default: words say what happens
            assert not default.startswith("`"), flag
        assert meaning, flag
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for option in for_entry_point(DETECTIONS):
        if option.configures == DETECTION_SETTINGS:
            assert f"`{option.env}`" in text and f"`{option.default_text}`" in text, option.name


# -- the bundle ---------------------------------------------------------------------------------


def bundle_variables() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "databricks.yml").read_text(encoding="utf-8"))["variables"]


VARIABLE = re.compile(r"^\$\{var\.(\w+)\}$")
JOB_PARAMETER = re.compile(r"\{\{job\.parameters\.(\w+)\}\}")
#: (job, parameter) whose default differs from the option's on purpose.
OWN_DEFAULTS = {
    ("zoom_ingest_reconcile", "mode"): "reconcile",
    # A new high alert fails the hourly run, so that its failure e-mail reaches someone.
    ("zoom_ingest", "fail_on"): "high",
}
#: The entry point a wheel task calls → the entry point of the option table it follows.
TASK_OPTIONS = {"zoom-ingest-job": JOB, "zoom-ingest-detections": DETECTIONS}


@pytest.mark.parametrize("path", ["zoom_ingest.job.yml", "zoom_ingest_reconcile.job.yml"])
def test_the_job_parameters_are_the_table_with_its_defaults(path: str) -> None:
    jobs = yaml.safe_load((ROOT / "resources" / path).read_text(encoding="utf-8"))
    variables = bundle_variables()
    for name, job in jobs["resources"]["jobs"].items():
        # `accounts` is the for_each list, not a setting: each entry brings its own values.
        parameters = {p["name"]: p["default"] for p in job["parameters"] if p["name"] != "accounts"}
        tasks = [t["for_each_task"]["task"] for t in job["tasks"]]
        entry_points = {TASK_OPTIONS[t["python_wheel_task"]["entry_point"]] for t in tasks}
        # Every ingest setting is a job parameter; the detections task's are a choice.
        assert names(BUNDLE) <= set(parameters), name
        assert set(parameters) <= names(BUNDLE).union(*map(names, entry_points)), name
        for parameter, default in parameters.items():
            option = BY_NAME[parameter]
            variable = VARIABLE.match(str(default))
            if variable:  # a bundle variable's default starts the same
                default = variables[variable[1]].get("default", "")
            expected = OWN_DEFAULTS.get((name, parameter), option.starting_value)
            assert str(default) == expected, (name, parameter)
        passed: set[str] = set()
        for task in tasks:
            entry = TASK_OPTIONS[task["python_wheel_task"]["entry_point"]]
            arguments = task["python_wheel_task"]["parameters"]
            for argument in arguments:
                flag, _, value = argument.partition("=")
                option = BY_NAME[flag[2:].replace("-", "_")]
                assert option.flag == flag and option.applies_to(entry), argument
                for used in JOB_PARAMETER.findall(value):
                    assert used == option.name, argument  # --x={{job.parameters.x}}
            passed |= {JOB_PARAMETER.search(a)[1] for a in arguments if JOB_PARAMETER.search(a)}
        assert passed == set(parameters), name
