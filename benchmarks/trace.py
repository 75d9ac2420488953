"""Where a backfill's API calls go missing: a timeline of one `zoom-ingest run`.

    python -m benchmarks.trace --shape pro      # 10 req/s, 32 uneven days
    python -m benchmarks.trace --shape large    # 40 req/s, 22 uneven days

The job runs in its own process, as in the benchmark, with a probe that records every
limiter slot, every HTTP call (which window, when it left, when it came back), every time
a fetch thread waited on the writer's queue, the writer's own work (normalise, merge) and
the phases of the run (start-up, fetching, the last merge, the runs row, maintenance).
The analysis splits the run's wall time into the time the limiter could have been full
and the time lost, per cause. Nothing here changes the job: the probe wraps methods in
the child process only.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoom_ingest.zoom.ratelimit import ARRIVAL_JITTER_ALLOWANCE

from .backfill import warm_up
from .harness import (
    QUICK_SHAPES,
    SHAPES,
    backfill_start,
    min_calls,
    run_python_process,
    simulator_env,
)

#: Installed in the child before the job starts; writes the timeline at exit.
_PROBE = r"""
import atexit, json, os, threading, time
_T0 = time.monotonic()
_events = {"acquire": [], "send": [], "put_wait": [], "handle": [], "flush": [], "phase": []}
def _phase(name):
    _events["phase"].append((name, time.monotonic() - _T0))
from zoom_ingest.zoom import ratelimit as _rl, client as _cl
from zoom_ingest import job as _job
_phase("imported")
_acq = _rl.RateLimiter.acquire
def acquire(self):
    t = time.monotonic()
    waited = _acq(self)
    _events["acquire"].append((t - _T0, time.monotonic() - _T0, waited))
    return waited
_rl.RateLimiter.acquire = acquire
_send = _cl.ZoomClient._send
def _send_probe(self, call, url, params, token):
    t = time.monotonic()
    try:
        return _send(self, call, url, params, token)
    finally:
        _events["send"].append((call.path, params.get("from"), bool(params.get("next_page_token")),
                                t - _T0, time.monotonic() - _T0, threading.get_ident()))
_cl.ZoomClient._send = _send_probe
_init = _job._Writer.__init__
def _init_probe(self, *a, **k):
    _init(self, *a, **k)
    q = self.fetcher.events
    put = q.put
    def put_probe(item, *pa, **pk):
        t = time.monotonic()
        put(item, *pa, **pk)
        d = time.monotonic() - t
        if d > 0.001:
            _events["put_wait"].append((t - _T0, d))
    q.put = put_probe
_job._Writer.__init__ = _init_probe
_handle = _job._Writer._handle
def _handle_probe(self, event, bar):
    t = time.monotonic()
    try:
        return _handle(self, event, bar)
    finally:
        _events["handle"].append((type(event).__name__, t - _T0, time.monotonic() - t))
_job._Writer._handle = _handle_probe
_flush = _job._Writer._flush
def _flush_probe(self, s):
    t = time.monotonic()
    try:
        return _flush(self, s)
    finally:
        _events["flush"].append((s.name, t - _T0, time.monotonic() - t))
_job._Writer._flush = _flush_probe
_wrun = _job._Writer.run
def _wrun_probe(self):
    _phase("fetch_start")
    try:
        return _wrun(self)
    finally:
        _phase("fetch_end")
_job._Writer.run = _wrun_probe
_maint = _job._maintain
def _maint_probe(engine):
    _phase("maintain_start")
    try:
        return _maint(engine)
    finally:
        _phase("maintain_end")
_job._maintain = _maint_probe
def _dump():
    _phase("exit")
    _events["cpu"] = time.process_time()
    with open(os.environ["ZOOM_INGEST_TRACE_FILE"], "w") as out:
        json.dump(_events, out)
