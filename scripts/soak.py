#!/usr/bin/env python3
"""Soak test: the `zoom-ingest` command against the Zoom simulator, under every fault and
bad input we know of, SIGKILLed again and again, and raced by a second run.

    .venv/bin/python scripts/soak.py                 # the full soak; writes docs/faults.md
    .venv/bin/python scripts/soak.py --quick --out - # a smaller one, table on stdout only

Every run is a real `zoom-ingest run` process talking over sockets to a simulator that
lives in this process, so faults can be switched on and off between runs. After each
scenario the Delta tables are read back and compared with the simulator's ground truth
(row by row, every column), every checkpoint is checked against the data it claims, and
every line the processes printed plus every row of every table is searched for the
client secret and for each access token the simulator issued. The table in
docs/faults.md is this script's output, not typed by hand.

The fast tests (tests/test_faults.py, test_crash_resume.py, test_concurrency.py,
test_bad_input.py, test_secrets.py) import this file and run the same harness and the
same comparison on less data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from deltalake import DeltaTable

from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.normalise import Batch
from zoom_ingest.simulator import Fault, Simulator
from zoom_ingest.tables import ALL_TABLES, CHECKPOINTS, LOG_TABLES, REJECTS, RUNS, UTC

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "faults.md"
#: Simulator-only credentials that are easy to spot wherever they might leak.
FAKE_SECRET = "FAKE-zoom-secret-SOAK-do-not-log-4c1d9e"
EXIT_OK, EXIT_FAILED, EXIT_SETTINGS, EXIT_DAILY_LIMIT, EXIT_BUSY = 0, 1, 2, 3, 4
KILLED = -signal.SIGKILL
#: A run that takes longer than this is a hang, not a slow run.
RUN_TIMEOUT = 600.0


# --------------------------------------------------------------------------- the command


def zoom_ingest_command() -> list[str]:
    """The installed `zoom-ingest` script of this interpreter's environment, or the module."""
    script = Path(sys.executable).with_name("zoom-ingest")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "zoom_ingest.cli"]


def cli_env(sim: Simulator, **overrides: str) -> dict[str, str]:
    """This process's environment without ZOOM_* settings, pointed at `sim`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZOOM_")}
    return {
        **base,
        "ZOOM_ACCOUNT_ID": sim.account_id,
        "ZOOM_CLIENT_ID": sim.client_id,
        "ZOOM_CLIENT_SECRET": sim.client_secret,
        "ZOOM_API_URL": sim.api_url,
        "ZOOM_OAUTH_URL": sim.oauth_url,
        **overrides,
    }


def run_args(warehouse: Path, backfill_start: date, *extra: str) -> list[str]:
    """`zoom-ingest run` with the options every soak run shares, then `extra`."""
    return [
        *zoom_ingest_command(),
        "run",
        "--warehouse",
        str(warehouse),
        "--backfill-start",
        backfill_start.isoformat(),
        "--no-progress",
        "--log-level",
        "DEBUG",
        *extra,
    ]


@dataclass
class Attempt:
    """One `zoom-ingest` process: how it ended and what it printed."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    calls: int  # API calls the simulator answered while it ran

    @property
    def killed(self) -> bool:
        return self.returncode == KILLED

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def error_line(self) -> str:
        """The first line that says why the run did not finish."""
        for line in self.output.splitlines():
            text = line.strip()
            if text.startswith("error") or "daily rate limit" in text:
                return text
        return ""

    def summary_rejected(self) -> int:
        """The rejects the printed run summary counts, over both streams."""
        return sum(int(m.replace(",", "")) for m in re.findall(r"rejected ([\d,]+)", self.stdout))


class Runner:
    """Starts `zoom-ingest` processes against one simulator and keeps what they printed."""

    def __init__(self, sim: Simulator, logs: Path) -> None:
        self.sim = sim
        self.logs = logs
        self.attempts: list[Attempt] = []
        self._count = 0

    def start(
        self, args: Sequence[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], Path]:
        self._count += 1
        out = self.logs / f"run-{self._count:03d}"
        with (
            out.with_suffix(".out").open("wb") as stdout,
            out.with_suffix(".err").open("wb") as stderr,
        ):  # the child writes to its own copies of these
            proc = subprocess.Popen(
                list(args), env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL
            )
        return proc, out

    def collect(
        self, proc: subprocess.Popen[bytes], out: Path, started: float, calls: int
    ) -> Attempt:
        attempt = Attempt(
            returncode=proc.returncode,
            stdout=out.with_suffix(".out").read_text("utf-8", "replace"),
            stderr=out.with_suffix(".err").read_text("utf-8", "replace"),
            seconds=time.monotonic() - started,
            calls=self.sim.stats.calls - calls,
        )
        self.attempts.append(attempt)
        return attempt

    def run(self, args: Sequence[str], env: dict[str, str]) -> Attempt:
        """Run to the end."""
        calls, started = self.sim.stats.calls, time.monotonic()
        proc, out = self.start(args, env)
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return self.collect(proc, out, started, calls)

    def run_and_kill(
        self, args: Sequence[str], env: dict[str, str], after_calls: int, plus_seconds: float
    ) -> Attempt:
        """Run until the simulator has answered `after_calls` of its API calls, wait
        `plus_seconds` more, then SIGKILL it (unless it has finished by then)."""
        calls, started = self.sim.stats.calls, time.monotonic()
        proc, out = self.start(args, env)
        triggered: float | None = None
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if triggered is None and self.sim.stats.calls - calls >= after_calls:
                    triggered = now
                if triggered is not None and now - triggered >= plus_seconds:
                    proc.send_signal(signal.SIGKILL)
                    break
                if now - started > RUN_TIMEOUT:
                    raise TimeoutError(f"zoom-ingest ran longer than {RUN_TIMEOUT:.0f} s")
                time.sleep(0.002)
        finally:
            if proc.poll() is None and triggered is None:
                proc.kill()
            proc.wait()
        return self.collect(proc, out, started, calls)


# --------------------------------------------------------------------------- ground truth


def floor_of(backfill_start: date) -> datetime:
    return datetime.combine(backfill_start, datetime.min.time(), tzinfo=UTC)


