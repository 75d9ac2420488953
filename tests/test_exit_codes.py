"""The one mapping from outcomes to exit codes (`zoom_ingest.exit_codes`).

Every entry point asks the same two functions which code an outcome ends with: an
outcome raised as an exception (`for_exception`), or what a run's summary says
(`for_run`, through `RunSummary.exit_code`). The exceptions are named there by class
name (the module imports nothing of the package), so these tests hold each name to a
real class of the package. tests/test_entry_points.py and tests/test_cli.py check the
codes as each entry point's caller sees them.
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from zoom_ingest import exit_codes
from zoom_ingest.engines.base import (
    AccountBusy,
    EngineBusy,
    TableSchemaMismatch,
    UnsupportedTable,
)
from zoom_ingest.job import RunSummary
from zoom_ingest.setting_values import SettingsError
from zoom_ingest.tables import UTC
from zoom_ingest.zoom.errors import (
    DailyLimitReached,
    IncompleteAnswer,
    UnusableAnswer,
    ZoomError,
    ZoomUnreachable,
)

NOON = datetime(2025, 1, 1, 12, tzinfo=UTC)
#: Each outcome the entry points report in one line, and the code it must end with.
OUTCOMES: list[tuple[BaseException, int]] = [
    (SettingsError("lookback", "not a duration"), 2),
    (TableSchemaMismatch("activity_logs", "wh", ["missing column lw_id string"]), 2),
    (UnsupportedTable("activity_logs", "wh", ["clustering"], "local"), 2),
    (EngineBusy("another run holds the warehouse"), 4),
    (AccountBusy("another run holds the Zoom account's lease"), 4),
    (DailyLimitReached("daily limit reached", retry_at=NOON), 3),
    (ZoomUnreachable("cannot reach https://zoom.us"), 5),
    (IncompleteAnswer("a page without its records list", reason="no records list"), 7),
]


@pytest.mark.parametrize(("outcome", "code"), OUTCOMES, ids=lambda v: type(v).__name__)
def test_each_outcome_raised_ends_with_its_code(outcome: BaseException, code: int) -> None:
    assert exit_codes.for_exception(outcome) == code


def test_every_name_in_the_mapping_is_a_class_of_the_package() -> None:
    """A renamed exception would silently fall out of the mapping: each name must be one
    of the classes above (AccountBusy ends like EngineBusy, its base)."""
    named = {type(outcome).__name__ for outcome, _ in OUTCOMES} - {"AccountBusy"}
    assert set(exit_codes.EXCEPTION_CODES) == named
    for outcome, _ in OUTCOMES:
        assert type(outcome).__module__.startswith("zoom_ingest.")


def test_other_errors_have_no_code_and_keep_their_traceback() -> None:
    assert exit_codes.for_exception(ZeroDivisionError()) is None
    assert exit_codes.for_exception(ZoomError("HTTP 500")) is None  # a stream's failure
    # Retried within a run; the client turns the last one into IncompleteAnswer.
    assert exit_codes.for_exception(UnusableAnswer("no records list")) is None

    class SettingsError(Exception):  # another library's class of the same name
        pass

    assert exit_codes.for_exception(SettingsError()) is None


@pytest.mark.parametrize(
    ("statuses", "flags", "code"),
    [
        (["succeeded", "succeeded"], {}, exit_codes.OK),
        ([], {}, exit_codes.OK),
        (["busy", "busy"], {"busy": True}, exit_codes.BUSY),
        (["failed", "failed"], {"unreachable": True}, exit_codes.ZOOM_UNREACHABLE),
        (["succeeded", "failed"], {}, exit_codes.STREAM_FAILED),
        (["succeeded", "incomplete"], {}, exit_codes.INCOMPLETE),
        (["failed", "incomplete"], {}, exit_codes.STREAM_FAILED),  # a failure first
        (["stopped", "succeeded"], {"daily_limit": True}, exit_codes.DAILY_LIMIT),
        (["incomplete", "stopped"], {"daily_limit": True}, exit_codes.INCOMPLETE),
        (["stopped", "succeeded"], {}, exit_codes.STREAM_FAILED),  # stopped, no reason
        (["failed"], {"busy": True, "unreachable": True}, exit_codes.BUSY),
    ],
)
def test_a_run_ends_with_the_first_code_that_applies(
    statuses: list[str], flags: dict[str, bool], code: int
) -> None:
    assert exit_codes.for_run(statuses, **flags) == code
    # The run's summary says the same through the same mapping.
    summary = RunSummary(
        run_id="r",
        account_id="a",
        engine="local",
        streams=[SimpleNamespace(status=s) for s in statuses],  # type: ignore[misc]
        started_at=NOON,
        duration=1.0,
        daily_limit_retry_at=NOON if flags.get("daily_limit") else None,
        unreachable="cannot reach" if flags.get("unreachable") else None,
        busy="run-2 until 12:05" if flags.get("busy") else None,
    )
    assert summary.exit_code == code


def test_exit_codes_imports_nothing_of_the_package() -> None:
    """Every module may import it, so it must stay out of every import cycle."""
    import zoom_ingest.exit_codes as module

    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("zoom_ingest")
        ):
            imported.append(f"{'.' * node.level}{node.module or ''}")
        elif isinstance(node, ast.Import):
            imported += [a.name for a in node.names if a.name.startswith("zoom_ingest")]
    assert imported == []
