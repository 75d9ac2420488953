"""A process that takes a Zoom account's lease and tells what happened, one JSON line each.

tests/test_lease.py starts it as a second (third, …) process beside a run, on any engine:

    python tests/support/lease_holder.py --engine local|spark|connect --location DIR
        --account ACCOUNT --run-id RUN [--seconds 300 --renew 60] [--start-at EPOCH]
        [--once]

It prints `{"event": "acquired"}` or `{"event": "busy", "holder": RUN}`; with `--once`
it then exits (0 acquired, 4 busy). Otherwise it holds the lease, renewed by the
heartbeat, until its standard input closes, then releases it (`released`). If a
renewal finds the lease taken it prints `lost`. `--start-at` lines several processes up
to try at the same instant. `--engine connect` reads the Spark Connect URL from
`SPARK_REMOTE`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from zoom_ingest.engines.base import AccountBusy, Engine
from zoom_ingest.engines.lease import AccountLease, account_lease


def say(event: str, **details: Any) -> None:
    print(json.dumps({"event": event, **details}), flush=True)


def make_engine(kind: str, location: Path) -> Engine:
    if kind == "local":
        from zoom_ingest.engines.local import LocalEngine

        return LocalEngine(location)
    from zoom_ingest.engines.spark import SparkEngine
    from zoom_ingest.engines.spark_session import local_session

    if kind == "spark":
        return SparkEngine(local_session(), warehouse=location)
    from pyspark.sql import SparkSession

    return SparkEngine(SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate(),
                       warehouse=location)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("local", "spark", "connect"), required=True)
    parser.add_argument("--location", type=Path, required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--renew", type=float, default=60.0)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args()

    engine = make_engine(args.engine, args.location)
    say("ready")
    while time.time() < args.start_at:
        time.sleep(0.001)
    if args.once:
        lease = AccountLease(
            engine, args.account, args.run_id, seconds=args.seconds, renew_every=args.renew
        )
        other = lease.try_acquire()
        if other is None:
            say("acquired")
            return 0
        say("busy", holder=other.run_id)
        return 4
    try:
        with account_lease(
            engine,
            args.account,
            args.run_id,
            seconds=args.seconds,
            renew_every=args.renew,
            on_lost=lambda why: say("lost", why=why),
        ):
            say("acquired")
            sys.stdin.read()  # hold until the test closes our input
    except AccountBusy as exc:
        say("busy", why=str(exc))
        return 4
    say("released")
    return 0


if __name__ == "__main__":
    sys.exit(main())