@dataclass(frozen=True)
class Comparison:
    """The local warehouse against the simulator's ground truth (records at or after the
    backfill floor), row by row and column by column."""

    rows: int  # rows in the two log tables
    expected: int  # valid ground-truth records
    duplicates: int  # rows whose lw_id another row has too
    missing: int  # valid ground-truth records not in the tables
    extra: int  # rows Zoom does not serve, or that differ from what it serves
    gap: int  # missing records older than their stream's checkpoint cursor (see below)
    rejects: int  # rows in zoom_ingest_rejects
    rejects_expected: int  # distinct unparseable ground-truth records
    rejects_missing: int  # unparseable records not in zoom_ingest_rejects
    checkpoint_rows: int  # rows in zoom_ingest_checkpoints
    cursors: dict[str, datetime | None] = field(default_factory=dict)
    #: The missing records older than their stream's cursor: lw_id → (stream, time).
    below_cursor: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        """Exactly the ground truth: every record once, nothing else, rejects complete."""
        return not (self.duplicates or self.missing or self.extra or self.rejects_missing)

    @property
    def consistent(self) -> bool:
        """What any stop or crash must leave: no duplicate, nothing Zoom lacks, no gap
        below a cursor, at most one checkpoint row per stream."""
        return not (self.duplicates or self.extra or self.gap) and self.checkpoint_rows <= len(
            LOG_TABLES
        )

    def describe(self) -> str:
        return (
            f"{self.rows:,}/{self.expected:,} rows, {self.duplicates} duplicate, "
            f"{self.missing} missing, {self.extra} extra, {self.gap} below the cursor, "
            f"rejects {self.rejects}/{self.rejects_expected}"
        )


def compare(warehouse: Path, sim: Simulator, floor: datetime) -> Comparison:
    """Read the warehouse back and hold it against what the simulator serves now."""
    if not DeltaTable.is_deltatable(str(warehouse / CHECKPOINTS.name)):
        truth = sum(len(_expected(sim, name, floor)[0]) for name in LOG_TABLES)
        return Comparison(0, truth, 0, truth, 0, 0, 0, 0, 0, 0)
    engine = LocalEngine(warehouse)
    cursors = engine.read_checkpoints(sim.account_id)
    rows = expected_total = duplicates = missing = extra = 0
    below_cursor: dict[str, tuple[str, datetime]] = {}
    reject_texts = {(r["stream"], r["raw_json"]) for r in engine.read_table(REJECTS).to_pylist()}
    rejects_expected = rejects_missing = 0
    for name, spec in LOG_TABLES.items():
        wanted, bad = _expected(sim, name, floor)
        table = engine.read_table(spec).to_pylist()
        held = {row["lw_id"]: row for row in table}
        cursor = cursors.get(name)
        rows += len(table)
        expected_total += len(wanted)
        duplicates += len(table) - len(held)
        extra += sum(1 for key, row in held.items() if wanted.get(key) != row)
        for key, row in wanted.items():
            if key not in held:
                missing += 1
                if cursor is not None and row["time"] < cursor:  # type: ignore[operator]
                    below_cursor[key] = (name, row["time"])  # type: ignore[assignment]
        rejects_expected += len(bad)
        rejects_missing += len({(name, raw) for raw in bad} - reject_texts)
    return Comparison(
        rows=rows,
        expected=expected_total,
        duplicates=duplicates,
        missing=missing,
        extra=extra,
        gap=len(below_cursor),
        rejects=len(reject_texts),
        rejects_expected=rejects_expected,
        rejects_missing=rejects_missing,
        checkpoint_rows=engine.read_table(CHECKPOINTS).num_rows,
        cursors={name: cursors.get(name) for name in LOG_TABLES},
        below_cursor=below_cursor,
    )


