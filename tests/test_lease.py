"""One Zoom client per account at a time: the lease in zoom_ingest_leases, across processes.

Every test here runs the contenders as separate processes (tests/support/lease_holder.py,
or `zoom-ingest run`), because the lease is what processes that share nothing else —
not a lock file, not a rate limiter — agree through: Delta's optimistic concurrency on
one table. On the local engine (delta-rs), on Spark with Delta (a holder process with
its own JVM against this process's session), and over Spark Connect (client processes
against one local Spark Connect server, as serverless runs the job).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support import soak
from support.sim_settings import simulator_settings
from zoom_ingest.engines.base import AccountBusy, Engine
from zoom_ingest.engines.lease import AccountLease, account_lease
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import CHECKPOINTS, LEASES, RUNS, UTC

ROOT = Path(__file__).resolve().parents[1]
HOLDER = ROOT / "tests" / "support" / "lease_holder.py"
DAYS = 4


def holder_env(**more: str) -> dict[str, str]:
    """This environment with the tree's sources and the test support importable."""
    paths = [str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **more}


class Holder:
    """One lease_holder.py process and the JSON lines it printed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLDER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or holder_env(),
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put({"event": "exited"})  # a failure shows at once, not at a timeout

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def next_event(self, timeout: float = 120.0) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no event from the lease holder in {timeout} s: {''.join(self.stderr)[-3000:]}"
            ) from None

    def expect(self, event: str, timeout: float = 120.0) -> dict[str, Any]:
        got = self.next_event(timeout)
        assert got["event"] == event, (got, "".join(self.stderr)[-3000:])
        return got

    def release(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=120)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


def lease_args(
    engine: str, location: Path, run_id: str, *more: str, account: str = "acct-1"
) -> list[str]:
    return ["--engine", engine, "--location", str(location), "--account", account,
            "--run-id", run_id, *more]  # fmt: skip


# -- the race: of processes that try at once, exactly one takes the lease --------------------


@pytest.mark.parametrize("existing", ["no row yet", "an expired row"])
def test_processes_that_claim_at_once_exactly_one_takes_the_lease(tmp_path, holders, existing):
    location = tmp_path / "leases"
    if existing == "an expired row":
        # Every contender then rewrites the same row rather than inserting one.
        old = AccountLease(LocalEngine(location), "acct-1", "old-run", seconds=0.2, renew_every=0.1)
        assert old.try_acquire() is None
        time.sleep(0.3)
    contenders = 4
    start_at = time.time() + 8.0  # after every interpreter has imported deltalake
    for index in range(contenders):
        once = ("--once", "--start-at", str(start_at))
        holders.append(Holder(*lease_args("local", location, f"run-{index}", *once)))
    for holder in holders:
        holder.expect("ready")
    outcomes = [holder.next_event() for holder in holders]
    winners = [i for i, o in enumerate(outcomes) if o["event"] == "acquired"]
    assert len(winners) == 1, outcomes
    # Every loser names the winner, and the table holds one row: the winner's.
    assert {o["holder"] for o in outcomes if o["event"] == "busy"} == {f"run-{winners[0]}"}
    assert [r["run_id"] for r in read_leases(location)] == [f"run-{winners[0]}"]
    assert [h.proc.wait(timeout=60) for h in holders].count(0) == 1


def read_leases(location: Path) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    from zoom_ingest.engines.local import read_delta

    return read_delta(DeltaTable(str(location / LEASES.name))).to_pylist()


# -- a run that meets a held lease ends busy, and runs again once it is free ------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=61, days=DAYS, activity_per_day=200, operation_per_day=40) as s:
        yield s


def test_a_run_on_a_held_account_exits_4_with_busy_runs_rows_and_no_zoom_call(
    tmp_path, holders, sim
):
    # Two warehouses, one lease location: e.g. two schemas ingesting one account.
    location = tmp_path / "leases"
    holder = Holder(*lease_args("local", location, "the-holder", account=sim.account_id))
    holders.append(holder)
    holder.expect("ready")
    holder.expect("acquired")

    warehouse = tmp_path / "wh"
    start = datetime.now(UTC).date() - timedelta(days=DAYS - 1)
    args = soak.run_args(warehouse, start, "--lease-location", str(location))
    env = {**soak.cli_env(sim), "PYTHONPATH": holder_env()["PYTHONPATH"]}
    sim.stats.reset()
    busy = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)

    assert busy.returncode == soak.EXIT_BUSY, busy.stderr[-3000:]
    assert f"Zoom account {sim.account_id} is in use by run the-holder" in busy.stderr
    assert sim.stats.calls == 0 and sim.stats.token_requests == 0
    engine = LocalEngine(warehouse)
    runs = engine.read_table(RUNS).to_pylist()
    assert sorted(r["stream"] for r in runs) == ["activity_logs", "operation_logs"]
    assert {r["status"] for r in runs} == {"busy"}
    assert all("the-holder" in r["error"] and r["api_calls"] == 0 for r in runs)
    assert engine.read_table(CHECKPOINTS).num_rows == 0

    # Released: the same run now goes through, and leaves the lease free.
    assert holder.release() == 0
    assert holder.expect("released")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == soak.EXIT_OK, done.stderr[-3000:]
    [row] = read_leases(location)
    assert row["run_id"] != "the-holder" and row["expires_at"] <= datetime.now(UTC)
    statuses = sorted(r["status"] for r in engine.read_table(RUNS).to_pylist())
    assert statuses == ["busy", "busy", "succeeded", "succeeded"]


def test_a_killed_holder_blocks_the_account_until_its_lease_expires_then_a_run_takes_over(
    tmp_path, holders, sim
):
    location = tmp_path / "wh"  # the lease beside the tables: the default
    holder = Holder(
        *lease_args(
            "local", location, "killed", "--seconds", "6", "--renew", "1", account=sim.account_id
        )
    )
    holders.append(holder)
    holder.expect("ready")
    holder.expect("acquired")
    holder.kill()  # no release: the row stays until it expires
    [row] = read_leases(location)
    assert row["run_id"] == "killed" and row["expires_at"] > datetime.now(UTC)

    start = datetime.now(UTC).date() - timedelta(days=DAYS - 1)
    env = {**soak.cli_env(sim), "PYTHONPATH": holder_env()["PYTHONPATH"]}
    began = time.monotonic()
    done = subprocess.run(
        soak.run_args(location, start, "--lease-wait", "60s"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == soak.EXIT_OK, done.stderr[-3000:]
    assert "is in use by run killed" in done.stderr  # it waited, saying why
    assert time.monotonic() - began >= 2.0  # … until the dead run's lease ran out
    state = soak.compare(location, sim, soak.floor_of(start))
    assert state.equal, state.describe()
    [row] = read_leases(location)
    assert row["run_id"] != "killed"


def test_the_heartbeat_keeps_the_lease_past_its_duration_and_a_paused_holder_loses_it(
    tmp_path, holders
):
    location = tmp_path / "leases"
    holder = Holder(*lease_args("local", location, "slow", "--seconds", "3", "--renew", "0.5"))
    holders.append(holder)
    holder.expect("ready")
    holder.expect("acquired")
    contender = AccountLease(LocalEngine(location), "acct-1", "contender", seconds=3, renew_every=1)
    time.sleep(4.5)  # longer than the lease lasts: only renewals keep it
    assert contender.try_acquire() is not None

    # Paused (as a driver stalled in a long GC or a suspended VM): it renews nothing,
    # its lease runs out, another run takes it; resumed, its heartbeat finds out.
    holder.proc.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 30
        while (other := contender.try_acquire()) is not None:
            assert time.monotonic() < deadline, other
            time.sleep(0.5)
    finally:
        holder.proc.send_signal(signal.SIGCONT)
    lost = holder.expect("lost", timeout=30)
    assert "taken by another run" in lost["why"]
    holder.release()
    # Its release at exit does not free what is now the contender's.
    [row] = read_leases(location)
    assert row["run_id"] == "contender" and row["expires_at"] > datetime.now(UTC)


def test_a_run_whose_lease_is_taken_stops_fetching(tmp_path, sim, monkeypatch):
    """The job's side of a lost lease: the heartbeat's callback stops the writer."""
    from zoom_ingest.engines import lease as lease_module
    from zoom_ingest.job import run

    start = datetime.now(UTC).date() - timedelta(days=DAYS - 1)
    settings = simulator_settings(sim, backfill_start=start, concurrency=1, requests_per_second=20)
    sim.latency = 0.2  # a run of several seconds
    taken = threading.Event()

    def heartbeat(lease: AccountLease, stop: threading.Event, on_lost: Any) -> None:
        # At the first beat the lease is found taken, as after a pause past its expiry.
        if not stop.wait(0.5):
            taken.set()
            on_lost("the lease on Zoom account x was taken by another run")

    monkeypatch.setattr(lease_module, "_heartbeat", heartbeat)
    summary = run(settings, LocalEngine(tmp_path), progress=False)
    assert taken.is_set()
    assert summary.exit_code == soak.EXIT_FAILED
    assert any(s.status == "failed" for s in summary.streams)
    unfinished = [s for s in summary.streams if s.status != "succeeded"]
    assert all("taken by another run" in (s.error or "") for s in unfinished)
    assert sim.stats.calls < sum(len(s.plan.windows) for s in summary.streams) * 2


def test_account_lease_waits_bounded_then_names_the_holder(tmp_path):
    engine = LocalEngine(tmp_path)
    with account_lease(engine, "acct-1", "first", seconds=60, renew_every=10):
        began = time.monotonic()
        with (
            pytest.raises(AccountBusy, match="in use by run first"),
            account_lease(engine, "acct-1", "second", wait=1.0),
        ):
            pass
        assert 1.0 <= time.monotonic() - began < 30
        # Another account is another lease.
        with account_lease(engine, "acct-2", "second"):
            pass
    with account_lease(engine, "acct-1", "second"):  # released at the end of the first
        pass


# -- the rules, on both engines (the engine contract) -------------------------------------------


def test_write_lease_takes_a_free_lease_keeps_a_held_one_and_lets_an_expired_one_go(
    engine_factory,
):
    engine = engine_factory()
    first = AccountLease(engine, "acct-1", "first", seconds=60, renew_every=10)
    second = AccountLease(engine_factory(), "acct-1", "second", seconds=60, renew_every=10)
    assert first.try_acquire() is None
    held = second.try_acquire()
    assert held is not None and held.run_id == "first"
    assert first.renew() and first.expires_at is not None
    # Another account is another row.
    assert (
        AccountLease(engine, "acct-2", "second", seconds=60, renew_every=10).try_acquire() is None
    )
    first.release()
    assert second.try_acquire() is None  # released: free at once
    assert first.renew() is False  # … and the first run cannot renew it back
    # An expired lease (its run died) is taken over.
    short = AccountLease(engine, "acct-3", "dead", seconds=0.5, renew_every=0.1)
    assert short.try_acquire() is None
    time.sleep(0.7)
    assert AccountLease(engine, "acct-3", "next", seconds=60, renew_every=10).try_acquire() is None


def _race(engine_factory, act: Callable[[Engine, int], Any], contenders: int = 4) -> dict:
    """Threads, each with an engine object of its own (no lock shared in the process),
    call `act(engine, index)` at once; what each returned, none of them an exception."""
    barrier = threading.Barrier(contenders)
    engines = [engine_factory() for _ in range(contenders)]
    results: dict[int, Any] = {}

    def contend(index: int) -> None:
        barrier.wait(timeout=60)
        try:
            results[index] = act(engines[index], index)
        except BaseException as exc:  # shown by the assertion below
            results[index] = exc

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == contenders
    assert not [r for r in results.values() if isinstance(r, BaseException)], results
    return results


def _claim(engine: Engine, index: int) -> Any:
    return AccountLease(engine, "acct-1", f"run-{index}", seconds=60, renew_every=10).try_acquire()


def test_of_engines_racing_for_one_lease_exactly_one_wins(engine_factory):
    """Claimants each with an engine object of their own claim at once; Delta's commit
    conflicts alone decide."""
    results = _race(engine_factory, _claim)
    winners = [i for i, other in results.items() if other is None]
    assert len(winners) == 1, results
    assert {other.run_id for other in results.values() if other is not None} == {
        f"run-{winners[0]}"
    }


# -- Spark: two processes, each with its own Spark and Delta ------------------------------------


def test_spark_a_run_on_a_held_account_ends_busy_and_takes_over_once_the_holder_dies(
    tmp_path, holders, sim, delta_spark
):
    """The holder is another process with its own local SparkSession (its own JVM); the
    run is this process's, on the Spark engine, writing elsewhere but sharing the lease."""
    from zoom_ingest.engines.spark import SparkEngine
    from zoom_ingest.job import run

    spark = delta_spark
    location = tmp_path / "leases"
    holder = Holder(
        *lease_args(
            # Long enough that a renewal MERGE slowed by a loaded machine (seconds on
            # Spark) never lets it lapse while the run below tries it.
            "spark", location, "spark-holder", "--seconds", "30", "--renew", "2",
            account=sim.account_id,
        )
    )  # fmt: skip
    holders.append(holder)
    holder.expect("ready", timeout=300)
    holder.expect("acquired", timeout=300)

    start = datetime.now(UTC).date() - timedelta(days=DAYS - 1)
    engine = SparkEngine(spark, warehouse=tmp_path / "wh")
    leases = SparkEngine(spark, warehouse=location)
    sim.stats.reset()
    busy = run(
        simulator_settings(sim, backfill_start=start), engine, progress=False, lease_engine=leases
    )
    assert busy.exit_code == soak.EXIT_BUSY
    assert "in use by run spark-holder" in (busy.busy or "")
    assert sim.stats.calls == 0 and sim.stats.token_requests == 0
    rows = engine.read_table(RUNS).to_pylist()
    assert {r["status"] for r in rows} == {"busy"} and len(rows) == 2

    holder.kill()  # its lease stays until it expires, then this run takes over
    settings = simulator_settings(sim, backfill_start=start, lease_wait=timedelta(seconds=120))
    done = run(settings, engine, progress=False, lease_engine=leases)
    assert done.exit_code == soak.EXIT_OK, done.lines()
    assert sorted(r["status"] for r in engine.read_table(RUNS).to_pylist()) == [
        "busy", "busy", "succeeded", "succeeded",
    ]  # fmt: skip
    [row] = leases.read_table(LEASES).to_pylist()
    assert row["run_id"] == done.run_id and row["expires_at"] <= datetime.now(UTC)


