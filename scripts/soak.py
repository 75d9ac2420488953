#!/usr/bin/env python3
"""Soak test: the `zoom-ingest` command against the Zoom simulator, under every fault and
bad input we know of, SIGKILLed again and again, and raced by a second run.

    make soak                                               # the full soak; writes docs/faults.md
    PYTHONPATH=tests .venv/bin/python scripts/soak.py --quick --out -  # smaller, stdout only

This runner parses the options and writes the report; the harness itself is the tests'
support package, `tests/support/soak` (hence `PYTHONPATH=tests`). The table in
docs/faults.md is this script's output, not typed by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from support.soak import QUICK_SCALE, Scale, Soak, markdown
from zoom_ingest.tables import UTC

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "faults.md"


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
    scale = dataclasses.replace(QUICK_SCALE) if args.quick else Scale()
    scale.days = args.days or scale.days
    scale.kills = args.kills or scale.kills
    scale.repeat = args.repeat or scale.repeat
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="zoom-ingest-soak-"))
    soak = Soak(args.seed, scale, workdir)
    print(f"soak in {workdir} (seed {args.seed})", flush=True)
    try:
        soak.run_all()
    finally:
        if not args.keep:
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
