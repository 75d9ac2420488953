"""Kill and resume: SIGKILL `zoom-ingest run` at chosen points, resume it, and check
that every stop left the checkpoints at or before the committed data."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import ALL_TABLES

from .processes import Attempt, Runner
from .truth import Comparison, compare


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
