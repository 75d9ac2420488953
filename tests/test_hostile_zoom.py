"""Runs against a hostile Zoom (support/hostile_zoom.py): whatever it answers, the same
invariants hold after every run.

- exit 0 ⇒ every record Zoom holds for the run's range is stored; whatever the exit
  code, every record older than the checkpoint is stored (a checkpoint never moves past
  a window its pages did not prove complete);
- the run ends within a bounded time, with its peak memory bounded;
- no secret, in any form (the client secret, base64 of id:secret, any access token
  issued), in any output: the log, stderr, the summary, the runs and rejects tables.

One test per misbehaviour says what its run must end with; a property-based test mixes
misbehaviours, when they start and how long they last.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import hostile_zoom
from support.hostile_zoom import (
    BASIC,
    CLIENT_ID,
    CLIENT_SECRET,
    HARMLESS,
    KINDS,
    HostileZoom,
    Hostility,
    truth_records,
)
from zoom_ingest import exit_codes
from zoom_ingest.engines import LocalEngine
from zoom_ingest.job import RunSummary, run, zoom_client_config
from zoom_ingest.plan import plan_stream
from zoom_ingest.settings import Secret, Settings
from zoom_ingest.tables import ACTIVITY_LOGS, CHECKPOINTS, REJECTS, RUNS
from zoom_ingest.zoom import ZoomClient

#: The limits the runs here are held to (small, so that hitting one takes seconds).
DEADLINE = 1.5
MAX_BODY = 1 << 20
MAX_PAGES = 40
#: No run may take longer than this, whatever the hostility (slow ones take a few
#: request deadlines: each window's attempts, the windows in flight at once).
TIME_BOUND = 30.0
#: …nor grow the process by more than this (a bomb inflated would be 1 GiB).
MEMORY_BOUND = 200 << 20

#: Every run is pinned to a moment of yesterday (`run(now=…)`), one each way a run cuts
#: its dates: early in the UTC day its three dates are one chain, later they are a chain a
#: date (Zoom's dates reach 14 h ahead of UTC). A hostility's outcome must not depend on
#: the hour the tests run at.
_YESTERDAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
    days=1
)
MOMENTS = {
    "one chain": _YESTERDAY + timedelta(hours=3, minutes=7),
    "a chain a date": _YESTERDAY + timedelta(hours=15, minutes=41),
}
PAGE_SIZE = 25


@functools.cache
def truth_at(now: datetime) -> list[dict[str, Any]]:
    """Three days of sign-ins up to `now`, 25 a page: every day window takes a few pages."""
    return truth_records(days=3, per_day=90, seed=21, now=now)


@dataclass
class Outcome:
    summary: RunSummary | None
    crash: BaseException | None
    seconds: float
    peak_growth: int
    texts: list[str]
    stored: set[str]
    cursor: datetime | None
    runs: list[dict[str, Any]]
    rejects: list[dict[str, Any]]
    zoom: HostileZoom
    floor: datetime
    now: datetime

    @property
    def truth(self) -> list[dict[str, Any]]:
        return self.zoom.truth

    @property
    def exit_code(self) -> int:
        return self.summary.exit_code if self.summary is not None else -1


def hostile_settings(base_url: str, now: datetime) -> Settings:
    return Settings(
        account_id=hostile_zoom.ACCOUNT_ID,
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        api_url=f"{base_url}/v2",
        oauth_url=f"{base_url}/oauth/token",
        streams=("activity_logs",),
        backfill_start=now.date() - timedelta(days=1),
        requests_per_second=500,
        concurrency=4,
        # Longer than the fake's byte a second: only the whole deadline stops a trickle.
        timeout=5.0,
        max_retries=1,
        request_deadline=DEADLINE,
        max_response_bytes=MAX_BODY,
        max_pages_per_window=MAX_PAGES,
    )


def _peak_rss() -> int | None:
    """The process's peak resident memory (bytes) since the last `_reset_peak`."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) * 1024 if match else None


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@contextlib.contextmanager
def _captured_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("zoom_ingest")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def hostile_run(hostility: Hostility, warehouse: Path, now: datetime) -> Outcome:
    zoom = HostileZoom(truth_at(now), hostility)
    if hostility.kind == "bomb":
        hostile_zoom.bomb()  # made before the measure: the fake's memory is not the run's
    with zoom.serving() as url:
        cfg = hostile_settings(url, now)
        stderr = io.StringIO()
        summary = crash = None
        _reset_peak()
        before = _peak_rss()
        started = time.monotonic()
        with _captured_log() as log, contextlib.redirect_stderr(stderr):
            try:
                with ZoomClient(
                    zoom_client_config(cfg), backoff_base=0.01, backoff_max=0.05
                ) as client:
                    summary = run(
                        cfg, LocalEngine(warehouse), progress=False, client=client, now=now
                    )
            except Exception as exc:  # a crash is an outcome too: the checks say if it's wrong
                crash = exc
        seconds = time.monotonic() - started
        after = _peak_rss()
    engine = LocalEngine(warehouse)
    stored = {r["email"] for r in engine.read_table(ACTIVITY_LOGS).to_pylist()}
    checkpoints = engine.read_table(CHECKPOINTS).to_pylist()
    runs = engine.read_table(RUNS).to_pylist()
    rejects = engine.read_table(REJECTS).to_pylist()
    texts = [log.getvalue(), stderr.getvalue(), repr(crash), str(crash)]
    if summary is not None:
        texts += summary.lines()
    texts += [repr(row) for row in runs + rejects]
    assert cfg.backfill_start is not None
    return Outcome(
        summary=summary,
        crash=crash,
        seconds=seconds,
        peak_growth=(after - before) if after is not None and before is not None else 0,
        texts=texts,
        stored=stored,
        cursor=checkpoints[0]["cursor"] if checkpoints else None,
        runs=runs,
        rejects=rejects,
        zoom=zoom,
        floor=datetime.combine(cfg.backfill_start, datetime.min.time(), UTC),
        now=now,
    )


