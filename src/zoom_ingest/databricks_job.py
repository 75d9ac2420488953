"""`zoom-ingest-job`: the entry point of the Databricks job (a `python_wheel_task`).

It runs on the driver with the SparkSession the runtime provides and writes Delta tables
in `catalog.schema` through the Spark engine. Job parameters arrive as `--name=value`;
an empty value (what `{{job.parameters.backfill_start}}` gives when the parameter is
unset) means "not set": the default applies.

Credentials come from a Databricks secret scope (`--secret-scope`) through
databricks-sdk, with keys `account_id`, `client_id` and `client_secret`, or, with
`--account acme`, `acme_account_id`, `acme_client_id` and `acme_client_secret`, so one
scope can hold several Zoom accounts. Without a scope (a local run) they come from
ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET. They are never logged.

Exit status (`exit_codes`): 0 every stream succeeded, 1 a stream failed, 2 a bad
setting or a destination table with another schema (nothing was called), 3 Zoom's daily
rate limit stopped the run (checkpoints kept), 4 busy: another run holds the Zoom
account's lease (`--lease-wait`, `--lease-location`) or, in this process, the
destination, 7 Zoom's answer for a window could not be proven complete (its checkpoint
stays). The `zoom_ingest_runs` table has one row per stream with the details.

This module and everything it imports on the Spark path use only the wheel's base
requirements: deltalake, duckdb, sqlglot, rich and click are the `local` extra, which a
Databricks environment does not install (tests/test_entry_points.py blocks every import
outside the wheel's `Requires-Dist`; tests/test_release_rehearsal.py runs the tasks in a
venv holding only the wheel, its requirements and the Spark Connect client).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import exit_codes, job, options
from .engines.spark import SparkEngine
from .job_parameters import LastNonEmpty
from .masking import mask
from .setting_values import catalog_schema
from .settings import Secret, Settings, SettingsError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("zoom_ingest.databricks_job")

#: The keys read from the secret scope, each prefixed with `<account>_` when --account is set.
SECRET_KEYS = ("account_id", "client_id", "client_secret")
#: Where the credentials come from when no secret scope is given: the option table's env
#: vars of those settings (the ones `zoom-ingest run` reads).
CREDENTIAL_ENV = {name: str(options.BY_NAME[name].env) for name in SECRET_KEYS}
OPTIMIZE = options.BY_NAME["optimize"]
OPTIMIZE_CHOICES = OPTIMIZE.choices

#: (scope, key) → secret value
SecretReader = Callable[[str, str], str]


def build_parser() -> argparse.ArgumentParser:
    """One flag per option of the JOB entry point in options.OPTIONS."""
    return options.build_parser(
        "zoom-ingest-job",
        "Ingest Zoom activity and operation logs into Delta tables (catalog.schema) with "
        "the active SparkSession. An empty value means not set.",
        options.JOB,
        LastNonEmpty,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run once and return the exit status (see the module docstring).

    Called as the entry point (no `argv`: the arguments are the process's), a non-zero
    status is raised as SystemExit, because a python_wheel_task calls the function and
    ignores what it returns: only an exit or an exception marks the task failed, which is
    what triggers its retries and the failure notifications.
    """
    status = run_once(argv)
    if argv is None:
        return exit_codes.exit_with(status)
    return status


