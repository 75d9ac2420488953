"""The fetch threads' CPU per Zoom API call: `fetch_pages` → `ZoomClient.get` → JSON.

    python -m benchmarks.fetch_call [--base REV] [--rounds 2] [--profile] [--pieces]

A simulated account (the large account's 300-record, ~50 kB pages) is served by this
process; the calls are made by a child process, so the simulator's CPU is not counted.
The child pages through every date window of both streams with `fetch_pages`, first on
one thread, then on 12 threads (the job's concurrency at 40 requests/s), and prints the
CPU of its calling threads (`time.thread_time()`, summed) over the API calls made: the
CPU each call costs, request to decoded page, as the job's fetch threads spend it.

`--base REV` runs the same child with a git revision's `src/` too (as
`benchmarks.versus` does), alternating with this tree's in each round, so one run shows
both figures on the same machine and their ratio. `--profile` prints a cProfile of the
single-threaded calls (this tree only), grouped by library; `--pieces` times the layers
under one call on their own (http.client, urllib3, requests, orjson, tenacity).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backfill import warm_up
from .harness import Workload, simulator_env
from .versus import REPO_ROOT, extract_src, imported_from, resolve_revision

#: The large account's pages (50,000 sign-ins and 4,000 operations a day, 300 a page),
#: fewer records a day and more days so that 12 threads each have a window to page.
WORKLOAD = Workload(days=12, activity_per_day=15_000, operation_per_day=1_500, latency=0.02)
#: Calls are paced well above Zoom's 40/s: the limiter's sleep is no CPU, and the run
#: should not take minutes.
REQUESTS_PER_SECOND = 150.0
THREAD_COUNTS = (1, 12)
#: The single-threaded pass stops after this many calls (a few hundred is enough).
SINGLE_THREAD_CALLS = 300

_CHILD = "from benchmarks.fetch_call import child_main; child_main()"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="also measure this git revision's src/")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="cProfile one thread's calls")
    parser.add_argument("--pieces", action="store_true", help="time each layer of a call")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as temp:
        sides = {"current": REPO_ROOT / "src"}
        if args.base:
            commit = resolve_revision(args.base)
            if commit is None:
                raise SystemExit(f"git does not know the revision {args.base!r}")
            sides = {"base": extract_src(commit, Path(temp) / "base"), **sides}
        for name, src in sides.items():
            if not imported_from(src).is_relative_to(src.resolve()):
                raise SystemExit(f"the {name} child would not import the code in {src}")
        with WORKLOAD.simulator(qps_limit=None) as sim:
            warm_up(sim)
            env = {**os.environ, **simulator_env(sim)}
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
            for round_number in range(args.rounds):
                order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
                for name in order:
                    result = _run_child(env, sides[name], {"mode": "calls"})
                    results[name].append(result)
                    print(name, _format(result), flush=True)
            if args.profile:
                print(_run_child(env, sides["current"], {"mode": "profile"})["text"])
            if args.pieces:
                print(_run_child(env, sides["current"], {"mode": "pieces"})["text"])
    summary = {name: _best(runs) for name, runs in results.items() if runs}
    for name, figures in summary.items():
        print(f"{name:8s} best of {args.rounds}: {_format(figures)}")
    if "base" in summary:
        for threads in THREAD_COUNTS:
            key = f"ms_per_call_{threads}"
            print(
                f"{threads:2d} threads: current/base CPU per call "
                f"{summary['current'][key] / summary['base'][key]:.2f}"
            )


def _run_child(env: dict[str, str], src: Path, request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(request)],
        env={**env, "PYTHONPATH": f"{src}{os.pathsep}{REPO_ROOT}"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the measuring child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The least CPU per call of each thread count: noise on a shared machine only adds."""
    return {
        key: min(run[key] for run in runs) for key in runs[0] if key.startswith("ms_per_call")
    } | {key: runs[0][key] for key in runs[0] if key.startswith("calls")}


def _format(figures: dict[str, Any]) -> str:
    return "  ".join(
        f"{threads} thread(s): {figures[f'ms_per_call_{threads}']:.3f} ms CPU/call "
        f"({figures[f'calls_{threads}']} calls)"
        for threads in THREAD_COUNTS
    )


