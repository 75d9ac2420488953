"""The fault matrix: what Zoom and the network actually do, against a whole run.

Each case runs the job against the simulator with one fault switched on and holds the
Delta tables against the simulator's ground truth, row by row. Where the fault stops the
run, the stop must say why, bound its retries, leave every checkpoint at or before the
committed data, and the next run must finish the job. (A daily-limit 429 in the middle
of a backfill is in test_job.py; scripts/soak.py runs all of these, longer, through the
`zoom-ingest` command.)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from support import soak  # the soak harness: comparison with the ground truth
from support.sim_settings import simulator_settings
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import RunSummary, run, zoom_client_config
from zoom_ingest.settings import Settings
from zoom_ingest.simulator import Fault, Simulator
from zoom_ingest.tables import RUNS, UTC
from zoom_ingest.zoom import ZoomClient, streams
from zoom_ingest.zoom.streams import MAX_RESTARTS_PER_WINDOW

DAYS = 6
MAX_RETRIES = 3
#: Empty pages in a row before a window gives up (1,000 in production; fewer here).
EMPTY_PAGES = 25


def settings_for(sim: Simulator, **changes: object) -> Settings:
    start = datetime.now(UTC).date() - timedelta(days=DAYS - 2)
    return simulator_settings(
        sim,
        backfill_start=start,
        requests_per_second=500,
        concurrency=4,
        timeout=0.4,
        max_retries=MAX_RETRIES,
    ).with_changes(**changes)


def run_fast(settings: Settings, warehouse: Path) -> RunSummary:
    """One run with the real client, backing off in milliseconds instead of seconds."""
    with ZoomClient(zoom_client_config(settings), backoff_base=0.01, backoff_max=0.05) as client:
        return run(settings, LocalEngine(warehouse), progress=False, client=client)


def compare(sim: Simulator, settings: Settings, warehouse: Path) -> soak.Comparison:
    assert settings.backfill_start is not None
    return soak.compare(warehouse, sim, soak.floor_of(settings.backfill_start))


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # ~700 sign-ins a day: every day window takes several pages (page tokens matter).
    with Simulator(seed=31, days=DAYS, activity_per_day=700, operation_per_day=60) as s:
        yield s


# -- faults a run gets through --------------------------------------------------------------

TRANSIENT = {
    "http_500": Fault("http_500", count=3),
    "http_502": Fault("http_502", count=3),
    "http_503": Fault("http_503", count=3),
    "reset": Fault("reset", count=3),
    "slow": Fault("slow", count=2, delay=0.8),  # past the 0.4 s client timeout
    "qps_429": Fault("qps_429", count=1),
    "token_revoked": Fault("token_revoked", after_calls=4),
    "page_token_expired": Fault("page_token_expired", count=2),
    "html_200": Fault("html_200", count=2),
    "truncated_json": Fault("truncated_json", count=2),
    "empty_page_with_token": Fault("empty_page_with_token", count=3),
}
#: Faults answered by another attempt of the same request (the others are handled
#: without a retry: a token refresh, a window restart, one more page).
RETRIED = {"http_500", "http_502", "http_503", "reset", "slow", "html_200", "truncated_json"}


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_a_run_through_the_fault_ends_equal_to_the_ground_truth(sim, tmp_path, kind):
    sim.faults.inject(TRANSIENT[kind])
    settings = settings_for(sim)
    summary = run_fast(settings, tmp_path)

    assert summary.exit_code == exit_codes.OK, summary.lines()
    assert sim.faults.hits(kind) == TRANSIENT[kind].count  # it really fired, every time
    state = compare(sim, settings, tmp_path)
    assert state.equal, state.describe()
    assert state.rows == state.expected > 0

    retries = sum(s.counters.retries for s in summary.streams)
    rate_limited = sum(s.counters.rate_limited for s in summary.streams)
    if kind in RETRIED:
        assert retries >= (TRANSIENT[kind].count or 0)
    if kind == "qps_429":
        assert rate_limited == 1
    runs = LocalEngine(tmp_path).read_table(RUNS).to_pylist()
    assert {r["status"] for r in runs} == {"succeeded"}
    assert sum(r["retries"] for r in runs) == retries
    assert sum(r["rate_limited"] for r in runs) == rate_limited


def test_a_429_storm_from_zooms_own_limit_is_waited_out(tmp_path):
    # The account allows 8 requests/s; the client is told 500/s: a real storm of 429s.
    with Simulator(seed=32, days=DAYS, activity_per_day=300, operation_per_day=40,
                   qps_limit=8) as sim:  # fmt: skip
        settings = settings_for(sim, max_retries=8)
        summary = run_fast(settings, tmp_path)
        assert summary.exit_code == exit_codes.OK, summary.lines()
        assert sim.stats.rate_limited >= 1
        assert sum(s.counters.rate_limited for s in summary.streams) == sim.stats.rate_limited
        state = compare(sim, settings, tmp_path)
        assert state.equal, state.describe()


def test_the_same_record_on_two_pages_is_stored_once(tmp_path):
    with Simulator(seed=33, days=DAYS, activity_per_day=900, operation_per_day=60,
                   duplicate_across_pages=True) as sim:  # fmt: skip
        settings = settings_for(sim)
        summary = run_fast(settings, tmp_path)
        assert summary.exit_code == exit_codes.OK, summary.lines()
        state = compare(sim, settings, tmp_path)
        assert state.equal and state.duplicates == 0, state.describe()
        activity = summary.streams[0]
        pages = activity.counters.pages
        assert pages > activity.plan.windows.__len__()  # some windows had several pages
        assert activity.fetched > activity.inserted  # the repeats were fetched, then dropped


def test_late_records_are_caught_by_reconcile(tmp_path):
    with Simulator(seed=34, days=DAYS, activity_per_day=300, operation_per_day=60,
                   late_fraction=0.1) as sim:  # fmt: skip
        settings = settings_for(sim)
        assert run_fast(settings, tmp_path).exit_code == exit_codes.OK
        assert compare(sim, settings, tmp_path).equal  # everything visible so far

        sim.release_late()  # Zoom now serves records older than the cursor
        late = compare(sim, settings, tmp_path)
        assert late.missing > 10 and late.gap > 10 and late.duplicates == 0

        assert run_fast(settings, tmp_path).exit_code == exit_codes.OK  # incremental: too recent
        reconcile = settings.with_changes(mode="reconcile", reconcile_days=DAYS)
        summary = run_fast(reconcile, tmp_path)
        assert summary.exit_code == exit_codes.OK, summary.lines()
        state = compare(sim, settings, tmp_path)
        assert state.equal, state.describe()


def test_every_fault_at_once(tmp_path):
    with Simulator(seed=35, days=DAYS, activity_per_day=700, operation_per_day=60,
                   duplicate_across_pages=True) as sim:  # fmt: skip
        for kind in TRANSIENT:
            if kind not in ("slow", "qps_429", "token_revoked"):  # slow ones: own cases
                sim.faults.inject(Fault(kind, count=2, probability=0.2))
        # One revocation at a time (far apart, so that a busy machine cannot bring them
        # together): a token revoked again right after its refresh fails
        # the stream by design (the contract: refresh once per 124, then give up).
        sim.faults.inject(Fault("token_revoked", after_calls=5))
        sim.faults.inject(Fault("token_revoked", after_calls=30))
        # Enough retries for every fault to land on one request in a row.
        settings = settings_for(sim, max_retries=20)
        summary = run_fast(settings, tmp_path)
        assert summary.exit_code == exit_codes.OK, summary.lines()
        assert sim.faults.hits() >= 8
        state = compare(sim, settings, tmp_path)
        assert state.equal, state.describe()


# -- faults that stop a run -----------------------------------------------------------------

#: kind → (fault, what the stopped stream's error must say)
PERSISTENT = {
    "http_503": (Fault("http_503", count=None, after_calls=6), "HTTP 503"),
    "reset": (Fault("reset", count=None, after_calls=6), "Connection reset"),
    "slow": (Fault("slow", count=None, after_calls=6, delay=0.6), "no answer in time"),
    "html_200": (Fault("html_200", count=None, after_calls=6), "text/html"),
    "truncated_json": (Fault("truncated_json", count=None, after_calls=6), "not a JSON object"),
    "qps_429": (Fault("qps_429", count=None, after_calls=6), "per-second rate limit"),
    "token_revoked": (Fault("token_revoked", count=None, after_calls=6), "code 124"),
    "page_token_expired": (
        Fault("page_token_expired", count=None, after_calls=2),
        "next page token expired 4 times",
    ),
    # A looping API: empty pages that always carry a next_page_token.
    "empty_page_with_token": (
        Fault("empty_page_with_token", count=None, after_calls=6),
        f"gave up after {EMPTY_PAGES} empty pages in a row",
    ),
}


@pytest.mark.parametrize("kind", sorted(PERSISTENT))
def test_a_fault_that_never_ends_stops_the_run_with_the_reason_then_the_next_run_finishes(
    sim, tmp_path, monkeypatch, kind
):
    monkeypatch.setattr(streams, "MAX_EMPTY_PAGES_IN_A_ROW", EMPTY_PAGES)
    fault, reason = PERSISTENT[kind]
    sim.faults.inject(fault)
    # Waiting out Retry-After (1 s) or the timeout takes long: fewer retries for those.
    settings = settings_for(sim, max_retries={"qps_429": 0, "slow": 1}.get(kind, MAX_RETRIES))
    stopped = run_fast(settings, tmp_path)
    if kind == "slow":
        time.sleep(fault.delay)  # let the simulator finish answering the abandoned calls

    # A looping API is an answer that cannot be proven complete; the rest are failures.
    status, code = (
        ("incomplete", exit_codes.INCOMPLETE)
        if kind == "empty_page_with_token"
        else ("failed", exit_codes.STREAM_FAILED)
    )
    assert stopped.exit_code == code, stopped.lines()
    failed = [s for s in stopped.streams if s.status == status]
    assert failed
    for s in failed:
        assert reason in (s.error or ""), s.error
    assert any(reason in line for line in stopped.lines())
    runs = LocalEngine(tmp_path).read_table(RUNS).to_pylist()
    assert {r["stream"] for r in runs if r["status"] == status} == {s.name for s in failed}
    assert all(reason in r["error"] for r in runs if r["status"] == status)

    # Retries are bounded: no request was sent more often than the settings allow.
    attempts = Counter(
        (path, tuple(sorted(params.items()))) for path, params, _ in sim.stats.requests
    )
    per_request = {
        "token_revoked": 2,  # the call, then once more after one token refresh
        # Each expired token is sent once; the window restarts from its first page.
        "page_token_expired": MAX_RESTARTS_PER_WINDOW + 1,
    }.get(kind, settings.max_retries + 1)
    assert max(attempts.values()) <= per_request
    if kind in RETRIED or kind == "qps_429":
        assert f"after {settings.max_retries + 1} attempts" in (failed[0].error or "")

    state = compare(sim, settings, tmp_path)
    assert state.consistent, state.describe()  # the checkpoint is where the data is
    assert state.missing > 0  # (the run really did stop short)

    sim.faults.clear()
    finished = run_fast(settings, tmp_path)
    assert finished.exit_code == exit_codes.OK, finished.lines()
    state = compare(sim, settings, tmp_path)
    assert state.equal, state.describe()


def test_the_token_endpoint_down_stops_the_run_naming_it_then_the_next_run_finishes(sim, tmp_path):
    sim.faults.inject(Fault("http_503", count=None, path="/oauth/token"))
    settings = settings_for(sim)
    stopped = run_fast(settings, tmp_path)
    assert stopped.exit_code == exit_codes.STREAM_FAILED, stopped.lines()
    for s in stopped.streams:
        assert s.status == "failed"
        assert "token request failed" in (s.error or "") and "HTTP 503" in (s.error or "")
    assert sim.stats.calls == 0  # no report call goes out without a token
    # Bounded: each window that started asked exactly max_retries + 1 times, then gave up.
    attempts = settings.max_retries + 1
    windows = sum(len(s.plan.windows) for s in stopped.streams)
    assert sim.stats.token_requests % attempts == 0
    assert attempts <= sim.stats.token_requests <= attempts * windows

    sim.faults.clear()
    finished = run_fast(settings, tmp_path)
    assert finished.exit_code == exit_codes.OK, finished.lines()
    state = compare(sim, settings, tmp_path)
    assert state.equal, state.describe()
