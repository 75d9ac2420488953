"""The one table of user-facing settings: each declared once, with its name, type, default,
env var, help and the entry points it applies to.

`zoom-ingest run`/`demo` make their click options from it (cli.py), `zoom-ingest-job` and
`zoom-ingest-detections` their argparse flags (`add_flags`), and notebooks/run_ingest.py
its widgets. Tests check README.md's settings table and the bundle's job parameters
against it (tests/test_options.py). The defaults of Settings and DetectionSettings fields
are read from those dataclasses, so each default has one source. Every setting is read
through it: `checked_settings` and `detection_settings` (text → values → the dataclass),
`env_texts` (an entry point's env vars), and the Databricks job's credential env vars.
Settings know nothing of Zoom; the values Zoom defines (the operation logs' category
types, zoom/rules.py) are checked here, as the option's choices.

It imports only the standard library, settings.py, tables.py and zoom/rules.py (no click,
rich, duckdb or deltalake): the Databricks entry points import it without the `local`
extra (tests/test_entry_points.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .settings import (
    CREDENTIAL_ENV_VARS,
    DEFAULT_ENGINE,
    ENGINES,
    MODES,
    STREAMS,
    DetectionSettings,
    Secret,
    Settings,
    SettingsError,
    parse_date,
    parse_duration,
    parse_streams,
)
from .tables import SEVERITIES
from .zoom.rules import CATEGORY_TYPES

# The entry points an option applies to.
RUN = "zoom-ingest run"
DEMO = "zoom-ingest demo"
#: `zoom-ingest-job`, the ingest jobs' python_wheel_task (databricks_job.py).
JOB = "zoom-ingest-job"
#: A job parameter of the bundle's ingest jobs (resources/zoom_ingest*.job.yml).
BUNDLE = "bundle job parameter"
#: A widget of notebooks/run_ingest.py (which passes it on to `zoom-ingest-job`).
NOTEBOOK = "run_ingest notebook"
#: `zoom-ingest-detections`, the hourly job's detections task (detections.py).
DETECTIONS = "zoom-ingest-detections"
ENTRY_POINTS = (RUN, DEMO, JOB, BUNDLE, NOTEBOOK, DETECTIONS)

# What an option's value configures.
SETTINGS = "Settings"
DETECTION_SETTINGS = "DetectionSettings"


def _defaults(dataclass_type: type) -> dict[str, object]:
    found: dict[str, object] = {}
    for f in dataclasses.fields(dataclass_type):
        if f.default is not dataclasses.MISSING:
            found[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # e.g. streams: every registered one
            found[f.name] = f.default_factory()
    return found


SETTINGS_DEFAULTS = _defaults(Settings)
DETECTION_DEFAULTS = _defaults(DetectionSettings)


def duration_text(value: timedelta) -> str:
    """timedelta → the shortest of `1d`, `2h`, `90m`, `30s` that parse_duration reads back."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def number_text(value: float) -> str:
    """10.0 → `10`, 0.5 → `0.5`."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _text(value: object) -> str:
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return number_text(value)
    return str(value)


@dataclass(frozen=True)
class Option:
    """One user-facing setting."""

    #: snake_case: the Settings/DetectionSettings field, job parameter and widget name.
    name: str
    #: One or more sentences without the last full stop.
    help: str
    entry_points: frozenset[str]
    #: SETTINGS or DETECTION_SETTINGS when the value is that dataclass's field of this name;
    #: empty for an entry point's own option (catalog, warehouse, …).
    configures: str = ""
    #: How the CLI types the value (str, int or float); the job takes text and `parse`s it.
    kind: type = str
    #: The value when not set: a Settings/DetectionSettings option's is its field's
    #: default (see `setting`); None: no default (required, or derived).
    default: object = None
    env: str | None = None
    #: Text → the value (SettingsError names the option); None: the stripped text.
    parse: Callable[[str], object] | None = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    #: What "no default" means, for help and docs (`from the rate`, `all Zoom holds`).
    unset: str = ""
    #: The value the bundle variable and the notebook widget start with, where the entry
    #: point itself has none (schema: required by the job, `zoom` in the bundle).
    suggested: str | None = None
    #: The notebook widget's label (default: the name with spaces).
    label: str = ""
    #: zoom-ingest-job falls back to the env var when the flag is empty (the API URLs
    #: of a local run); other job options ignore the environment.
    job_reads_env: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default_text(self) -> str:
        """The default as a flag, job parameter or widget would spell it; empty: none."""
        return "" if self.default is None else _text(self.default)

    @property
    def starting_value(self) -> str:
        """What the bundle variable and the notebook widget hold before anyone edits them."""
        return self.default_text if self.suggested is None else self.suggested

    @property
    def widget_label(self) -> str:
        return self.label or self.name.replace("_", " ")

    def applies_to(self, entry_point: str) -> bool:
        return entry_point in self.entry_points

    def help_with_default(self) -> str:
        """The help with the default spelled out, for argparse (click shows its own)."""
        shown = self.default_text or self.unset
        return f"{self.sentence} Default: {shown}." if shown else self.sentence

    @property
    def sentence(self) -> str:
        """The help as a sentence (the table's help has no final full stop)."""
        return f"{self.help}."

    def value_of(self, text: str) -> object:
        """The value of a flag's or parameter's text; SettingsError names this option."""
        return self.parse(text) if self.parse is not None else text.strip()


def _integer(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise SettingsError(name, f"{text!r} is not a whole number") from None

    return parse


def _number(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            raise SettingsError(name, f"{text!r} is not a number") from None

    return parse


def _parser_for(name: str, kind: type, default: object) -> Callable[[str], object] | None:
    if kind is int:
        return _integer(name)
    if kind is float:
        return _number(name)
    if isinstance(default, timedelta):
        return lambda text: parse_duration(name, text)
    return None


def setting(name: str, help: str, entry_points: Iterable[str], **more: Any) -> Option:
    """An option that sets the Settings field `name`; its default is the field's."""
    return _field_option(SETTINGS, SETTINGS_DEFAULTS, name, help, entry_points, more)


def detection(name: str, help: str, entry_points: Iterable[str], **more: Any) -> Option:
    """An option that sets the DetectionSettings field `name`; its default is the field's."""
    return _field_option(DETECTION_SETTINGS, DETECTION_DEFAULTS, name, help, entry_points, more)


def _field_option(
    configures: str,
    defaults: Mapping[str, object],
    name: str,
    help: str,
    entry_points: Iterable[str],
    more: dict[str, Any],
) -> Option:
    default = defaults.get(name)
    kind = more.pop("kind", type(default) if isinstance(default, (int, float)) else str)
    declared = Option(
        name=name,
        help=help,
        entry_points=frozenset(entry_points),
        configures=configures,
        kind=kind,
        default=default,
        env=f"ZOOM_INGEST_{name.upper()}",
        parse=_parser_for(name, kind, default),
    )
    return dataclasses.replace(declared, **more)


def parse_countries(text: str) -> tuple[str, ...]:
    """`kp, IR ,cu` → ("KP", "IR", "CU"); `none` or `-` → no watched country."""
    if text.strip().lower() in ("none", "-"):
        return ()
    return tuple(dict.fromkeys(c.strip().upper() for c in text.split(",") if c.strip()))


def _backfill_start(text: str) -> object:
    return parse_date("backfill_start", text) if text.strip() else None


#: Every place a run's setting can come from.
EVERYWHERE = (RUN, DEMO, JOB, BUNDLE, NOTEBOOK)
#: The Databricks ingest entry point, its job parameters and the notebook.
ON_DATABRICKS = (JOB, BUNDLE, NOTEBOOK)
#: Tuning a run rarely needs: not worth a notebook widget.
TUNING = (RUN, DEMO, JOB, BUNDLE)

OPTIONS: tuple[Option, ...] = (
    # -- where a local run writes
    Option(
        "warehouse",
        "Folder of the local Delta tables (one sub-folder per table)",
        frozenset({RUN}),
        default="warehouse",
        env="ZOOM_INGEST_WAREHOUSE",
    ),
    Option(
        "engine",
        "local: Delta tables written with delta-rs (no JVM). spark: the Databricks code "
        "path on a local SparkSession with Delta Lake (needs Java 17+ and the spark extra; "
        "fetches the Delta jars from Maven Central once). Both write <warehouse>/<table>",
        frozenset({RUN, DEMO}),
        default=DEFAULT_ENGINE,
        env="ZOOM_INGEST_ENGINE",
        choices=ENGINES,
    ),
    # -- where a Databricks run writes, and its credentials
    Option(
        "catalog",
        "Unity Catalog catalog of the tables (required)",
        frozenset({*ON_DATABRICKS, DETECTIONS}),
        label="catalog (required)",
    ),
    Option(
        "schema",
        "Schema of the tables (required); created if missing",
        frozenset({*ON_DATABRICKS, DETECTIONS}),
        suggested="zoom",
    ),
    Option(
        "secret_scope",
        "Databricks secret scope holding the Zoom app's credentials. Empty: read "
        "ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET from the environment",
        frozenset(ON_DATABRICKS),
        suggested="zoom_ingest",
    ),
    Option(
        "account",
        "Secret key prefix for one of several Zoom accounts in one scope: "
        "--account acme reads acme_account_id, acme_client_id, acme_client_secret",
        # A job parameter in spirit too, but per account: the `accounts` list brings it.
        frozenset({JOB, NOTEBOOK}),
        label="account (secret key prefix)",
    ),
    # -- credentials and the Zoom addresses of a local run
    setting(
        "account_id",
        "Zoom account id",
        {RUN},
        env=CREDENTIAL_ENV_VARS["account_id"],
        parse=str.strip,
    ),
    setting(
        "client_id",
        "S2S OAuth app client id",
        {RUN},
        env=CREDENTIAL_ENV_VARS["client_id"],
        parse=str.strip,
    ),
    setting(
        "client_secret",
        "S2S OAuth app client secret; prefer the env var (never logged)",
        {RUN},
        env=CREDENTIAL_ENV_VARS["client_secret"],
        parse=lambda text: Secret(text.strip()),
    ),
    setting(
        "api_url",
        "Zoom API base URL (plain http only to loopback)",
        {RUN, JOB},
        env="ZOOM_API_URL",
        parse=lambda text: text.strip().rstrip("/"),
        job_reads_env=True,
    ),
    setting(
        "oauth_url",
        "Zoom token URL",
        {RUN, JOB},
        env="ZOOM_OAUTH_URL",
        job_reads_env=True,
    ),
    # -- what a run fetches
    setting(
        "streams",
        "Comma-separated streams to ingest, from " + ", ".join(STREAMS),
        EVERYWHERE,
        parse=parse_streams,
    ),
    setting(
        "category_type",
        "Operation-log filter: " + ", ".join(CATEGORY_TYPES),
        EVERYWHERE,
        choices=CATEGORY_TYPES,
        label="operation category",
    ),
    setting(
        "backfill_start",
        "First run only: ingest every record from this UTC date on (clamped to Zoom's "
        "6-month retention)",
        EVERYWHERE,
        parse=_backfill_start,
        metavar="YYYY-MM-DD",
        unset="all Zoom holds",
        label="backfill start (UTC date, first run)",
    ),
    setting(
        "lookback",
        "Later runs re-read from cursor minus this (90m, 2h, 1d)",
        EVERYWHERE,
    ),
    setting("mode", "One of " + ", ".join(MODES), EVERYWHERE, choices=MODES),
    setting(
        "reconcile_days",
        "reconcile mode: re-read this many full days, no early stop",
        EVERYWHERE,
    ),
    # -- how fast
    setting(
        "requests_per_second",
        "Client-side limit for the account (Heavy APIs: 10 Pro, 40 Business+)",
        EVERYWHERE,
    ),
    setting(
        "concurrency",
        "Windows fetched at once",
        TUNING,
        kind=int,
        unset="from the rate",
    ),
    setting("window_days", "Days per backfill window (1-28)", TUNING),
    setting(
        "batch_rows",
        "Rows buffered per table before a merge",
        TUNING,
        kind=int,
        unset="from the engine",
    ),
    setting("timeout", "Seconds to wait for one HTTP response", TUNING),
    setting(
        "max_retries",
        "Retries per request (429, 5xx, resets, timeouts)",
        TUNING,
    ),
    # -- how far a misbehaving answer may go: hitting one fails the window (exit 7)
    setting(
        "request_deadline",
        "Seconds one request may take in all (connect, headers, whole body); a request "
        "past it is retried like a timeout",
        TUNING,
    ),
    setting(
        "max_response_bytes",
        "Bytes a response body may have, on the wire and decompressed",
        TUNING,
    ),
    setting(
        "max_pages_per_window",
        "Pages one window may take (300 records each) before it counts as a loop",
        TUNING,
    ),
    setting(
        "lease_wait",
        "While another run holds the Zoom account's lease (zoom_ingest_leases), wait this "
        "long for it (0s, 10m, 1h), then end busy with exit 4",
        TUNING,
        # The bundle's jobs wait: an hourly run that meets the reconcile would otherwise
        # fail (exit 4) and mail someone.
        suggested="10m",
    ),
    Option(
        "lease_location",
        "Where the zoom_ingest_leases table lives, for runs on one Zoom account that write "
        "to different places: a warehouse folder (zoom-ingest run) or catalog.schema "
        "(zoom-ingest-job). Empty: beside the tables",
        frozenset({RUN, JOB}),
        env="ZOOM_INGEST_LEASE_LOCATION",
        unset="beside the tables",
    ),
    # -- after the run, and its log
    Option(
        "optimize",
        "OPTIMIZE the clustered tables after the run: auto (reconcile runs only), always, never",
        frozenset({JOB}),
        default="auto",
        choices=("auto", "always", "never"),
    ),
    Option(
        "log_level",
        "Log level of zoom_ingest",
        frozenset({RUN, DEMO, JOB}),
        default="INFO",
        env="ZOOM_INGEST_LOG_LEVEL",
    ),
    # -- the detections
    detection(
        "watched_countries",
        "watched_country_sign_in: ISO country codes, comma-separated ('none' for no country)",
        {DETECTIONS},
        parse=parse_countries,
    ),
    detection(
        "travel_window",
        "impossible_travel: two countries closer in time than this",
        {DETECTIONS},
    ),
    detection(
        "country_learning_days",
        "new_country_sign_in: days of a user's history before a new country alerts",
        {DETECTIONS},
    ),
    Option(
        "source",
        "Where activity_logs and operation_logs are when another tool writes them (the "
        "Databricks Zoom Logs connector): catalog.schema, or a schema of --catalog; the "
        "outputs (zoom_detections, zoom_ip_countries, views) stay in --schema. Locally "
        "(zoom-ingest query/report --source) a warehouse folder. Empty: beside the outputs",
        frozenset({DETECTIONS}),
        env="ZOOM_INGEST_SOURCE",
        unset="beside the outputs",
    ),
    Option(
        "fail_on",
        f"Exit 6 when a new alert has this severity or above ({', '.join(SEVERITIES)}); "
        "empty: never",
        frozenset({DETECTIONS}),
        choices=SEVERITIES,
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


def for_entry_point(entry_point: str) -> tuple[Option, ...]:
    """The options of one entry point, in the table's order."""
    return tuple(option for option in OPTIONS if option.applies_to(entry_point))


def build_parser(
    prog: str, description: str, entry_point: str, action: type[argparse.Action]
) -> argparse.ArgumentParser:
    """A Databricks entry point's parser: one flag per option of `entry_point`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_flags(parser, entry_point, action)
    return parser


def add_flags(
    parser: argparse.ArgumentParser, entry_point: str, action: type[argparse.Action]
) -> None:
    """One `--flag` per option of `entry_point`, whose text is empty when not given
    (or the env var's, for an option the job reads from the environment)."""
    for option in for_entry_point(entry_point):
        default = os.environ.get(option.env, "") if option.job_reads_env and option.env else ""
        parser.add_argument(
            option.flag,
            action=action,
            default=default,
            metavar=option.metavar,
            help=option.help_with_default(),
        )


def env_texts(entry_point: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """option name → its env var's text, for the options of `entry_point` that have one
    set (default: this process's environment)."""
    env = os.environ if environ is None else environ
    return {
        option.name: env[option.env]
        for option in for_entry_point(entry_point)
        if option.env and option.env in env
    }


def checked_settings(**values: Any) -> Settings:
    """Settings from field values (`given_values`, credentials, …), each also one of its
    option's choices where it has some: Zoom's category types are Zoom's rule, which
    settings.py does not know. SettingsError names the first bad value."""
    settings = Settings(**values)
    for option in OPTIONS:
        if option.configures == SETTINGS and option.choices:
            value = getattr(settings, option.name)
            if value not in option.choices:
                raise SettingsError(
                    option.name, f"{value!r} is not one of {', '.join(option.choices)}"
                )
    return settings


def detection_settings(texts: Mapping[str, object]) -> DetectionSettings:
    """DetectionSettings from text (flags, job parameters, env vars), by option name;
    None or empty keeps the default. SettingsError names the first bad one."""
    return DetectionSettings(**given_values(DETECTIONS, DETECTION_SETTINGS, texts))


def detection_settings_from_env(environ: Mapping[str, str] | None = None) -> DetectionSettings:
    """DetectionSettings from the detections' env vars (ZOOM_INGEST_WATCHED_COUNTRIES, …)."""
    return detection_settings(env_texts(DETECTIONS, environ))


def given_values(entry_point: str, configures: str, texts: Mapping[str, object]) -> dict[str, Any]:
    """field → parsed value of every option of `entry_point` that sets a `configures`
    field and has non-empty text in `texts`; the others keep their dataclass defaults.
    SettingsError names the first bad one."""
    values: dict[str, Any] = {}
    for option in for_entry_point(entry_point):
        text = texts.get(option.name)
        if option.configures == configures and isinstance(text, str) and text.strip():
            values[option.name] = option.value_of(text)
    return values