# ---- the child: imports the side's zoom_ingest, talks to the parent's simulator -------


def child_main() -> None:
    request = json.loads(sys.argv[1])
    mode = request["mode"]
    if mode == "calls":
        result: dict[str, Any] = {}
        for threads in THREAD_COUNTS:
            limit = SINGLE_THREAD_CALLS if threads == 1 else None
            cpu, calls = _measure_calls(threads, limit)
            result[f"ms_per_call_{threads}"] = cpu / calls * 1000
            result[f"calls_{threads}"] = calls
    elif mode == "profile":
        result = {"text": _profile_calls()}
    else:
        result = {"text": _time_pieces()}
    print(json.dumps(result))


def _client(threads: int) -> Any:
    from zoom_ingest.setting_values import Secret
    from zoom_ingest.settings import Settings
    from zoom_ingest.zoom.client import ZoomClient
    from zoom_ingest.zoom.config import ZoomClientConfig
    from zoom_ingest.zoom.ratelimit import RateLimiter

    env = os.environ
    # Every field spelled out, the rest at the run's defaults (Settings'), so that the
    # same code builds the client of an older revision (`--base`) too.
    config = ZoomClientConfig(
        account_id=env["ZOOM_ACCOUNT_ID"],
        client_id=env["ZOOM_CLIENT_ID"],
        client_secret=Secret(env["ZOOM_CLIENT_SECRET"]),
        api_url=env["ZOOM_API_URL"],
        oauth_url=env["ZOOM_OAUTH_URL"],
        timeout=Settings.timeout,
        max_retries=Settings.max_retries,
        requests_per_second=REQUESTS_PER_SECOND,
        connections=threads,
        request_deadline=Settings.request_deadline,
        max_response_bytes=Settings.max_response_bytes,
    )
    client = ZoomClient(config, limiter=RateLimiter(REQUESTS_PER_SECOND))
    client.connect()
    return client


def _windows() -> list[tuple[str, Any]]:
    """Every (stream, one-day window) of the simulated history, longest chains first."""
    from dataclasses import dataclass
    from datetime import date, datetime, timedelta

    from zoom_ingest.tables import UTC

    @dataclass(frozen=True)
    class DayWindow:
        from_date: date
        to_date: date
        stop_before: datetime | None = None

    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in range(int(WORKLOAD.days) + 1)]
    return [
        (stream, DayWindow(day, day))
        for stream in ("activity_logs", "operation_logs")
        for day in days
    ]