atexit.register(_dump)
"""


def trace_run(
    shape: str, workdir: Path, *, concurrency: int | None = None, quick: bool = False
) -> dict[str, Any]:
    workload, rate = (QUICK_SHAPES if quick else SHAPES)[shape]
    trace_file = workdir / f"trace-{shape}.json"
    with workload.simulator(qps_limit=rate) as sim:
        warm_up(sim)
        env = {
            **simulator_env(sim),
            "ZOOM_INGEST_LOG_LEVEL": "WARNING",
            "ZOOM_INGEST_REQUESTS_PER_SECOND": str(rate),
            "ZOOM_INGEST_BACKFILL_START": backfill_start(sim),
            "ZOOM_INGEST_TRACE_FILE": str(trace_file),
        }
        if concurrency:
            env["ZOOM_INGEST_CONCURRENCY"] = str(concurrency)
        warehouse = workdir / f"trace-{shape}"
        process = run_python_process(
            _PROBE + "\nfrom zoom_ingest.cli import main; main()",
            workdir / f"trace-{shape}.log",
            args=["run", "--warehouse", str(warehouse), "--no-progress"],
            env=env,
        )
        needed = min_calls(sim)
        calls, limited = sim.stats.calls, sim.stats.rate_limited
    if process.exit_code != 0:
        raise RuntimeError(f"the job failed; see {process.log_path}")
    events = json.loads(trace_file.read_text())
    return analyse(events, rate, process.wall_seconds, process.cpu_seconds, needed, calls, limited)


def analyse(
    events: dict[str, Any],
    rate: float,
    wall: float,
    cpu: float,
    needed: int,
    calls: int,
    limited: int,
) -> dict[str, Any]:
    phases = dict(events["phase"])
    sends = sorted(events["send"], key=lambda s: s[3])
    first, last = sends[0][3], max(s[4] for s in sends)
    # In-flight chains over time: a window is active from its first call's start to its
    # last call's end.
    windows: dict[tuple[str, str], list[float]] = {}
    for path, day, _, start, end, _ in sends:
        span = windows.setdefault((path, day), [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    latency = sorted(s[4] - s[3] for s in sends)
    median = latency[len(latency) // 2]
    # Seconds in which fewer chains were active than the rate needs (rate × latency).
    need = rate * median
    step = 0.05
    t, short_time, short_calls = first, 0.0, 0
    ends = sorted(w[1] for w in windows.values())
    starts = sorted(w[0] for w in windows.values())
    import bisect

    send_starts = [s[3] for s in sends]
    while t < last:
        active = bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t)
        if active < need:
            short_time += step
            short_calls += bisect.bisect_right(send_starts, t + step) - bisect.bisect_right(
                send_starts, t
            )
        t += step
    tail_lost = short_time - short_calls / rate
    waits = events["put_wait"]
    handle_by_kind: dict[str, float] = {}
    for kind, _, d in events["handle"]:
        handle_by_kind[kind] = handle_by_kind.get(kind, 0.0) + d
    flush_total = sum(d for _, _, d in events["flush"])
    final_flush = sum(d for _, t0, d in events["flush"] if t0 >= last - 0.01)
    pacing = 1 / (1 + ARRIVAL_JITTER_ALLOWANCE)
    return {
        "rate": rate,
        "wall": wall,
        "cpu": cpu,
        "calls": calls,
        "min_calls": needed,
        "429s": limited,
        "of_ceiling": needed / rate / wall,
        "startup_to_first_call": first,
        "imports": phases.get("imported"),
        "fetching": last - first,
        "calls_per_s_while_fetching": len(sends) / (last - first),
        "after_last_call": wall - last,
        "maintain": phases.get("maintain_end", 0) - phases.get("maintain_start", 0),
        "median_latency": median,
        "chains_needed": need,
        "time_with_too_few_chains": short_time,
        "tail_lost_seconds": tail_lost,
        "queue_put_waits": len(waits),
        "queue_put_wait_seconds": sum(d for _, d in waits),
        "writer_handle_seconds": handle_by_kind,
        "flush_seconds": flush_total,
        "flushes": len(events["flush"]),
        "final_flush_seconds": final_flush,
        "pacing_lost_seconds": (last - first) * (1 - pacing),
        "windows": len(windows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trace")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="pro")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--quick", action="store_true", help="the small shapes")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="zoom-ingest-trace-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load before: {os.getloadavg()}")
    result = trace_run(args.shape, workdir, concurrency=args.concurrency, quick=args.quick)
    print(f"load after: {os.getloadavg()}")
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
