"""One command for every benchmark: `python -m benchmarks.run [--quick]`.

Runs, in order: the job's backfill at 10 and 40 requests/s (at least a million records
in the full run), the naive baseline, the job's peak memory at two backfill sizes and
two batch sizes, and an hourly incremental run on tables of growing size. Prints the
figures against the targets, saves results.json in the work folder, and (full run, or
`--docs`) writes docs/benchmarks.md and its plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from zoom_ingest.tables import UTC

from .backfill import measure_backfill
from .harness import QUICK_SHAPES, SHAPES, Workload
from .incremental import NEW_PER_HOUR, measure_incremental
from .naive import measure_naive
from .per_record import measure_per_record
from .report import console_table, markdown, plot

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


@dataclass(frozen=True)
class Plan:
    """What one benchmark run measures."""

    backfill: Workload  # the main backfill, at every rate
    rates: tuple[float, ...]
    memory: Workload  # a smaller backfill, to show memory does not grow with the size
    small_batch_rows: int  # …and a smaller batch, to show it follows the batch
    naive_rate: float
    naive_budget_seconds: float
    table_sizes: tuple[int, ...]
    new_per_hour: Mapping[str, int] = field(default_factory=lambda: dict(NEW_PER_HOUR))
    compaction: bool = True  # also time the compaction a later hourly run triggers
    #: Issue 14's account shapes (name → workload, rate), uneven days included.
    shapes: Mapping[str, tuple[Workload, float]] = field(default_factory=dict)
    per_record_records: int = 0  # 0: not measured


FULL = Plan(
    # 120 days × 8,400 records: just over a million.
    backfill=Workload(days=120, activity_per_day=7000, operation_per_day=1400),
    rates=(10.0, 40.0),
    memory=Workload(days=30, activity_per_day=7000, operation_per_day=1400),
    small_batch_rows=25_000,  # below the default batch_rows (100,000)
    naive_rate=10.0,
    naive_budget_seconds=90.0,
    table_sizes=(100_000, 1_000_000, 10_000_000),
    shapes=SHAPES,
    per_record_records=200_000,
)
QUICK = Plan(
    backfill=Workload(days=4, activity_per_day=3000, operation_per_day=600),
    rates=(10.0, 40.0),
    memory=Workload(days=2, activity_per_day=3000, operation_per_day=600),
    small_batch_rows=2_000,
    naive_rate=10.0,
    naive_budget_seconds=5.0,
    table_sizes=(10_000, 100_000, 300_000),
    shapes=QUICK_SHAPES,
    per_record_records=30_000,
)


def run_plan(plan: Plan, workdir: Path, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything in `plan`; the results as plain data (results.json)."""
    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "config": {
            "latency": plan.backfill.latency,
            "backfill_days": plan.backfill.days,
            "activity_per_day": plan.backfill.activity_per_day,
            "operation_per_day": plan.backfill.operation_per_day,
            "new_per_hour": dict(plan.new_per_hour),
        },
        "backfill": [],
        "memory": [],
        "incremental": [],
    }
    results["load_before"] = os.getloadavg()
    results["shapes"] = []
    for name, (workload, rate) in plan.shapes.items():
        say(f"{name} account: ~{workload.expected_records:,} records at {rate:g} req/s …")
        result = measure_backfill(workload, rate, workdir, shape=name)
        results["shapes"].append(result.as_dict())
        say(
            f"  {result.records:,} records in {result.wall_seconds:.1f} s, "
            f"{result.api_calls:,} calls (minimum {result.min_calls:,}): "
            f"{result.fraction_of_call_ceiling:.1%} of the ceiling, {result.rate_limited} 429s"
        )
    if plan.per_record_records:
        say(f"per-record cost on {plan.per_record_records:,} records …")
        results["per_record"] = measure_per_record(plan.per_record_records)
        say(f"  {results['per_record']['records_per_cpu_second']:,.0f} records per CPU-second")
    main_rate = max(plan.rates)
    for rate in plan.rates:
        say(f"backfill of ~{plan.backfill.expected_records:,} records at {rate:g} req/s …")
        result = measure_backfill(plan.backfill, rate, workdir)
        results["backfill"].append(result.as_dict())
        say(
            f"  {result.records:,} records in {result.wall_seconds:.1f} s: "
            f"{result.records_per_second:,.0f}/s, {result.fraction_of_ceiling:.1%} of ceiling"
        )
        if rate == main_rate:
            results["memory"].append(_memory_row(result.as_dict()))

    say(f"naive baseline at {plan.naive_rate:g} req/s for {plan.naive_budget_seconds:g} s …")
    naive = measure_naive(
        plan.backfill, plan.naive_rate, workdir, budget_seconds=plan.naive_budget_seconds
    )
    results["naive"] = {**naive.as_dict(), "requests_per_second": plan.naive_rate}
    say(f"  {naive.records:,} records, {naive.records_per_second:,.0f}/s")

    # The main backfill at the default batch is measured above; add a quarter of it at the
    # default batch, and both sizes at a small batch (which both streams fill at once).
    for workload, batch_rows in (
        (plan.memory, None),
        (plan.memory, plan.small_batch_rows),
        (plan.backfill, plan.small_batch_rows),
    ):
        say(f"memory: ~{workload.expected_records:,} records, batch_rows {batch_rows} …")
        result = measure_backfill(workload, main_rate, workdir, batch_rows=batch_rows)
        results["memory"].append(_memory_row(result.as_dict()))
        say(f"  peak RSS {result.peak_rss_bytes / 2**20:,.0f} MiB")

    for size in plan.table_sizes:
        say(f"incremental run on a table of {size:,} rows …")
        incremental = measure_incremental(
            size,
            workdir,
            latency=plan.backfill.latency,
            new_per_hour=plan.new_per_hour,
            compaction=plan.compaction,
        )
        results["incremental"].append(incremental.as_dict())
        say(
            f"  {incremental.wall_seconds:.2f} s, {incremental.api_calls} calls, "
            f"{incremental.files_scanned} files read"
        )
    results["duration_seconds"] = time.monotonic() - started
    results["load_after"] = os.getloadavg()
    return results


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = "?"
    try:
        with open("/proc/meminfo") as info:
            kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
        memory = f"{kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "deltalake": version("deltalake"),
        "pyarrow": version("pyarrow"),
    }