def _instant(record: dict[str, Any]) -> datetime:
    return datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def check_data(outcome: Outcome) -> None:
    """exit 0 ⇒ nothing missing; any exit: nothing missing below the checkpoint."""
    owed = [r for r in outcome.truth if _instant(r) >= outcome.floor]
    if outcome.exit_code == exit_codes.OK:
        missing = [r["email"] for r in owed if r["email"] not in outcome.stored]
        assert not missing, f"exit 0 but {len(missing)} of {len(owed)} records missing"
    if outcome.cursor is not None:
        below = [r for r in owed if _instant(r) < outcome.cursor]
        missing = [r["email"] for r in below if r["email"] not in outcome.stored]
        assert not missing, f"{len(missing)} records below the checkpoint missing"


def check_bounds(outcome: Outcome) -> None:
    assert outcome.seconds < TIME_BOUND, f"the run took {outcome.seconds:.1f} s"
    assert outcome.peak_growth < MEMORY_BOUND, f"peak memory grew {outcome.peak_growth:,} B"


def check_secrets(outcome: Outcome) -> None:
    secrets = {"client secret": CLIENT_SECRET, "base64(id:secret)": BASIC}
    secrets.update({f"access token {n}": t for n, t in enumerate(outcome.zoom.issued)})
    for text in outcome.texts:
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} is in an output: …{_around(text, secret)}…"


def _around(text: str, secret: str) -> str:
    at = text.index(secret)
    return text[max(0, at - 60) : at].replace(secret, "<SECRET>")


def check_invariants(outcome: Outcome) -> None:
    assert outcome.crash is None, f"the run raised {outcome.crash!r}"
    check_data(outcome)
    check_bounds(outcome)
    check_secrets(outcome)


# -- each misbehaviour, from the first call on and never ending -----------------------------

#: kind → (the exit code its run ends with, what the runs row's error must say).
INCOMPLETE = exit_codes.INCOMPLETE
FAILED = exit_codes.STREAM_FAILED
EXPECTED: dict[str, tuple[int, str]] = {
    "records_missing": (INCOMPLETE, "'activity_logs' is missing, expected a list"),
    "records_null": (INCOMPLETE, "'activity_logs' is missing, expected a list"),
    "records_object": (INCOMPLETE, "'activity_logs' is dict, expected a list"),
    "records_string": (INCOMPLETE, "'activity_logs' is str, expected a list"),
    "wrong_types": (exit_codes.OK, ""),
    "not_json": (FAILED, "not a JSON object"),
    "truncated": (FAILED, "not a JSON object"),
    "oldest_first": (INCOMPLETE, "records out of order (not newest first) within a page"),
    "shuffled_pages": (INCOMPLETE, "records out of order (not newest first) across pages"),
    "endless_token": (INCOMPLETE, f"more than {MAX_PAGES} pages (max_pages_per_window)"),
    "repeat_token": (INCOMPLETE, "page-token loop: a next_page_token came again"),
    "fresh_same": (INCOMPLETE, "a fresh next_page_token brought the same records"),
    "stray_old": (INCOMPLETE, "records outside the window"),
    "stray_new": (INCOMPLETE, "records outside the window"),
    "gzip": (exit_codes.OK, ""),
    "gzip_members": (exit_codes.OK, ""),
    "deflate": (exit_codes.OK, ""),
    "raw_deflate": (exit_codes.OK, ""),
    "bad_charset": (exit_codes.OK, ""),  # an unknown charset is read as UTF-8, as requests does
    "utf16_charset": (FAILED, "not a JSON object"),
    "huge": (INCOMPLETE, f"larger than {MAX_BODY:,} bytes (max_response_bytes)"),
    "bomb": (INCOMPLETE, f"larger than {MAX_BODY:,} bytes (max_response_bytes)"),
    "slow_body": (INCOMPLETE, f"no whole answer within {DEADLINE:g} s (request_deadline)"),
    "slow_body_close": (INCOMPLETE, f"no whole answer within {DEADLINE:g} s (request_deadline)"),
    "slow_headers": (INCOMPLETE, f"no whole answer within {DEADLINE:g} s (request_deadline)"),
    "error_echo_headers": (FAILED, "HTTP 500"),
    "error_token_in_tracking": (FAILED, "HTTP 500"),
    "token_error_echo": (FAILED, "Zoom refused to issue an access token"),
}


