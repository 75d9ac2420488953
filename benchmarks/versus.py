"""The whole job process's records per CPU-second, this tree's code against a git revision's.

    python -m benchmarks.versus --base 9da601c [--days 4] [--rounds 2]
    python -m benchmarks.versus --base bb23b27 --shape pro-kolkata [--rounds 2]

Issue 14's per-record baseline is a whole-process figure (the `zoom-ingest run` process's
CPU for a backfill at 40 requests/s), so the comparison is one too: the revision's `src/`
is extracted into a temporary folder (`git archive`), and the same backfill (the large
account's shape, fewer days) runs as a child process with PYTHONPATH at that copy, then
at this tree's `src/` (working tree, uncommitted changes included), alternating, each
round in the other order. PYTHONPATH comes before the venv's editable install, so each
child imports the code it was given; the benchmark checks that before it starts. The
simulator runs in this process with this tree's code, so both children face the same
Zoom. Prints each run, each side's records per CPU-second (all its records over all its
CPU seconds), its peak RSS (the largest of its runs) and the ratio. `--shape` runs one of
`harness.SHAPES` at its rate instead (issue 22: uneven days read in a zone other than
UTC), and each run also says its fraction of the ceiling (`harness.min_calls`) and 429s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backfill import BackfillResult, measure_backfill
from .harness import LARGE, SHAPES, Workload

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Main before issue 14's per-record work.
DEFAULT_BASE = "9da601c"
#: The large Business+ account of issue 14 (50,000 sign-ins and 4,000 operations a day,
#: 300 ms a call), 4 days rather than 22: about 216,000 records, 20 s a run at 40/s.
VERSUS = Workload(
    days=4,
    activity_per_day=LARGE.activity_per_day,
    operation_per_day=LARGE.operation_per_day,
    latency=LARGE.latency,
)
REQUESTS_PER_SECOND = 40.0


def resolve_revision(revision: str, repo: Path = REPO_ROOT) -> str | None:
    """The full commit id of `revision` in `repo`, or None when git does not know it
    (a shallow clone, or no git at all)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def extract_src(commit: str, destination: Path, repo: Path = REPO_ROOT) -> Path:
    """`src/` as it was at `commit`, written under `destination`; its path."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination / "src"


def imported_from(src: Path) -> Path:
    """Where a child process with PYTHONPATH=`src` imports zoom_ingest from."""
    done = subprocess.run(
        [sys.executable, "-c", "import zoom_ingest; print(zoom_ingest.__file__)"],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip()).resolve()


def measure_versus(
    base: str,
    workdir: Path,
    *,
    workload: Workload = VERSUS,
    requests_per_second: float = REQUESTS_PER_SECOND,
    rounds: int = 2,
) -> dict[str, Any]:
    """`rounds` backfills by each side, alternating; both sides' figures and the ratio."""
    commit = resolve_revision(base)
    if commit is None:
        raise ValueError(f"git does not know the revision {base!r}")
    sides = {"base": extract_src(commit, workdir / "base"), "current": REPO_ROOT / "src"}
    for name, src in sides.items():
        module = imported_from(src)
        if not module.is_relative_to(src.resolve()):
            raise RuntimeError(f"the {name} child imports {module}, not the code in {src}")
    runs: dict[str, list[BackfillResult]] = {name: [] for name in sides}
    for round_number in range(rounds):
        # Each round in the other order, so neither side always runs on a warmer machine.
        order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(
                measure_backfill(
                    workload,
                    requests_per_second,
                    workdir / f"{name}-{round_number}",
                    extra_env={"PYTHONPATH": str(sides[name])},
                )
            )
    figures = {name: _side(results) for name, results in runs.items()}
    figures["base"]["revision"] = commit
    return {
        "workload": {
            "days": workload.days,
            "activity_per_day": workload.activity_per_day,
            "operation_per_day": workload.operation_per_day,
            "latency": workload.latency,
            "day_spread": workload.day_spread,
            "utc_offset_hours": workload.utc_offset_hours,
            "requests_per_second": requests_per_second,
        },
        "rounds": rounds,
        **figures,
        "ratio": figures["current"]["records_per_cpu_second"]
        / figures["base"]["records_per_cpu_second"],
    }


def _side(results: list[BackfillResult]) -> dict[str, Any]:
    records = sum(r.records for r in results)
    cpu = sum(r.cpu_seconds for r in results)
    return {
        "records_per_cpu_second": records / cpu,
        "peak_rss_bytes": max(r.peak_rss_bytes for r in results),
        "runs": [
            {
                "records": r.records,
                "cpu_seconds": r.cpu_seconds,
                "wall_seconds": r.wall_seconds,
                "records_per_cpu_second": r.records_per_cpu_second,
                "cores": r.cpu_seconds / r.wall_seconds,
                "peak_rss_bytes": r.peak_rss_bytes,
                "api_calls": r.api_calls,
                "min_calls": r.min_calls,
                "fraction_of_call_ceiling": r.fraction_of_call_ceiling,
                "rate_limited": r.rate_limited,
            }
            for r in results
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.versus")
    parser.add_argument("--base", default=DEFAULT_BASE, help="git revision to compare with")
    parser.add_argument("--days", type=float, default=VERSUS.days)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), help="an account shape at its rate (not --days)"
    )
    args = parser.parse_args(argv)
    workload = Workload(
        days=args.days,
        activity_per_day=VERSUS.activity_per_day,
        operation_per_day=VERSUS.operation_per_day,
        latency=VERSUS.latency,
    )
    rate = REQUESTS_PER_SECOND
    if args.shape:
        workload, rate = SHAPES[args.shape]
    with tempfile.TemporaryDirectory(prefix="zoom-ingest-versus-") as folder:
        result = measure_versus(
            args.base,
            Path(folder),
            workload=workload,
            requests_per_second=rate,
            rounds=args.rounds,
        )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