def _memory_row(backfill: dict[str, Any]) -> dict[str, Any]:
    keys = ("records", "batch_rows", "peak_rss_bytes", "requests_per_second")
    return {key: backfill[key] for key in keys}


def render(results: dict[str, Any], docs: Path) -> list[Path]:
    """docs/benchmarks.md and docs/benchmarks/*.png from the results."""
    plots = plot(results, docs / "benchmarks")
    page = docs / "benchmarks.md"
    page.write_text(markdown(results, plots, docs))
    return [page, *plots]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark zoom_ingest against the local Zoom simulator.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    parser.add_argument(
        "--workdir", type=Path, help="where warehouses and logs go (default: a temp folder)"
    )
    parser.add_argument(
        "--docs",
        dest="docs",
        action="store_true",
        default=None,
        help="write docs/benchmarks.md and plots (default: full runs only)",
    )
    parser.add_argument("--no-docs", dest="docs", action="store_false")
    parser.add_argument(
        "--render-only",
        type=Path,
        metavar="RESULTS_JSON",
        help="redraw the docs from a saved results.json; measure nothing",
    )
    return parser.parse_args(argv)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        results = json.loads(args.render_only.read_text())
        print(console_table(results))
        for path in render(results, DOCS):
            print(f"wrote {path}")
        return 0
    plan = QUICK if args.quick else FULL
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="zoom-ingest-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {workdir}")
    results = run_plan(plan, workdir)
    results["command"] = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(console_table(results))
    print(f"\nresults: {workdir / 'results.json'}")
    if args.docs if args.docs is not None else not args.quick:
        for path in render(results, DOCS):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