def test_every_kind_has_its_expected_outcome() -> None:
    assert set(EXPECTED) == set(KINDS)
    assert {k for k, (code, _) in EXPECTED.items() if code == exit_codes.OK} >= HARMLESS


def test_the_moments_cut_the_dates_both_ways() -> None:
    """MOMENTS is only worth its runs if each way of cutting dates is among them."""
    cuts = {}
    for name, now in MOMENTS.items():
        cfg = hostile_settings("http://127.0.0.1:9", now)
        cuts[name] = len(plan_stream(cfg, "activity_logs", None, now).windows)
    assert cuts["one chain"] == 1 and cuts["a chain a date"] > 1, cuts


@pytest.mark.parametrize("moment", sorted(MOMENTS))
@pytest.mark.parametrize("kind", sorted(set(KINDS) - set(hostile_zoom.ERROR_KINDS)))
def test_a_hostile_answer_ends_the_run_as_it_must(kind: str, moment: str, tmp_path: Path) -> None:
    code, reason = EXPECTED[kind]
    outcome = hostile_run(Hostility(kind, page_size=PAGE_SIZE), tmp_path, MOMENTS[moment])
    check_invariants(outcome)
    assert outcome.zoom.hits > 0  # the hostility did happen
    assert outcome.exit_code == code, outcome.summary and outcome.summary.lines()
    (row,) = outcome.runs
    if code == exit_codes.OK:
        assert row["status"] == "succeeded" and row["failed_window"] is None
        return
    assert reason in row["error"], row["error"]
    assert "\n" not in row["error"]
    if code == INCOMPLETE:
        assert row["status"] == "incomplete"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d: .+", row["failed_window"])
        assert reason.split(" (")[0] in row["failed_window"] or reason in row["error"]
    else:
        assert row["status"] == "failed" and row["failed_window"] is None
    # The checkpoint never passed a window the pages did not prove.
    assert outcome.cursor is None or outcome.cursor < outcome.now


def test_a_record_far_older_than_its_window_never_stops_the_paging_early(tmp_path: Path) -> None:
    """The issue's case: one stray on a window's first page once ended that window's
    paging and moved the checkpoint past records never fetched."""
    hostility = Hostility("stray_old", calls=1, page_size=PAGE_SIZE)
    outcome = hostile_run(hostility, tmp_path, MOMENTS["one chain"])
    check_invariants(outcome)
    assert outcome.exit_code == INCOMPLETE
    (stray,) = outcome.rejects
    assert "outside the window" in stray["reason"] and "stray@hostile" in stray["raw_json"]
    assert outcome.cursor is None or all(
        r["email"] in outcome.stored
        for r in outcome.truth
        if outcome.floor <= _instant(r) < outcome.cursor
    )


@pytest.mark.parametrize("kind", sorted(hostile_zoom.ERROR_KINDS))
def test_error_answers_end_the_run_without_a_secret_in_any_output(
    kind: str, tmp_path: Path
) -> None:
    code, reason = EXPECTED[kind]
    outcome = hostile_run(Hostility(kind, page_size=PAGE_SIZE), tmp_path, MOMENTS["one chain"])
    assert outcome.exit_code == code and reason in outcome.runs[0]["error"]
    check_invariants(outcome)


# -- any mix: when a misbehaviour starts, how long it lasts, how big the pages are ----------


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from([*KINDS, None]),
    first_call=st.integers(min_value=0, max_value=12),
    calls=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
    page_size=st.sampled_from([7, 25, 300]),
    moment=st.sampled_from(sorted(MOMENTS)),
)
def test_any_hostile_zoom_keeps_the_invariants(
    kind: str | None, first_call: int, calls: int | None, page_size: int, moment: str
) -> None:
    hostility = Hostility(kind, first_call=first_call, calls=calls, page_size=page_size)
    with tempfile.TemporaryDirectory(prefix="hostile-") as warehouse:
        outcome = hostile_run(hostility, Path(warehouse), MOMENTS[moment])
    check_invariants(outcome)
    if kind is None or kind in HARMLESS:
        assert outcome.exit_code == exit_codes.OK, outcome.summary and outcome.summary.lines()