def run_once(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the job once, return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or an unknown flag: argparse has said why
        return int(exc.code or 0)
    try:
        catalog = _required("catalog", args.catalog)
        schema = _required("schema", args.schema)
        optimize = _choice("optimize", args.optimize, OPTIMIZE_CHOICES, OPTIMIZE.default_text)
        lease_location = lease_schema(args.lease_location, catalog)
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(mask(f"error: {exc}"), file=sys.stderr)
        return exit_codes.BAD_SETTING
    _configure_logging(args.log_level or options.BY_NAME["log_level"].default_text, settings)
    engine = SparkEngine(
        get_spark(),
        catalog,
        schema,
        optimize=optimize == "always" or (optimize == "auto" and settings.mode == "reconcile"),
    )
    log.info(
        "zoom-ingest-job: %s run of %s into %s",
        settings.mode,
        settings.account_id,
        engine.describe(),
    )
    lease_engine = (
        SparkEngine(engine.spark, *lease_location, optimize=False) if lease_location else None
    )
    try:
        summary = job.run(settings, engine, progress=False, lease_engine=lease_engine)
    except Exception as exc:
        # A known outcome (busy, a destination that does not match, …): nothing was
        # fetched or written, the message says what to do, the code is the local CLI's.
        # Anything else is a bug and keeps its traceback.
        code = exit_codes.for_exception(exc)
        if code is None:
            raise
        log.error("%s", exc)
        return code
    for line in summary.lines():  # the run summary, in the task's output
        print(line, flush=True)
    return summary.exit_code


def lease_schema(text: str, catalog: str) -> tuple[str, str] | None:
    """`--lease-location`: `catalog.schema`, or `schema` in the job's catalog; None when
    empty (the lease lives beside the tables)."""
    return catalog_schema("lease_location", text, catalog)


def settings_from_args(
    args: argparse.Namespace, read_secret: SecretReader | None = None
) -> Settings:
    """Parsed arguments (+ credentials) → validated Settings; SettingsError names the bad one.

    The plain settings are checked first: a typo fails before the secret scope is read."""
    values = options.given_values(options.JOB, options.SETTINGS, vars(args))
    account_id, client_id, client_secret = credentials(
        args.secret_scope.strip(), args.account.strip(), read_secret
    )
    return options.checked_settings(
        account_id=account_id, client_id=client_id, client_secret=client_secret, **values
    )


def credentials(
    scope: str, account: str, read_secret: SecretReader | None = None
) -> tuple[str, str, Secret]:
    """(account_id, client_id, client_secret) from the secret scope, or the environment."""
    if not scope:
        values = {name: os.environ.get(env, "").strip() for name, env in CREDENTIAL_ENV.items()}
    else:
        read = read_secret or _workspace_secret_reader(scope)
        values = {}
        for name in SECRET_KEYS:
            key = secret_key(account, name)
            try:
                values[name] = read(scope, key).strip()
            except Exception as exc:
                raise SettingsError(
                    "secret_scope",
                    f"cannot read key {key!r} from secret scope {scope!r} "
                    f"({type(exc).__name__}: {_first_line(exc)}); see docs/databricks.md",
                ) from None
            if not values[name]:
                raise SettingsError("secret_scope", f"key {key!r} in scope {scope!r} is empty")
    return values["account_id"], values["client_id"], Secret(values["client_secret"])


def secret_key(account: str, name: str) -> str:
    """The key of credential `name` in the scope: `name`, or `<account>_name`."""
    return f"{account}_{name}" if account else name


def _workspace_secret_reader(scope: str) -> SecretReader:
    """`workspace_secret_reader()`, its failures a SettingsError: the workspace client
    checks its configuration and authentication when it is made (a missing host, an
    unusable token or profile), which is a bad setting of the run like a missing key."""
    try:
        return workspace_secret_reader()
    except Exception as exc:
        raise SettingsError(
            "secret_scope",
            f"cannot read secret scope {scope!r}: the Databricks workspace client could not "
            f"be set up ({type(exc).__name__}: {_redacted(_first_line(exc))}); "
            "see docs/databricks.md",
        ) from None


def workspace_secret_reader() -> SecretReader:
    """Reads secrets through databricks-sdk (on a cluster it uses the runtime's dbutils)."""
    from databricks.sdk import WorkspaceClient

    dbutils = WorkspaceClient().dbutils
    return lambda scope, key: dbutils.secrets.get(scope=scope, key=key)


def get_spark() -> SparkSession:
    """The session of the Databricks runtime (serverless: Spark Connect), or a local one."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    # The job's session time zone: instants show in UTC in its logs and ad-hoc SQL (the
    # engine itself stores and compares instants the same in any zone).
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def _configure_logging(level: str, settings: Settings) -> None:
    # The CLI's setup: plain lines on stderr outside a terminal, the client secret redacted
    # from every record as defence in depth.
    from .logs import configure_logging

    configure_logging(level, [settings.client_secret.reveal()])


def _given(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def _required(setting: str, value: str) -> str:
    if not _given(value):
        raise SettingsError(setting, f"empty; pass --{setting.replace('_', '-')}")
    return value.strip()


def _choice(setting: str, value: str, allowed: Sequence[str], default: str) -> str:
    value = value.strip() or default
    if value not in allowed:
        raise SettingsError(setting, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


#: Environment variables of databricks-sdk's unified authentication that hold secrets.
WORKSPACE_SECRET_ENV = ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_PASSWORD")


def _redacted(text: str) -> str:
    """`text` without the workspace credentials of the environment (the SDK masks them in
    its own messages; this holds even if one does not)."""
    for name in WORKSPACE_SECRET_ENV:
        value = os.environ.get(name, "").strip()
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


if __name__ == "__main__":
    sys.exit(main())
