"""`python -m zoom_ingest.simulator`: a local Zoom API in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .server import Simulator, serve


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m zoom_ingest.simulator",
        description="Serve a simulated Zoom API (S2S OAuth + report endpoints) on 127.0.0.1 "
        "and print the ZOOM_* settings that point zoom-ingest at it.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--seed", type=int, default=7, help="data seed (default: 7)")
    parser.add_argument("--days", type=float, default=30, help="days of data up to now")
    parser.add_argument("--activity-per-day", type=float, default=200, help="sign-in records/day")
    parser.add_argument("--operation-per-day", type=float, default=40, help="operations/day")
    parser.add_argument("--qps-limit", type=float, default=None, help="requests/s (default: none)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each call")
    parser.add_argument(
        "--day-spread",
        type=float,
        default=0.0,
        help="uneven days: 0 (default) every day alike; e.g. 0.5 for quiet weekends and "
        "a seeded spread between days",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sim = Simulator(
        seed=args.seed,
        days=args.days,
        activity_per_day=args.activity_per_day,
        operation_per_day=args.operation_per_day,
        qps_limit=args.qps_limit,
        latency=args.latency,
        port=args.port,
        day_spread=args.day_spread,
    )
    serve(sim)


if __name__ == "__main__":
    main()
