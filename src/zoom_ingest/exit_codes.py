"""The exit codes of every zoom_ingest entry point, declared once.

`zoom-ingest` (local), `zoom-ingest-job` (the Databricks ingest task) and
`zoom-ingest-detections` (the Databricks detections task) all end with one of these, so
a scheduler, a shell script or a person reading a failed task's output can tell the
cases apart. README.md and docs/databricks.md list them; a test checks those tables
against `DESCRIPTIONS`.

Which outcome ends with which code is decided here too, once, for every entry point:
`for_exception()` for an outcome raised as an exception (a bad setting, a destination
that does not match, a busy account, …), `for_run()` for what a run's summary says.

On Databricks a python_wheel_task calls the entry point and ignores what it returns:
only an exception (SystemExit included) marks the task failed. `exit_with()` is how
every entry point ends, so a non-zero code always fails the task.

This module imports nothing of the package: every module may import it, and it stays
out of every import cycle. So the exceptions are named here by their class names, not
imported; tests/test_exit_codes.py checks that each name is a class of the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

#: Every stream succeeded (detections: no new alert at or above --fail-on).
OK = 0
#: A stream failed (see zoom_ingest_runs.error), or a write to the tables failed.
STREAM_FAILED = 1
#: A setting is wrong (a flag, a job parameter, a secret), or the destination is: a table
#: there exists with another schema. Nothing was called. A retry cannot fix it; a person
#: must.
BAD_SETTING = 2
#: Zoom's daily rate limit stopped the run. Checkpoints are kept; the summary says when
#: Zoom accepts calls again. Retrying before then fails the same way.
DAILY_LIMIT = 3
#: Another run holds the destination (warehouse folder, or catalog.schema in this
#: process), or the Zoom account's lease (zoom_ingest_leases) past --lease-wait: one
#: Zoom client per account at a time. Nothing was fetched; a lease-busy run leaves a
#: zoom_ingest_runs row per stream with status `busy`.
BUSY = 4
#: No connection to Zoom could be made at all (DNS, refused connection, TLS), after a
#: few attempts within seconds: nothing was fetched. The network may come back; the next
#: scheduled run is the retry.
ZOOM_UNREACHABLE = 5
#: The detections stored a new alert at or above --fail-on severity.
ALERTS = 6
#: Zoom's answer for a window could not be proven complete (a page without its records
#: list, records out of order or outside the window, a page-token loop, or a limit hit:
#: max_pages_per_window, max_response_bytes, request_deadline). That window's checkpoint
#: stays; zoom_ingest_runs.failed_window names it and why. The next run reads it again.
INCOMPLETE = 7

DESCRIPTIONS: dict[int, str] = {
    OK: "ok",
    STREAM_FAILED: "a stream failed",
    BAD_SETTING: "a bad setting (nothing was called)",
    DAILY_LIMIT: "stopped at Zoom's daily rate limit (checkpoints kept)",
    BUSY: "busy: another run holds the destination or the Zoom account's lease",
    ZOOM_UNREACHABLE: "Zoom could not be reached (DNS, refused connection, TLS)",
    ALERTS: "detections: a new alert at or above --fail-on",
    INCOMPLETE: "Zoom's answer could not be proven complete (see failed_window)",
}


#: The outcomes raised as exceptions that an entry point reports in one line and ends
#: with the code given here, by the exception's class name; a subclass ends like its
#: nearest listed base. Any other exception is a bug: it keeps its traceback.
EXCEPTION_CODES: dict[str, int] = {
    # A wrong flag, job parameter or secret.
    "SettingsError": BAD_SETTING,
    # A destination table whose schema is not ours, or one this engine cannot write
    # (delta-rs and Spark's liquid clustering): the user's setting to fix, not a retry's.
    "TableSchemaMismatch": BAD_SETTING,
    "UnsupportedTable": BAD_SETTING,
    # Another run holds the destination, or the Zoom account's lease (AccountBusy).
    "EngineBusy": BUSY,
    "DailyLimitReached": DAILY_LIMIT,
    "ZoomUnreachable": ZOOM_UNREACHABLE,
    "IncompleteAnswer": INCOMPLETE,
}
#: The package whose exceptions `EXCEPTION_CODES` names (another library's exception of
#: the same name is not one of ours).
_PACKAGE = __name__.rpartition(".")[0]


def for_exception(exc: BaseException) -> int | None:
    """The exit code of an outcome raised as `exc`; None when `exc` is none of
    `EXCEPTION_CODES` (an unexpected error: let it propagate)."""
    for cls in type(exc).__mro__:
        code = EXCEPTION_CODES.get(cls.__name__)
        if code is not None and cls.__module__.partition(".")[0] == _PACKAGE:
            return code
    return None


def for_run(
    stream_statuses: Iterable[str],
    *,
    busy: bool = False,
    unreachable: bool = False,
    daily_limit: bool = False,
) -> int:
    """The exit code of a run from its summary: the status of each stream (`succeeded`,
    `failed`, `incomplete`, `stopped`, `busy`), whether another run held the Zoom
    account's lease (`busy`), whether Zoom could not be reached (`unreachable`) and
    whether Zoom's daily limit stopped it (`daily_limit`).

    The first that applies wins: busy, unreachable, a failed stream, an incomplete one,
    the daily limit, any stream that did not succeed (a failure), else OK."""
    statuses = list(stream_statuses)
    if busy:
        return BUSY
    if unreachable:
        return ZOOM_UNREACHABLE
    if "failed" in statuses:
        return STREAM_FAILED
    if "incomplete" in statuses:
        return INCOMPLETE
    if daily_limit:
        return DAILY_LIMIT
    if any(status != "succeeded" for status in statuses):
        return STREAM_FAILED
    return OK


def exit_with(code: int) -> int:
    """End an entry point: raise SystemExit for a non-zero code, return 0 otherwise.

    Returning 0 rather than raising SystemExit(0) keeps a successful wheel task free of
    any exception, whatever the runner makes of SystemExit(0).
    """
    if code != OK:
        raise SystemExit(code)
    return OK


def fail(code: int) -> NoReturn:
    """Raise SystemExit(code) (non-zero): the task or the shell sees a failure."""
    if code == OK:
        raise ValueError("fail() needs a non-zero exit code")
    raise SystemExit(code)
