"""The exit codes of every zoom_ingest entry point, declared once.

`zoom-ingest` (local), `zoom-ingest-job` (the Databricks ingest task) and
`zoom-ingest-detections` (the Databricks detections task) all end with one of these, so
a scheduler, a shell script or a person reading a failed task's output can tell the
cases apart. README.md and docs/databricks.md list them; a test checks those tables
against `DESCRIPTIONS`.

On Databricks a python_wheel_task calls the entry point and ignores what it returns:
only an exception (SystemExit included) marks the task failed. `exit_with()` is how
every entry point ends, so a non-zero code always fails the task.
"""

from __future__ import annotations

from typing import NoReturn

#: Every stream succeeded (detections: no new alert at or above --fail-on).
OK = 0
#: A stream failed (see zoom_ingest_runs.error), or a write to the tables failed.
STREAM_FAILED = 1
#: A setting is wrong (a flag, a job parameter, a secret): nothing was called. A retry
#: cannot fix it; a person must.
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