def _expected(
    sim: Simulator, stream: str, floor: datetime
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The rows the documented normaliser makes of the ground truth, and the raw JSON of
    the records it rejects. Unparseable records sit at the time they were added."""
    batch = Batch(LOG_TABLES[stream])
    batch.add(sim.ground_truth(stream, start=floor))
    rows = {key: row for key, row in batch.rows.items() if row["time"] >= floor}  # type: ignore[operator]
    return rows, {reject.raw_json for reject in batch.rejects}


def leaks(sim: Simulator, texts: Iterable[str], warehouse: Path | None) -> list[str]:
    """Where the client secret or any access token the simulator issued shows up: in
    `texts` (process output) or in any row of any table of `warehouse`."""
    secrets = [sim.client_secret, *sim.issued_tokens()]
    found: list[str] = []
    for index, text in enumerate(texts):
        found += [f"output {index}" for s in secrets if s in text]
    if warehouse is not None and DeltaTable.is_deltatable(str(warehouse / CHECKPOINTS.name)):
        engine = LocalEngine(warehouse)
        for spec in ALL_TABLES.values():
            dump = repr(engine.read_table(spec).to_pylist())
            found += [f"table {spec.name}" for s in secrets if s in dump]
    return found


def runs_rejected(warehouse: Path) -> int:
    """records_rejected summed over every row of zoom_ingest_runs."""
    runs = LocalEngine(warehouse).read_table(RUNS).to_pylist()
    return sum(r["records_rejected"] or 0 for r in runs)


# --------------------------------------------------------------------------- kill + resume


@dataclass(frozen=True)
class KillPoint:
    """One SIGKILL: the trigger drawn, where it landed, and what the warehouse held after."""

    after_calls: int  # the trigger: this many API calls of the attempt…
    plus_seconds: float  # …and then this long
    at_seconds: float  # when the process died, after it started
    calls: int  # API calls the attempt had made by then
    rows: int  # log-table rows committed when it died
    consistent: bool  # no duplicate, nothing extra, no gap below the cursor
    orphans: int = 0  # data files written but never committed: the kill hit a write
    state: str = ""  # the comparison with the ground truth after the kill

    def describe(self) -> str:
        text = (
            f"{self.calls} calls / {self.at_seconds:.2f} s "
            f"(trigger {self.after_calls} calls + {self.plus_seconds * 1000:.0f} ms), "
            f"{self.rows:,} rows kept"
        )
        if self.orphans:
            text += f", mid-write ({self.orphans} uncommitted file(s) left, unread by Delta)"
        return text if self.consistent else f"{text} — INCONSISTENT: {self.state}"


@dataclass
class KillReport:
    kills: list[KillPoint]
    finished_early: bool  # an attempt finished before its kill point came
    final: Attempt
    comparison: Comparison

    @property
    def runs(self) -> int:
        return len(self.kills) + 1 + self.finished_early


def kill_and_resume(
    runner: Runner,
    args: Sequence[str],
    env: dict[str, str],
    *,
    kills: int,
    rng: random.Random,
    max_calls: int,
    max_delay: float,
    floor: datetime,
    warehouse: Path,
    lookback: timedelta = timedelta(hours=1),
) -> KillReport:
    """SIGKILL `kills` runs in a row, each at a seeded random moment (after 0…max_calls
    API calls, plus 0…max_delay seconds), checking after each kill that the warehouse
    holds no duplicate, nothing extra and no gap below its checkpoints; then let one run
    finish and compare with the ground truth. Nothing is repaired between runs.

    Records that arrived after a cursor was written (late, below it) are no gap while
    that cursor stands; once a run moves the cursor on, those it re-read (no older than
    the old cursor − `lookback`) must be in. Records are added only between runs."""
    before = compare(warehouse, runner.sim, floor)
    late = before.below_cursor
    points: list[KillPoint] = []
    finished_early = False
    orphans = uncommitted_files(warehouse)  # left by earlier kills: not this one's
    while len(points) < kills:
        after_calls = rng.randint(0, max_calls)
        plus_seconds = round(rng.uniform(0.0, max_delay), 3)
        attempt = runner.run_and_kill(args, env, after_calls, plus_seconds)
        if not attempt.killed:
            finished_early = True
            break
        state = compare(warehouse, runner.sim, floor)
        gap = [key for key in state.below_cursor if _owed(key, late, before, state, lookback)]
        consistent = not (state.duplicates or state.extra or gap) and state.checkpoint_rows <= 2
        left = uncommitted_files(warehouse)
        points.append(
            KillPoint(
                after_calls=after_calls,
                plus_seconds=plus_seconds,
                at_seconds=attempt.seconds,
                calls=attempt.calls,
                rows=state.rows,
                consistent=consistent,
                orphans=len(left - orphans),
                state=f"{state.describe()} ({len(gap)} owed), "
                f"{state.checkpoint_rows} checkpoint rows",
            )
        )
        orphans = left
    final = runner.run(args, env)
    return KillReport(points, finished_early, final, compare(warehouse, runner.sim, floor))


def uncommitted_files(warehouse: Path) -> set[Path]:
    """Parquet files in the tables' folders that no Delta commit ever added: left by a
    write that was killed before its commit (harmless: readers never see them)."""
    found: set[Path] = set()
    for spec in ALL_TABLES.values():
        folder = warehouse / spec.name
        if not (folder / "_delta_log").is_dir():
            continue
        added = set()
        for commit in (folder / "_delta_log").glob("*.json"):
            for line in commit.read_text("utf-8").splitlines():
                action = json.loads(line) if line.strip() else {}
                if "add" in action:
                    added.add(unquote(action["add"]["path"]))
        for file in folder.rglob("*.parquet"):
            relative = file.relative_to(folder)
            if relative.parts[0] != "_delta_log" and str(relative) not in added:
                found.add(file)
    return found


def _owed(
    key: str,
    late: dict[str, tuple[str, datetime]],
    before: Comparison,
    now: Comparison,
    lookback: timedelta,
) -> bool:
    """Must this record, missing below its stream's cursor, be in the tables by now?"""
    if key not in late:
        return True  # it was there when the cursor was written
    stream, time_ = late[key]
    old, new = before.cursors.get(stream), now.cursors.get(stream)
    moved = old is not None and new is not None and new > old
    return moved and time_ >= old - lookback  # type: ignore[operator]


def recent_records(sim: Simulator, count: int, within: timedelta, seed: int) -> list[dict]:
    """`count` new sign-in records at random instants in the last `within`."""
    rng = random.Random(seed)
    now = sim.clock().replace(microsecond=0)
    records = []
    for i in range(count):
        at = now - timedelta(seconds=rng.randint(1, int(within.total_seconds())))
        records.append(
            {
                "email": f"late.{seed}.{i}@example.com",
                "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "type": rng.choice(("Sign in", "Sign out")),
                "ip_address": f"203.0.113.{rng.randint(1, 254)}",
                "client_type": rng.choice(("Mac", "Windows", "Browser")),
                "version": "6.2.5 (41233)",
            }
        )
    return records


# --------------------------------------------------------------------------- bad settings


@dataclass(frozen=True)
class BadSetting:
    """A wrong value for one setting, given as the CLI user would give it."""

    setting: str  # the setting the one-line message must name
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    allowed: str = ""  # words from the "what is allowed" part of the message

    @property
    def label(self) -> str:
        given = " ".join(self.args) or " ".join(f"{k}={v!r}" for k, v in self.env)
        return f"{self.setting}: {given}"


#: At least one wrong value for every setting of `zoom-ingest run` (tests check that).
BAD_SETTINGS: tuple[BadSetting, ...] = (
    BadSetting("account_id", env=(("ZOOM_ACCOUNT_ID", " "),), allowed="ZOOM_ACCOUNT_ID"),
    BadSetting("client_id", env=(("ZOOM_CLIENT_ID", ""),), allowed="ZOOM_CLIENT_ID"),
    BadSetting("client_secret", env=(("ZOOM_CLIENT_SECRET", ""),), allowed="ZOOM_CLIENT_SECRET"),
    BadSetting("client_secret", env=(("ZOOM_CLIENT_SECRET", "   "),), allowed="ZOOM_CLIENT_SECRET"),
    BadSetting("api_url", ("--api-url", "http://api.zoom.us/v2"), allowed="loopback"),
    BadSetting("api_url", ("--api-url", "api.zoom.us/v2"), allowed="http"),
    BadSetting("oauth_url", ("--oauth-url", "http://zoom.us/oauth/token"), allowed="loopback"),
    BadSetting("oauth_url", ("--oauth-url", "ftp://zoom.us/oauth/token"), allowed="http"),
    BadSetting("streams", ("--streams", "meetings"), allowed="operation_logs"),
    BadSetting("streams", ("--streams", " , "), allowed="activity_logs"),
    BadSetting("category_type", ("--category-type", "everything"), allowed="user_settings"),
    BadSetting("backfill_start", ("--backfill-start", "2999-01-01"), allowed="past"),
    BadSetting("backfill_start", ("--backfill-start", "01/02/2026"), allowed="YYYY-MM-DD"),
    BadSetting("lookback", ("--lookback", "soon"), allowed="90m"),
    BadSetting("lookback", ("--lookback", "40d"), allowed="31 days"),
    BadSetting("mode", ("--mode", "full"), allowed="reconcile"),
    BadSetting("reconcile_days", ("--reconcile-days", "0"), allowed="180"),
    BadSetting("reconcile_days", ("--reconcile-days", "three"), allowed="integer"),
    BadSetting("requests_per_second", ("--requests-per-second", "0"), allowed="0.1"),
    BadSetting("requests_per_second", ("--requests-per-second", "fast"), allowed="float"),
    BadSetting("concurrency", ("--concurrency", "0"), allowed="256"),
    BadSetting("window_days", ("--window-days", "29"), allowed="28"),
    BadSetting("window_days", env=(("ZOOM_INGEST_WINDOW_DAYS", "weekly"),), allowed="integer"),
    BadSetting("batch_rows", ("--batch-rows", "0"), allowed="outside 1"),
    BadSetting("timeout", ("--timeout", "0"), allowed="600"),
    BadSetting("max_retries", ("--max-retries", "-1"), allowed="100"),
    BadSetting("warehouse", ("--warehouse", "{file}"), allowed="directory"),
)


@dataclass(frozen=True)
class SettingCheck:
    bad: BadSetting
    returncode: int
    lines: list[str]
    calls: int  # API calls + token requests the simulator saw

    @property
    def ok(self) -> bool:
        line = self.lines[0] if len(self.lines) == 1 else ""
        return (
            self.returncode == EXIT_SETTINGS
            and self.bad.setting in line
            and self.bad.allowed.lower() in line.lower()
            and self.calls == 0
        )


def check_bad_settings(bads: Sequence[BadSetting], workdir: Path) -> list[SettingCheck]:
    """Run `zoom-ingest run` once per wrong setting, all at once, each against a
    simulator of its own: what did it print, and did it call the API or the token
    endpoint?"""
    a_file = workdir / "not-a-folder"
    a_file.write_text("")
    with contextlib.ExitStack() as stack:
        launched = []
        for bad in bads:
            sim = stack.enter_context(Simulator(seed=1, days=1, activity_per_day=5))
            args = [a.replace("{file}", str(a_file)) for a in bad.args]
            warehouse = [] if "--warehouse" in args else ["--warehouse", str(workdir / "wh")]
            proc = subprocess.Popen(
                [*zoom_ingest_command(), "run", *warehouse, "--no-progress", *args],
                env=cli_env(sim, **dict(bad.env)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            launched.append((bad, sim, proc))
        checks = []
        for bad, sim, proc in launched:
            _, stderr = proc.communicate(timeout=120)
            lines = [line for line in stderr.splitlines() if line.strip()]
            calls = sim.stats.calls + sim.stats.token_requests
            checks.append(SettingCheck(bad, proc.returncode, lines, calls))
    return checks


# --------------------------------------------------------------------------- scenarios


@dataclass
class Row:
    """One line of the outcome table."""

    what: str  # the fault or bad input
    injected: str  # how it was injected
    hits: str  # how often it fired
    runs: str  # exit codes of the runs needed, in order
    equal: str  # tables == ground truth at the end
    duplicates: str
    consistent: str  # every stop/crash left the checkpoint at or before the data
    rejects: str  # rejects table / run summary / runs table
    leaks: str  # secret or token found in output or tables
    seconds: float
    notes: str = ""
    passed: bool = True


@dataclass
class Scale:
    """How much data and how many kills; `--quick` shrinks everything."""

    days: int = 120  # multi-month backfill for the kill scenarios
    fault_days: int = 45  # history of the fault scenarios
    activity_per_day: int = 400
    operation_per_day: int = 80
    kills: int = 10
    incremental_kills: int = 5
    repeat: int = 2
    sequences: int = 30  # the model-based test's long profile
    steps: int = 20


class Soak:
    def __init__(self, seed: int, scale: Scale, workdir: Path) -> None:
        self.seed = seed
        self.scale = scale
        self.workdir = workdir
        self.rows: list[Row] = []
        self._scenario = 0

    # -- helpers

    def _simulator(self, days: int, trial: int, **options: Any) -> Simulator:
        options.setdefault("activity_per_day", self.scale.activity_per_day)
        options.setdefault("operation_per_day", self.scale.operation_per_day)
        return Simulator(
            seed=self.seed * 1000 + self._scenario * 10 + trial,
            days=days,
            client_secret=FAKE_SECRET,
            **options,
        )

    def _place(self, name: str) -> tuple[Path, Path]:
        self._scenario += 1
        base = self.workdir / f"{self._scenario:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}"
        (base / "logs").mkdir(parents=True)
        return base / "wh", base / "logs"

    @staticmethod
    def _start(days: int) -> date:
        return datetime.now(UTC).date() - timedelta(days=days - 1)

    @staticmethod
    def _common(*extra: str) -> list[str]:
        return [
            "--requests-per-second", "150", "--concurrency", "6", "--timeout", "2",
            "--max-retries", "5", "--batch-rows", "5000", *extra,
        ]  # fmt: skip

    # -- one fault, repeated

    def fault(
        self,
        what: str,
        injected: str,
        faults: Callable[[Simulator], list[Fault]],
        *,
        kinds: Sequence[str] = (),
        sim_options: dict[str, Any] | None = None,
        extra: Sequence[str] = (),
        expect_first: int | tuple[int, ...] = EXIT_OK,
        between: Callable[[Simulator], None] | None = None,
        follow_up: Sequence[str] = (),
        notes: str = "",
    ) -> Row:
        """Run a backfill with `faults` armed; when the first run stops (with an exit code
        in `expect_first`), clear the faults (and call `between`) and run again."""
        allowed_first = (expect_first,) if isinstance(expect_first, int) else expect_first
        started = time.monotonic()
        hits, codes, equal, dups, consistent, leaked = [], [], True, 0, True, 0
        rejects = ""
        why = ""
        for trial in range(self.scale.repeat):
            warehouse, logs = self._place(f"{what}-{trial}")
            with self._simulator(self.scale.fault_days, trial, **(sim_options or {})) as sim:
                runner = Runner(sim, logs)
                start = self._start(self.scale.fault_days - 1)
                args = run_args(warehouse, start, *self._common(*extra))
                for fault in faults(sim):
                    sim.faults.inject(fault)
                first = runner.run(args, cli_env(sim))
                trial_codes = [first.returncode]
                state = compare(warehouse, sim, floor_of(start))
                consistent &= state.consistent
                if first.returncode != EXIT_OK:
                    why = why or first.error_line()
                    sim.faults.clear()
                    if between:
                        between(sim)
                    trial_codes.append(runner.run(args, cli_env(sim)).returncode)
                elif between:
                    between(sim)
                for extra_args in follow_up:
                    trial_codes.append(
                        runner.run([*args, *extra_args.split()], cli_env(sim)).returncode
                    )
                final = compare(warehouse, sim, floor_of(start))
                hits.append(sum(sim.faults.hits(k) for k in kinds) if kinds else 0)
                codes.append(trial_codes)
                equal &= final.equal and trial_codes[0] in allowed_first
                equal &= trial_codes[-1] == EXIT_OK
                dups += final.duplicates
                leaked += len(leaks(sim, [a.output for a in runner.attempts], warehouse))
                rejects = f"{final.rejects}/{final.rejects_expected}"
        return self._row(
            what, injected, hits, codes, equal, dups, consistent, rejects, leaked, started,
            f"{notes} {('Stopped with: ' + _short(why)) if why else ''}".strip(),
        )  # fmt: skip

    def _row(
        self,
        what: str,
        injected: str,
        hits: list[int],
        codes: list[list[int]],
        equal: bool,
        duplicates: int,
        consistent: bool,
        rejects: str,
        leaked: int,
        started: float,
        notes: str,
    ) -> Row:
        runs = sorted({" → ".join(map(str, c)) for c in codes})
        row = Row(
            what=what,
            injected=injected,
            hits=" / ".join(str(h) for h in hits) if any(hits) else "-",
            runs=f"{len(codes)}× " + ", ".join(runs),
            equal=_yes(equal),
            duplicates=str(duplicates),
            consistent=_yes(consistent),
            rejects=rejects or "-",
            leaks=str(leaked),
            seconds=time.monotonic() - started,
            notes=notes,
            passed=equal and duplicates == 0 and consistent and leaked == 0,
        )
        self.rows.append(row)
        print(_console(row), flush=True)
        return row

    # -- the catalogue

    def faults(self) -> None:
        calls = max(20, self.scale.fault_days * 4)  # roughly the calls of one backfill
        self.fault(
            "429 per-second storm",
            "simulator admits 25 req/s, client sends up to 150/s; plus 10% random QPS 429s",
            lambda s: [Fault("qps_429", count=40, probability=0.1)],
            kinds=("qps_429",),
            sim_options={"qps_limit": 25},
            notes="Every 429 holds all threads back for Retry-After.",
        )
        self.fault(
            "429 daily limit mid-backfill",
            f"`daily_429` from call {calls // 3} on, until cleared",
            lambda s: [Fault("daily_429", count=None, after_calls=calls // 3)],
            kinds=("daily_429",),
            expect_first=EXIT_DAILY_LIMIT,
            notes="Run 1 stops with exit 3 and the retry time; run 2 resumes from the cursor.",
        )
        for kind in ("http_500", "http_502", "http_503"):
            self.fault(
                f"HTTP {kind[-3:]}",
                f"`{kind}` on 8% of calls (at most 25)",
                lambda s, kind=kind: [Fault(kind, count=25, probability=0.08)],
                kinds=(kind,),
            )
        self.fault(
            "connection reset",
            "`reset` (TCP RST, no answer) on 8% of calls (at most 25)",
            lambda s: [Fault("reset", count=25, probability=0.08)],
            kinds=("reset",),
        )
        self.fault(
            "slow response past the client timeout",
            "`slow` 3 s answers to a 2 s client timeout, 6 calls",
            lambda s: [Fault("slow", count=6, delay=3.0, after_calls=5, probability=0.2)],
            kinds=("slow",),
        )
        self.fault(
            "token revoked mid-run (401 code 124)",
            "every token revoked at 3 moments of the run",
            lambda s: [Fault("token_revoked", after_calls=n) for n in (10, 40, 70)],
            kinds=("token_revoked",),
            notes="One refresh per revocation, then the call is retried.",
        )
        self.fault(
            "expired page token (code 300) mid-window",
            "`page_token_expired` on 20% of next-page calls (at most 8)",
            lambda s: [Fault("page_token_expired", count=8, probability=0.2)],
            kinds=("page_token_expired",),
            notes="The window restarts from its first page; lw_id removes the repeats.",
        )
        self.fault(
            "same record on two pages",
            "every page repeats the last record of the page before",
            lambda s: [],
            sim_options={"duplicate_across_pages": True, "activity_per_day": 900},
        )
        self.fault(
            "late-arriving records",
            "5% of records hidden during the backfill, then released",
            lambda s: [],
            sim_options={"late_fraction": 0.05},
            between=lambda s: s.release_late(),
            follow_up=("--mode incremental",
                       f"--mode reconcile --reconcile-days {self.scale.fault_days}"),
            notes="Backfill, release, incremental, reconcile: the reconcile run catches them.",
        )  # fmt: skip
        self.fault(
            "HTML error page with 200",
            "`html_200` on 8% of calls (at most 20)",
            lambda s: [Fault("html_200", count=20, probability=0.08)],
            kinds=("html_200",),
        )
        self.fault(
            "truncated JSON body",
            "`truncated_json` on 8% of pages (at most 20)",
            lambda s: [Fault("truncated_json", count=20, probability=0.08)],
            kinds=("truncated_json",),
        )
        self.fault(
            "empty page with a next_page_token",
            "`empty_page_with_token` on 10% of pages (at most 20)",
            lambda s: [Fault("empty_page_with_token", count=20, probability=0.1)],
            kinds=("empty_page_with_token",),
        )
        self.fault(
            "HTTP 503 that never ends",
            "`http_503` on every call after the 20th, until cleared",
            lambda s: [Fault("http_503", count=None, after_calls=20)],
            kinds=("http_503",),
            extra=("--max-retries", "3"),
            expect_first=EXIT_FAILED,
            notes="Retries stop after 3; the run exits 1 naming the window and Zoom's answer.",
        )
        self.fault(
            "empty pages with a next_page_token forever",
            "`empty_page_with_token` on every page after the 10th, until cleared",
            lambda s: [Fault("empty_page_with_token", count=None, after_calls=10)],
            kinds=("empty_page_with_token",),
            extra=("--requests-per-second", "400", "--concurrency", "2"),
            expect_first=EXIT_FAILED,
            notes="A looping API: each window gives up after 1,000 empty pages in a row.",
        )
        self.fault(
            "token revoked on every call",
            "`token_revoked` on every call after the 15th, until cleared",
            lambda s: [Fault("token_revoked", count=None, after_calls=15)],
            kinds=("token_revoked",),
            expect_first=EXIT_FAILED,
            notes="One refresh, then the run stops every stream with an auth error.",
        )
        self.fault(
            "token endpoint down",
            "`http_503` from /oauth/token on every request, until cleared",
            lambda s: [Fault("http_503", count=None, path="/oauth/token")],
            kinds=("http_503",),
            extra=("--max-retries", "2"),
            expect_first=EXIT_FAILED,
        )
        self.bad_credentials()
        self.fault(
            "everything at once",
            "5xx, resets, slow, 429s, revoked token, expired page tokens, bad bodies, "
            "duplicates across pages",
            lambda s: [
                Fault("http_500", count=10, probability=0.03),
                Fault("http_503", count=10, probability=0.03),
                Fault("reset", count=10, probability=0.03),
                Fault("slow", count=3, delay=3.0, probability=0.02),
                Fault("qps_429", count=10, probability=0.03),
                Fault("token_revoked", after_calls=30),
                Fault("token_revoked", after_calls=90),
                Fault("page_token_expired", count=4, probability=0.1),
                Fault("html_200", count=5, probability=0.02),
                Fault("truncated_json", count=5, probability=0.02),
                Fault("empty_page_with_token", count=5, probability=0.03),
            ],
            kinds=("http_500", "http_503", "reset", "slow", "qps_429", "token_revoked",
                   "page_token_expired", "html_200", "truncated_json", "empty_page_with_token"),
            sim_options={"duplicate_across_pages": True},
            expect_first=(EXIT_OK, EXIT_FAILED),
            notes="Should a token be revoked again between its refresh and its first use, "
                  "that run stops (exit 1: one refresh per 124, as the API contract says) "
                  "and the next one finishes; Runs shows whether it happened.",
        )  # fmt: skip

    def bad_credentials(self) -> None:
        """A wrong client secret: refused once, the run stops; fixed, the next one runs."""
        started = time.monotonic()
        warehouse, logs = self._place("bad-credentials")
        days = self.scale.fault_days
        with self._simulator(days, 0) as sim:
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common())
            wrong = runner.run(args, cli_env(sim, ZOOM_CLIENT_SECRET="FAKE-wrong-secret-0000"))
            asked = sim.stats.token_requests
            right = runner.run(args, cli_env(sim))
            final = compare(warehouse, sim, floor_of(start))
            texts = [a.output for a in runner.attempts]
            leaked = len(leaks(sim, texts, warehouse))
            leaked += sum("FAKE-wrong-secret-0000" in text for text in texts)
        self._row(
            "wrong client secret",
            "ZOOM_CLIENT_SECRET set to another value for the first run",
            [asked],
            [[wrong.returncode, right.returncode]],
            final.equal and wrong.returncode == EXIT_FAILED and right.returncode == EXIT_OK,
            final.duplicates,
            final.consistent,
            f"{final.rejects}/{final.rejects_expected}",
            leaked,
            started,
            f"Hits: token requests of the refused run (refused once, not asked again). "
            f"Stopped with: {_short(wrong.error_line())}",
        )

    def bad_records(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")

        def sign_in(i: int, **fields: Any) -> dict[str, Any]:
            return {"email": f"odd{i}@example.com", "time": stamp, "type": "Sign in", **fields}

        big = "x" * (1024 * 1024)
        cases: list[tuple[str, str, list[Any], int]] = [
            ("record without `time`", "3 records",
             [{k: v for k, v in sign_in(i).items() if k != "time"} for i in range(3)], 3),
            ("unparseable `time`",
             "`yesterday`, `2025-13-45T99:00:00Z`, an empty string, a time without zone",
             [sign_in(0, time="yesterday"), sign_in(1, time="2025-13-45T99:00:00Z"),
              sign_in(2, time=""), sign_in(3, time=stamp[:-1])], 4),
            ("wrong JSON types", "`time` a number/null, `email` 42, `type` a list, "
             "`version` an object",
             [sign_in(0, time=1754922738), sign_in(1, time=None), sign_in(2, email=42),
              sign_in(3, type=["Sign in"]), sign_in(4, version={"major": 6})], 5),
            ("record that is not a JSON object", "a string, a list, null and a number",
             ["Sign in", [stamp, "odd@example.com"], None, 3.5], 4),
            ("extra unknown fields", "3 valid records with undocumented fields",
             [sign_in(i, device_id=i, extra={"nested": [1, 2]}) for i in range(3)], 0),
            ("huge strings", "3 records with a 1 MiB `version` / `email`",
             [sign_in(0, version=big), sign_in(1, email=big + "@example.com"),
              sign_in(2, ip_address=big[:100_000])], 0),
            ("control characters", "NUL, BEL, ESC, U+2028, RTL override in fields",
             [sign_in(0, email="nul\x00@example.com"), sign_in(1, version="bell\x07esc\x1b"),
              sign_in(2, client_type="line\u2028sep\u202eevil")], 0),
            ("lone surrogate", "a field holding an unpaired UTF-16 surrogate",
             [sign_in(0, ip_address="\ud800"), sign_in(1, email="a\udfffb@example.com")], 2),
        ]  # fmt: skip
        for what, injected, records, rejected in cases:
            self._bad_record_case(what, injected, records, rejected)

    def _bad_record_case(self, what: str, injected: str, records: list[Any], rejected: int) -> None:
        started = time.monotonic()
        warehouse, logs = self._place(what)
        days = 4
        with self._simulator(days, 0, activity_per_day=150, operation_per_day=30) as sim:
            sim.add_records("activity_logs", records)
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common())
            first = runner.run(args, cli_env(sim))
            second = runner.run(args, cli_env(sim))  # fetches the same bad records again
            final = compare(warehouse, sim, floor_of(start))
            summary = first.summary_rejected()
            in_runs = runs_rejected(warehouse)
            leaked = len(leaks(sim, [a.output for a in runner.attempts], warehouse))
        ok = final.equal and final.rejects == rejected and summary == rejected
        self._row(
            what, injected, [len(records)], [[first.returncode, second.returncode]],
            ok and first.returncode == second.returncode == EXIT_OK, final.duplicates,
            final.consistent, f"{final.rejects} / {summary} / {in_runs}", leaked, started,
            "Stored as given." if rejected == 0 else
            "In zoom_ingest_rejects with the raw JSON and the reason; stored once though "
            "fetched twice.",
        )  # fmt: skip

    def kills(self) -> None:
        """SIGKILL during a multi-month backfill, then during an incremental run."""
        started = time.monotonic()
        warehouse, logs = self._place("sigkill-backfill")
        rng = random.Random(self.seed)
        days = self.scale.days
        with self._simulator(days, 0, latency=0.004) as sim:
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common("--batch-rows", "1500"))
            report = kill_and_resume(
                runner, args, cli_env(sim), kills=self.scale.kills, rng=rng,
                max_calls=max(4, days * 3 // (self.scale.kills + 1)), max_delay=0.4,
                floor=floor_of(start), warehouse=warehouse,
            )  # fmt: skip
            self._kill_row(
                f"SIGKILL during a {days}-day backfill", report, runner, sim, warehouse, started
            )

            started = time.monotonic()
            sim.add_records("activity_logs", recent_records(sim, 6000, timedelta(minutes=50), 1))
            # One paging chain of ~20 pages: slower answers spread it over ~0.5 s, so the
            # kills land while it pages as well as while it merges.
            sim.latency = 0.02
            report = kill_and_resume(
                runner, args, cli_env(sim), kills=self.scale.incremental_kills, rng=rng,
                max_calls=12, max_delay=0.3, floor=floor_of(start), warehouse=warehouse,
            )  # fmt: skip
            self._kill_row(
                "SIGKILL during an incremental run (6,000 new records)",
                report, runner, sim, warehouse, started,
            )  # fmt: skip

    def _kill_row(
        self,
        what: str,
        report: KillReport,
        runner: Runner,
        sim: Simulator,
        warehouse: Path,
        started: float,
    ) -> None:
        points = "; ".join(f"#{i + 1}: {p.describe()}" for i, p in enumerate(report.kills))
        codes = ["killed"] * len(report.kills) + [str(report.final.returncode)]
        self._row(
            what,
            f"SIGKILL at seeded random moments, {len(report.kills)} times in a row",
            [len(report.kills)],
            [codes],  # type: ignore[list-item]
            report.comparison.equal
            and report.final.returncode == EXIT_OK
            and not report.finished_early
            and len(report.kills) > 0,
            report.comparison.duplicates,
            all(p.consistent for p in report.kills),
            f"{report.comparison.rejects}/{report.comparison.rejects_expected}",
            len(leaks(sim, [a.output for a in runner.attempts], warehouse)),
            started,
            f"Kill points: {points}. Final: {report.comparison.describe()}.",
        )

    def concurrency(self) -> None:
        started = time.monotonic()
        warehouse, logs = self._place("concurrent")
        days = self.scale.fault_days
        with self._simulator(days, 0, latency=0.01) as sim:
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common())
            first = runner.start(args, cli_env(sim))
            second = runner.start(args, cli_env(sim))
            t0, calls = time.monotonic(), sim.stats.calls
            for proc, _ in (first, second):
                proc.wait(timeout=RUN_TIMEOUT)
            attempts = [runner.collect(p, out, t0, calls) for p, out in (first, second)]
            codes = sorted(a.returncode for a in attempts)
            busy = next((a for a in attempts if a.returncode == EXIT_BUSY), None)
            final = compare(warehouse, sim, floor_of(start))
            leaked = len(leaks(sim, [a.output for a in runner.attempts], warehouse))
        message = busy.stderr.strip().splitlines()[-1] if busy else ""
        message = re.sub(r"pid \d+", "pid <n>", message.replace(str(warehouse), "<warehouse>"))
        self._row(
            "two runs started at once on one warehouse",
            "2 processes launched back to back",
            [2],
            [[" and ".join(map(str, codes))]],  # type: ignore[list-item]
            final.equal and codes == [EXIT_OK, EXIT_BUSY],
            final.duplicates,
            final.consistent,
            f"{final.rejects}/{final.rejects_expected}",
            leaked,
            started,
            f"The second says: {_short(message, 160)}",
        )

    def model(self) -> None:
        """The model-based test's long profile: new random sequences of runs each time."""
        from support.cursor_model import TALLY, explore  # tests/ is on PYTHONPATH (Makefile)

        started = time.monotonic()
        TALLY.clear()
        failure = ""
        try:
            explore(self.scale.sequences, self.scale.steps, derandomize=False)
        except Exception as exc:  # hypothesis has printed the shortest failing sequence
            failure = f"{type(exc).__name__}: {str(exc)[:300]}"
        t = TALLY
        self._row(
            "random sequences of runs (model-based, tests/support/cursor_model.py)",
            f"{t['sequences']} sequences × up to {self.scale.steps} steps "
            f"({t['steps_checked']} checked): {t['runs']} runs, {t['kills']} SIGKILLs, "
            f"{t['daily_limit_stops']} daily-limit stops, {t['overlapping_pairs']} overlapping "
            f"pairs, {sum(v for k, v in t.items() if k.startswith('fault_'))} fault runs, "
            f"{t['late_records']} late records, {t['minutes_advanced'] // 1440} days of time",
            [t["kills"], t["daily_limit_stops"]],
            [[EXIT_OK]] * max(1, t["sequences"]),
            not failure,
            0,  # a duplicate lw_id fails the invariant, so failure covers it
            not failure,
            "-",
            0,
            started,
            failure
            or f"records lost 0, duplicates 0; settle runs stored {t['records_settled']:,} "
            "records, each sequence's tables equal to the truth since its floor",
        )

    def settings(self) -> None:
        started = time.monotonic()
        base, _ = self._place("bad-settings")
        base.mkdir()
        checks = check_bad_settings(BAD_SETTINGS, base)
        leaked = sum(FAKE_SECRET in " ".join(c.lines) for c in checks)
        failed = [c.bad.label for c in checks if not c.ok]
        settings_named = sorted({c.bad.setting for c in checks})
        self._row(
            "bad settings",
            f"{len(checks)} wrong values for {len(settings_named)} settings: "
            + ", ".join(settings_named),
            [len(checks)],
            [sorted({c.returncode for c in checks})],
            not failed,
            0,
            True,
            "-",
            leaked,
            started,
            "Each: exit 2, one line naming the setting and what is allowed, no API or "
            "token call." + (f" FAILED: {'; '.join(failed)}" if failed else ""),
        )
        self._retention_clamp()

    def _retention_clamp(self) -> None:
        started = time.monotonic()
        warehouse, logs = self._place("retention-clamp")
        with self._simulator(200, 0, activity_per_day=4, operation_per_day=1) as sim:
            runner = Runner(sim, logs)
            asked = datetime.now(UTC).date() - timedelta(days=250)
            attempt = runner.run(run_args(warehouse, asked, *self._common("--window-days", "14")),
                                 cli_env(sim))  # fmt: skip
            warned = "retention" in attempt.stderr
            oldest_kept = min(
                LocalEngine(warehouse).read_table(LOG_TABLES["activity_logs"])["time"].to_pylist()
            )
            within = oldest_kept >= datetime.now(UTC) - timedelta(days=186)
            leaked = len(leaks(sim, [attempt.output], warehouse))
        self._row(
            "backfill start older than Zoom's 6-month retention",
            f"--backfill-start {asked} (250 days back)",
            [1],
            [[attempt.returncode]],
            attempt.returncode == EXIT_OK and warned and within,
            0,
            True,
            "-",
            leaked,
            started,
            "Not an error: clamped to the retention with a warning, and the run proceeds "
            f"(warning printed: {_yes(warned)}; oldest row {oldest_kept:%Y-%m-%d}).",
        )


# --------------------------------------------------------------------------- the report


def _yes(flag: bool) -> str:
    return "yes" if flag else "**NO**"


def _short(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    text = re.sub(r"\[x-zm-trackingid [^\]]*\]", "[x-zm-trackingid …]", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _console(row: Row) -> str:
    flag = "ok  " if row.passed else "FAIL"
    return f"{flag} {row.seconds:6.1f} s  {row.what}: runs {row.runs}, hits {row.hits}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[Row], header: dict[str, str]) -> str:
    lines = [
        "# Faults and bad input: what the soak test tried, and what came out",
        "",
        "Generated by `scripts/soak.py`; do not edit by hand, run it again:",
        "",
        f"    {header['command']}",
        "",
        f"{header['when']} · seed {header['seed']} · {header['scale']} · "
        f"total {header['seconds']} · {header['verdict']}",
        "",
        "Every run is a real `zoom-ingest run` process against the Zoom simulator "
        "(`zoom_ingest.simulator`) over sockets, writing local Delta tables. "
        "**= ground truth**: after the last run, both log tables hold exactly the records "
        "the simulator serves (row by row, every column), each once, and every unparseable "
        "record is in `zoom_ingest_rejects`. **Cursor ≤ data**: after every stopped, "
        "failed or killed run, no record older than a checkpoint cursor was missing and "
        "nothing was duplicated. **Leaks**: places where the client secret or any access "
        "token the simulator issued appeared in the output of any run (at DEBUG) or in "
        "any row of any table. **Runs** lists the exit codes of the runs a trial needed "
        "(0 ok, 1 stream failed, 2 bad settings, 3 daily limit, 4 warehouse busy, 5 Zoom "
        "unreachable) and how "
        "many trials ran. **Rejects**: rows in `zoom_ingest_rejects` / rejects counted in "
        "the printed run summary / `records_rejected` in `zoom_ingest_runs` (for the bad "
        "records; elsewhere rows / expected).",
        "",
        "| Fault or input | Injected | Hits | Runs (exit codes) | = ground truth | "
        "Duplicate lw_id | Cursor ≤ data | Rejects | Leaks | Seconds | Notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r.what, r.injected, r.hits, r.runs, r.equal, r.duplicates, r.consistent,
                 r.rejects, r.leaks, f"{r.seconds:.1f}", r.notes]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "Notes on behaviour the table relies on:",
        "",
        "- A backfill start older than Zoom's 6-month retention is **clamped with a "
        "warning**, not refused: Zoom cannot serve older records, and a scheduled job "
        "should not fail for it. A backfill start in the future is refused (exit 2).",
        "- Retries are bounded (`--max-retries`, default 8, exponential backoff with "
        "jitter); a per-second 429 waits `Retry-After` for every thread; a daily 429 stops "
        "the run at once with exit 3 and the time to run again.",
        "- A run that stops (exit 1 or 3) or is killed keeps every checkpoint at or before "
        "the committed data; the next run resumes from there and the insert-only MERGE on "
        "`lw_id` makes re-read records harmless. The local engine's run lock is an `flock`, "
        "released by the kernel when a killed run dies, so no stale lock is left.",
        "- On Databricks the job has `max_concurrent_runs: 1`, and every write is an "
        "idempotent MERGE or append re-run on a Delta commit conflict.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="seeds data, faults and kill points")
    parser.add_argument("--quick", action="store_true", help="less data, fewer kills and trials")
    parser.add_argument("--days", type=int, help="days of the killed backfill (default 120)")
    parser.add_argument("--kills", type=int, help="SIGKILLs during the backfill (default 10)")
    parser.add_argument("--repeat", type=int, help="trials of each fault (default 2)")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help="where to write the table ('-': stdout only)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the warehouses and logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scale = Scale()
    if args.quick:
        scale = Scale(days=40, fault_days=15, activity_per_day=300, operation_per_day=60,
                      kills=3, incremental_kills=2, repeat=1, sequences=8,
                      steps=10)  # fmt: skip
    scale.days = args.days or scale.days
    scale.kills = args.kills or scale.kills
    scale.repeat = args.repeat or scale.repeat
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="zoom-ingest-soak-"))
    soak = Soak(args.seed, scale, workdir)
    print(f"soak in {workdir} (seed {args.seed})", flush=True)
    try:
        soak.faults()
        soak.bad_records()
        soak.kills()
        soak.concurrency()
        soak.settings()
        soak.model()
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    failed = [r.what for r in soak.rows if not r.passed]
    command = "python scripts/soak.py" + (f" --seed {args.seed}" if args.seed != 1 else "")
    command += " --quick" if args.quick else ""
    for flag, value in (("--days", args.days), ("--kills", args.kills), ("--repeat", args.repeat)):
        command += f" {flag} {value}" if value else ""
    text = markdown(
        soak.rows,
        {
            "command": command,
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seed": str(args.seed),
            "scale": (
                f"{scale.days}-day killed backfill, {scale.fault_days}-day fault runs, "
                f"{scale.activity_per_day}+{scale.operation_per_day} records/day, "
                f"{scale.kills}+{scale.incremental_kills} kills, "
                f"{scale.repeat} trial(s) per fault, "
                f"{scale.sequences} model sequences × {scale.steps} steps"
            ),
            "seconds": f"{time.monotonic() - began:.0f} s",
            "verdict": "all passed" if not failed else f"FAILED: {', '.join(failed)}",
        },
    )
    if args.out == "-":
        print(text)
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, "utf-8")
        print(f"wrote {args.out}")
    print("all passed" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