# -- Spark Connect: serverless's shape, client processes without a JVM ------------------------


def test_spark_connect_clients_in_separate_processes_share_one_lease(tmp_path, holders):
    """Every contender is its own process with a Spark Connect client (no JVM, as on
    serverless), all against one local Spark Connect server with Delta."""
    from conftest import skip_delta
    from support.spark_connect import SparkConnectUnavailable, spark_connect_server

    location = tmp_path / "leases"
    try:
        server = spark_connect_server(tmp_path / "connect")
        url = server.__enter__()
    except SparkConnectUnavailable as exc:
        skip_delta(f"Spark Connect: {exc}")
    try:
        env = holder_env(SPARK_REMOTE=url)
        # Three clients claim at once: exactly one commits.
        start_at = time.time() + 25.0  # after each has connected and imported pyspark
        # A long lease: a MERGE over Connect on this shared machine can take seconds.
        once = ("--once", "--seconds", "300", "--renew", "60", "--start-at", str(start_at))
        racers = [
            Holder(*lease_args("connect", location, f"racer-{i}", *once), env=env) for i in range(3)
        ]
        holders.extend(racers)
        for racer in racers:
            racer.expect("ready", timeout=300)
        outcomes = [racer.next_event(timeout=300) for racer in racers]
        winners = [i for i, o in enumerate(outcomes) if o["event"] == "acquired"]
        assert len(winners) == 1, (outcomes, "".join(racers[0].stderr)[-3000:])
        assert {o.get("holder") for o in outcomes if o["event"] == "busy"} == {
            f"racer-{winners[0]}"
        }
        # The winner exited without releasing: its lease turns another client away
        # (the takeover after expiry is the local and classic Spark tests').
        holder = Holder(*lease_args("connect", location, "holder"), env=env)
        holders.append(holder)
        holder.expect("ready", timeout=300)
        got = holder.next_event(timeout=300)
        assert got["event"] == "busy" and f"in use by run racer-{winners[0]}" in got["why"]
    finally:
        server.__exit__(None, None, None)


def test_first_runs_racing_to_create_the_tables_all_go_on(engine_factory):
    """A fresh destination, several first runs at once (a for_each's accounts, a job and
    its detections task): every one of them gets its tables, whoever's CREATE won, and
    then its lease (exactly one holds it). A CREATE that lost the race while the winner
    was still writing its first commit once failed that run."""

    def first_run(engine: Engine, index: int) -> Any:
        engine.ensure_tables()
        return _claim(engine, index)

    results = _race(engine_factory, first_run)
    assert sum(1 for r in results.values() if r is None) == 1, results
    checker = engine_factory()
    checker.ensure_tables()  # every table there, with the schema it should have
    assert checker.read_checkpoints("acct-1") == {}