def _measure_calls(threads: int, limit: int | None, profiler: Any = None) -> tuple[float, int]:
    """Page every window on `threads` threads (one window at a time each); the threads'
    summed CPU seconds and the API calls they made. `profiler` (a cProfile.Profile, one
    thread only) profiles the calls."""
    import queue
    import threading
    import time

    from zoom_ingest.settings import Settings
    from zoom_ingest.zoom.client import CallCounters
    from zoom_ingest.zoom.streams import STREAMS_BY_NAME, fetch_pages

    client = _client(threads)
    counters = CallCounters()
    work: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    for item in _windows():
        work.put(item)
    spent: list[float] = []
    lock = threading.Lock()

    def fetch() -> None:
        started = time.thread_time()
        if profiler is not None:
            profiler.enable()
        try:
            while True:
                try:
                    name, window = work.get_nowait()
                except queue.Empty:
                    return
                for _page in fetch_pages(
                    client,
                    STREAMS_BY_NAME[name],
                    window,
                    "all",
                    counters,
                    max_pages=Settings.max_pages_per_window,
                ):
                    if limit is not None and counters.api_calls >= limit:
                        return
        finally:
            if profiler is not None:
                profiler.disable()
            with lock:
                spent.append(time.thread_time() - started)

    workers = [threading.Thread(target=fetch) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    client.close()
    return sum(spent), counters.api_calls


def _profile_calls() -> str:
    import cProfile
    import io
    import pstats
    import time

    # The thread's CPU clock, not wall time: a call mostly waits in recv for the server.
    profiler = cProfile.Profile(time.thread_time)
    cpu, calls = _measure_calls(1, SINGLE_THREAD_CALLS, profiler)
    stats = pstats.Stats(profiler)
    groups: dict[str, float] = {}
    entries: dict[Any, Any] = getattr(stats, "stats")  # noqa: B009 (pstats does not type it)
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        groups[_library(filename)] = groups.get(_library(filename), 0.0) + tottime
    total = sum(groups.values())
    out = io.StringIO()
    out.write(f"profiled: {calls} calls, {cpu / calls * 1000:.3f} ms CPU/call with cProfile on\n")
    out.write("own time by library (share of the profiled time):\n")
    for name, seconds in sorted(groups.items(), key=lambda item: -item[1]):
        out.write(f"  {name:28s} {seconds / total:6.1%}  {seconds / calls * 1000:.3f} ms/call\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(35)
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
    return out.getvalue()


def _library(filename: str) -> str:
    for name in (
        "requests",
        "urllib3",
        "tenacity",
        "zoom_ingest",
        "http/client",
        "email",
        "socket",
        "ssl",
        "json",
        "threading",
        "queue",
        "urllib/parse",
    ):
        if f"/{name}/" in filename or f"/{name}.py" in filename:
            return name
    if filename.startswith("~") or filename == "<built-in>":
        return "builtins (C: orjson, socket recv, …)"
    return "other: " + Path(filename).name


def _time_pieces() -> str:
    """Each layer's CPU for the same page, one after the other on one thread."""
    import http.client
    import time
    from urllib.parse import urlencode, urlsplit

    import orjson
    import requests
    import urllib3
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

    client = _client(1)
    token = client.tokens.token()
    api = urlsplit(os.environ["ZOOM_API_URL"])
    day = _windows()[1][1].from_date.isoformat()
    query = urlencode({"from": day, "to": day, "page_size": 300})
    path = f"{api.path}/report/activities?{query}"
    url = f"{api.scheme}://{api.netloc}{path}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    rounds = 200
    lines = []

    def timed(label: str, call: Any) -> Any:
        call()  # connect, warm caches
        started = time.thread_time()
        for _ in range(rounds):
            value = call()
        lines.append(f"  {label:52s} {(time.thread_time() - started) / rounds * 1000:.3f} ms")
        return value

    connection = http.client.HTTPConnection(api.hostname, api.port)

    def raw() -> bytes:
        connection.request("GET", path, headers=headers)
        return connection.getresponse().read()

    body = timed("http.client GET + read", raw)
    pool = urllib3.HTTPConnectionPool(api.hostname, api.port, maxsize=1)
    timed(
        "urllib3 pool.request (preload_content)",
        lambda: pool.request("GET", path, headers=headers, retries=False).data,
    )
    session = requests.Session()
    timed("requests Session.get (trust_env on)", lambda: session.get(url, headers=headers).content)
    session.trust_env = False
    timed("requests Session.get (trust_env off)", lambda: session.get(url, headers=headers).content)
    own_session = client._session  # the client's own, set up as the job's
    own = own_session.get_adapter(url)
    if hasattr(own, "get"):  # this tree's transport (a base revision may lack it)
        timed(
            "EnvironmentAdapter.get (the client's GET)",
            lambda: own.get(own_session, url, {}, headers, 30.0).content,
        )
    from zoom_ingest.zoom.client import CallCounters

    counters = CallCounters()
    params = {"from": day, "to": day, "page_size": 300}
    timed("ZoomClient.get (whole call)", lambda: client.get("/report/activities", params, counters))
    timed("orjson.loads of the page", lambda: orjson.loads(body))
    timed(
        "tenacity Retrying(...) built and run once",
        lambda: Retrying(
            stop=stop_after_attempt(9), retry=retry_if_exception_type(ValueError), reraise=True
        )(lambda: None),
    )
    timed("client.limiter.acquire()", client.limiter.acquire)
    from zoom_ingest.zoom.streams import _time_span

    records = orjson.loads(body)["activity_logs"]
    timed("streams._time_span of the page", lambda: _time_span(records, "time"))
    client.close()
    return f"one page ({len(body)} bytes), {rounds} rounds each:\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
