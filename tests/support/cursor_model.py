"""The cursor's promise under any sequence of runs, explored by a model-based test.

"Every record with `time < cursor` is committed" must survive every sequence of runs a
user or a scheduler can produce, not only the ones a test author thought of. Hypothesis
drives random sequences against one simulator and one warehouse:

- time moving on by minutes, hours or days (the account's history goes on);
- late records: new records whose `time` lies in the past, below a cursor;
- incremental and reconcile runs (random N, lookback, batch size, windows, concurrency),
  some under a 429 storm, 5xx answers or connection resets;
- runs cut short by Zoom's daily limit (the quota then resets);
- runs SIGKILLed after a random number of API calls;
- two runs started together, with the warehouse lock (one is turned away) and without it
  (as on Databricks, where an hourly and a reconcile job can overlap on one schema).

After every step it checks: no `lw_id` stored twice; every stored record is one the
simulator served, at or after the backfill floor; no cursor moved back; every served
record with floor <= time < cursor is stored, except late records no run has re-read
yet; and every run that moved a cursor stored everything from its plan's start up to
it. At the end a settle run (a reconcile back to the floor) must leave the tables
exactly equal to the ground truth since the floor.

tests/test_cursor_model.py runs a bounded number of sequences in `make test`; `make soak`
runs the long profile and writes its figures into docs/faults.md (scripts/soak.py).
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from deltalake import DeltaTable
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from zoom_ingest import exit_codes, scenarios
from zoom_ingest.engines.base import EngineBusy
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import RunSummary, run, zoom_client_config
from zoom_ingest.normalise import normalise_record
from zoom_ingest.settings import Settings
from zoom_ingest.simulator import Fault, Simulator
from zoom_ingest.tables import ACTIVITY_LOGS, OPERATION_LOGS, UTC, TableSpec, format_time
from zoom_ingest.zoom import ZoomClient

from .sim_settings import simulator_settings

#: The simulator's clock when a sequence starts (whole seconds: cursors are compared
#: with record times to the microsecond).
START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
HISTORY_DAYS = 12
SPECS: dict[str, TableSpec] = {s.name: s for s in (ACTIVITY_LOGS, OPERATION_LOGS)}
TESTS_DIR = Path(__file__).resolve().parents[1]
FAKE_SECRET = "model-test-client-secret"

#: What the long profile counts (scripts/soak.py prints and documents it).
TALLY: Counter[str] = Counter()

FAULTS = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["qps_429", "http_500", "http_503", "reset"]), st.integers(1, 4)),
)
RUN_SHAPES = st.fixed_dictionaries(
    {
        "lookback": st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=1)]),
        "batch_rows": st.sampled_from([40, 250, 100_000]),
        "window_days": st.integers(1, 3),
        "concurrency": st.integers(1, 4),
    }
)
MINUTES = st.one_of(st.integers(1, 59), st.integers(60, 24 * 60), st.integers(1440, 3 * 1440))


class _UnlockedEngine(LocalEngine):
    """The local engine without its warehouse lock: two runs overlap on one set of
    tables, as an hourly and a reconcile job can on one Databricks schema."""

    def run_lock(self) -> Any:
        return nullcontext()


class CursorModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.workdir = Path(tempfile.mkdtemp(prefix="cursor-model-"))
        self.warehouse = self.workdir / "warehouse"
        self.sim: Simulator | None = None
        self.backfill_start: date = START.date()
        self.floor = START
        #: The highest cursor seen per stream: it must never go back.
        self.cursors: dict[str, datetime] = {}
        #: lw_ids of records that arrived late (below a cursor) and are not stored yet.
        self.late: dict[str, set[str]] = {name: set() for name in SPECS}
        self._truth: dict[str, dict[str, datetime]] | None = None
        TALLY["sequences"] += 1

    # -- set-up ------------------------------------------------------------------------

    @initialize(
        seed=st.integers(0, 10_000),
        back_days=st.integers(0, HISTORY_DAYS),
        offset=st.sampled_from([0, -12, 5.5, 14]),
    )
    def open_account(self, seed: int, back_days: int, offset: float) -> None:
        """A Zoom account with some history, and the backfill start the user picked."""
        self.sim = Simulator(
            seed=seed,
            days=HISTORY_DAYS,
            activity_per_day=60,
            operation_per_day=12,
            now=START,
            account_utc_offset_hours=offset,
            client_secret=FAKE_SECRET,
        ).start()
        self.backfill_start = (START - timedelta(days=back_days)).date()
        self.floor = datetime(*self.backfill_start.timetuple()[:3], tzinfo=UTC)

    # -- the world moves on ------------------------------------------------------------

    @rule(minutes=MINUTES)
    def time_passes(self, minutes: int) -> None:
        self.account.advance(timedelta(minutes=minutes))
        self._truth = None
        TALLY["minutes_advanced"] += minutes

    @rule(count=st.integers(1, 25), max_age_hours=st.integers(1, 6 * 24), seed=st.integers())
    def late_records_arrive(self, count: int, max_age_hours: int, seed: int) -> None:
        """Records Zoom shows only now, timed up to `max_age_hours` in the past."""
        rng = random.Random(seed)
        now = self.account.now
        claimed = self._stored_cursors()
        for name, spec in SPECS.items():
            records = [
                _record(name, now - timedelta(seconds=rng.randint(1, max_age_hours * 3600)), rng)
                for _ in range(count)
            ]
            self.account.add_records(name, records)
            cursor = claimed.get(name)
            for record in records:
                row = normalise_record(spec, record)
                if cursor is not None and row["time"] < cursor:
                    self.late[name].add(str(row["lw_id"]))
            TALLY["late_records"] += count
        self._truth = None

    # -- runs --------------------------------------------------------------------------

    @rule(shape=RUN_SHAPES, fault=FAULTS)
    def incremental_run(self, shape: dict[str, Any], fault: tuple[str, int] | None) -> None:
        self._inject(fault)
        self._check_claims(self._run(self._settings(shape, mode="incremental")))

    @rule(shape=RUN_SHAPES, days=st.integers(1, 5), fault=FAULTS)
    def reconcile_run(
        self, shape: dict[str, Any], days: int, fault: tuple[str, int] | None
    ) -> None:
        self._inject(fault)
        settings_ = self._settings(shape, mode="reconcile", reconcile_days=days)
        self._check_claims(self._run(settings_))

    @rule(
        shape=RUN_SHAPES,
        mode=st.sampled_from(["incremental", "reconcile"]),
        after_calls=st.integers(0, 30),
    )
    def run_stopped_by_the_daily_limit(
        self, shape: dict[str, Any], mode: str, after_calls: int
    ) -> None:
        self.account.faults.inject(Fault("daily_429", after_calls=after_calls))
        try:
            summary = self._run(self._settings(shape, mode=mode))
        finally:
            self.account.faults.clear()  # the quota resets
        assert summary is not None
        assert summary.exit_code in (exit_codes.OK, exit_codes.DAILY_LIMIT), summary.lines()
        TALLY["daily_limit_stops"] += summary.exit_code == exit_codes.DAILY_LIMIT
        self._check_claims(summary)

    @rule(
        shape=RUN_SHAPES,
        mode=st.sampled_from(["incremental", "reconcile"]),
        calls=st.integers(0, 25),
    )
    def run_killed(self, shape: dict[str, Any], mode: str, calls: int) -> None:
        """SIGKILL a run in its own process once it has made `calls` API calls."""
        settings_file = self.workdir / "settings.pickle"
        settings_file.write_bytes(pickle.dumps(self._settings(shape, mode=mode)))
        first = self.account.stats.calls
        env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
        command = [
            sys.executable,
            "-m",
            "support.job_at",
            str(settings_file),
            str(self.warehouse),
            self.account.now.isoformat(),
        ]
        with subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as process:
            deadline = time.monotonic() + 60
            while (
                process.poll() is None
                and self.account.stats.calls - first < calls
                and time.monotonic() < deadline
            ):
                time.sleep(0.005)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                TALLY["kills"] += 1
            process.wait(timeout=30)
        TALLY["runs"] += 1

    @rule(shape=RUN_SHAPES, days=st.integers(1, 5), locked=st.booleans())
    def two_runs_at_once(self, shape: dict[str, Any], days: int, locked: bool) -> None:
        """An incremental and a reconcile run started together on one warehouse."""
        make: Callable[[Path], LocalEngine] = LocalEngine if locked else _UnlockedEngine
        results: list[RunSummary | None] = [None, None]
        plans = [
            self._settings(shape, mode="incremental"),
            self._settings(shape, mode="reconcile", reconcile_days=days),
        ]

        def start(i: int) -> None:
            results[i] = self._run(plans[i], engine=make(self.warehouse))

        threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a run did not end"
        TALLY["overlapping_pairs"] += 1
        for summary in results:
            self._check_claims(summary)

    # -- the promise -------------------------------------------------------------------

    @invariant()
    def the_cursor_promise_holds(self) -> None:
        if self.sim is None:
            return
        cursors = self._stored_cursors()
        for name, spec in SPECS.items():
            ids = self._stored_ids(spec)
            unique = set(ids)
            assert len(ids) == len(unique), f"{name}: {len(ids) - len(unique)} duplicate lw_id"
            truth = self.truth[name]
            unknown = unique - truth.keys()
            assert not unknown, f"{name}: {len(unknown)} stored records Zoom never served"
            early = [i for i in unique if truth[i] < self.floor]
            assert not early, f"{name}: {len(early)} records before the floor {self.floor}"
            self.late[name] -= unique
            cursor = cursors.get(name)
            before = self.cursors.get(name)
            if before is not None:
                assert cursor is not None and cursor >= before, (
                    f"{name}: cursor moved back from {before} to {cursor}"
                )
            if cursor is None:
                continue
            self.cursors[name] = cursor
            missing = [
                i
                for i, at in truth.items()
                if self.floor <= at < cursor and i not in unique and i not in self.late[name]
            ]
            assert not missing, (
                f"{name}: {len(missing)} served records below the cursor "
                f"{format_time(cursor)} are not stored (lost), e.g. "
                f"{sorted(format_time(truth[i]) for i in missing)[:3]}"
            )
        TALLY["steps_checked"] += 1

    def teardown(self) -> None:
        try:
            if self.sim is not None:
                self._settle()
        finally:
            if self.sim is not None:
                self.sim.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _settle(self) -> None:
        """A reconcile back to the floor: the tables then equal the truth exactly."""
        self.account.faults.clear()
        days = (self.account.now.date() - self.backfill_start).days + 2
        shape = {"lookback": timedelta(hours=1), "batch_rows": 100_000, "window_days": 1}
        summary = self._run(
            self._settings({**shape, "concurrency": 4}, mode="reconcile", reconcile_days=days)
        )
        assert summary is not None and summary.exit_code == exit_codes.OK, (
            summary and summary.lines()
        )
        for name, spec in SPECS.items():
            expected = {i for i, at in self.truth[name].items() if at >= self.floor}
            stored = set(self._stored_ids(spec))
            assert stored == expected, (
                f"{name} after the settle run: {len(expected - stored)} missing, "
                f"{len(stored - expected)} unexpected"
            )
            TALLY["records_settled"] += len(stored)

    # -- helpers -----------------------------------------------------------------------

    @property
    def account(self) -> Simulator:
        assert self.sim is not None
        return self.sim

    @property
    def truth(self) -> dict[str, dict[str, datetime]]:
        """lw_id → time of every record the simulator serves now, per stream."""
        if self._truth is None:
            self._truth = {}
            for name, spec in SPECS.items():
                rows = (normalise_record(spec, r) for r in self.account.ground_truth(name))
                self._truth[name] = {str(r["lw_id"]): r["time"] for r in rows}  # type: ignore[misc]
        return self._truth

    def _settings(self, shape: dict[str, Any], **changes: Any) -> Settings:
        return simulator_settings(
            self.account,
            backfill_start=self.backfill_start,
            requests_per_second=1000,
            max_retries=3,
            timeout=5,
            **shape,
            **changes,
        )

    def _inject(self, fault: tuple[str, int] | None) -> None:
        self.account.faults.clear()
        if fault is not None:
            kind, count = fault
            self.account.faults.inject(Fault(kind, count=count))
            TALLY[f"fault_{kind}"] += 1

    def _run(self, settings_: Settings, engine: LocalEngine | None = None) -> RunSummary | None:
        """One run in this process at the simulator's now; None if the lock refused it."""
        engine = engine or LocalEngine(self.warehouse)
        TALLY["runs"] += 1
        with ZoomClient(
            zoom_client_config(settings_), backoff_base=0.01, backoff_max=0.05
        ) as client:
            try:
                return run(settings_, engine, progress=False, client=client, now=self.account.now)
            except EngineBusy:
                TALLY["turned_away_busy"] += 1
                return None
            finally:
                self.account.faults.clear()

    def _check_claims(self, summary: RunSummary | None) -> None:
        """A run that moved a cursor stored everything from its plan's start up to it."""
        if summary is None:
            return
        for s in summary.streams:
            if s.cursor is None or s.cursor == s.plan.cursor_before:
                continue
            low = max(s.plan.start, self.floor)
            stored = set(self._stored_ids(SPECS[s.name]))
            missing = [
                i
                for i, at in self.truth[s.name].items()
                if low <= at < s.cursor and i not in stored
            ]
            assert not missing, (
                f"{s.name}: a {s.plan.mode} run claimed {format_time(low)} … "
                f"{format_time(s.cursor)} but {len(missing)} records in it are not stored"
            )

    def _stored_cursors(self) -> dict[str, datetime]:
        if not DeltaTable.is_deltatable(str(self.warehouse / "zoom_ingest_checkpoints")):
            return {}
        return LocalEngine(self.warehouse).read_checkpoints(self.account.account_id)

    def _stored_ids(self, spec: TableSpec) -> list[str]:
        if not DeltaTable.is_deltatable(str(self.warehouse / spec.name)):
            return []
        table = LocalEngine(self.warehouse).read_table(spec)
        return table.column("lw_id").to_pylist()


def _record(stream: str, at: datetime, rng: random.Random) -> dict[str, str]:
    if stream == OPERATION_LOGS.name:
        return scenarios.operation_record(
            at, "admin@example.com", "User", "Update", f"Update User  - u{rng.randint(1, 999)}"
        )
    return {
        "email": f"late{rng.randint(1, 50)}@example.com",
        "time": format_time(at),
        "type": rng.choice(["Sign in", "Sign out"]),
        "ip_address": f"203.0.113.{rng.randint(1, 254)}",
        "client_type": "Browser",
        "version": "-",
    }


def explore(examples: int, steps: int, *, derandomize: bool = True) -> None:
    """Run the state machine: the test below (the same sequences on every CI run), and
    the soak's long profile (new sequences each time)."""
    profile = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        derandomize=derandomize,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    run_state_machine_as_test(CursorModel, settings=profile)
