"""One run: plan → fetch → normalise → merge → checkpoint → report.

Threads: a pool of fetch workers pages the windows of both streams concurrently under
the account's one rate limiter and hands raw pages to this module's writer loop (the
calling thread) through a bounded queue, so memory is bounded by `batch_rows` and the
queue, not by the size of the backfill. Only the writer touches the engine.

Correctness: a window counts as committed only after a merge that contained all of its
pages has succeeded; the cursor then moves across contiguous committed windows, oldest
first (plan.py). A crash at any point leaves the cursor at or before the committed data,
and the insert-only merge on lw_id makes the re-read harmless.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as clock_time

import pyarrow as pa
import pyarrow.compute as pc

from . import exit_codes
from .engines import rules
from .engines.base import AccountBusy, Engine
from .engines.lease import account_lease, free_leases_of_gone_runs
from .geo import RunAddresses, ip_country_rows
from .masking import mask, one_line
from .normalise import Batch, Reject
from .plan import Plan, Window, plan_stream
from .progress import Progress
from .settings import Settings
from .tables import ACTIVITY_LOGS, IP_COUNTRIES, REJECTS, RUNS, UTC, format_time, reject_id
from .zoom import (
    STREAMS_BY_NAME,
    CallCounters,
    DailyLimitReached,
    Stream,
    ZoomAuthError,
    ZoomClient,
    ZoomError,
    ZoomUnreachable,
    fetch_pages,
)
from .zoom.errors import IncompleteAnswer
from .zoom.rules import PAGE_SIZE
from .zoom.streams import Page

log = logging.getLogger("zoom_ingest.job")

# The run's outcomes, from the one module that declares every entry point's exit codes.
EXIT_OK = exit_codes.OK
EXIT_STREAM_FAILED = exit_codes.STREAM_FAILED
EXIT_DAILY_LIMIT = exit_codes.DAILY_LIMIT
EXIT_ZOOM_UNREACHABLE = exit_codes.ZOOM_UNREACHABLE
EXIT_INCOMPLETE = exit_codes.INCOMPLETE
EXIT_BUSY = exit_codes.BUSY
#: Flush (and checkpoint) at least this often even when the batch is not full, so a
#: long backfill that is interrupted loses little progress.
FLUSH_EVERY_SECONDS = 30.0
#: …and more often once every window is open and little work is left, so that the merge
#: after the last page (which the run waits for) is a small one.
END_GAME_FLUSH_SECONDS = 3.0
END_GAME_SECONDS = 20.0
#: A chain whose last page is older than this goes first, whatever its length: Zoom's
#: page tokens expire after 15 minutes, and a short chain must not starve that long.
STALE_CHAIN_SECONDS = 300.0
#: Chains in flight beyond rate × latency (Little's law), for the time a page spends in
#: the client (parsing, handing over) and for latency that varies.
IN_FLIGHT_SLACK = 1.3
#: Windows open (oldest first) while the open chains hold fewer calls than the rate
#: limit makes in this time: enough that no long chain opens so late that it pages alone
#: at the end while the limiter idles. No wider: every batch spans the open windows'
#: days, and a MERGE reads the files its time range overlaps.
OPEN_HORIZON_SECONDS = 120.0
#: The open windows lie within this many windows per fetch thread of the oldest open
#: one, in plan order. Memory: a batch holds records of every open window, and every
#: file a MERGE writes spans the batch's time range; a MERGE reads every file that
#: overlaps its own range. With the whole backfill open at once (first pages of a day
#: underestimate it, so the horizon in calls let every window open) every file spanned
#: the whole backfill, no MERGE could skip one, and its memory grew with the table.
#: Kept within a span of windows, the files a MERGE reads are those of the last few
#: batches, whatever the backfill's size. A window that lags holds the span (no newer
#: window opens) until it is paged: the others run out and leave it the first in line.
OPEN_WINDOWS_PER_FETCH_THREAD = 2
#: …but never fewer windows than this. At a low rate there are few fetch threads, and a
#: span of 2 per thread (16 windows at 10 requests/s) is too short for uneven days: the
#: long day holding the span pages alone while nothing newer may open (issue 14's Pro
#: shape: 0.80 of the ceiling at 16, 0.94 at 48, 0.96 at 64; the large shape, 52 at
#: 40 requests/s, is unchanged). A low rate fills its batches slowly, so the wider span
#: costs little memory.
MIN_OPEN_WINDOWS = 48


def open_span(concurrency: int) -> int:
    """How many windows, in plan order from the oldest open one, may be open at once."""
    return max(OPEN_WINDOWS_PER_FETCH_THREAD * concurrency, MIN_OPEN_WINDOWS)


@dataclass
class StreamRun:
    """The state and the tallies of one stream during a run."""

    stream: Stream
    plan: Plan
    counters: CallCounters = field(default_factory=CallCounters)
    batch: Batch = field(init=False)
    done_in_batch: set[int] = field(default_factory=set)
    committed: set[int] = field(default_factory=set)
    windows_finished: int = 0
    fetched: int = 0
    inserted: int = 0
    rejected: int = 0
    #: Records fetched from before the backfill's floor (Zoom's whole days overlap it),
    #: dropped rather than stored: shown in the summary, so fetched − inserted adds up.
    before_floor: int = 0
    cursor: datetime | None = None
    error: str | None = None
    #: The window whose pages could not prove it complete, and why (`from..to: reason`).
    failed_window: str | None = None
    aborted: bool = False
    #: Another run held the account's lease: nothing was fetched.
    busy: bool = False
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    #: When this stream's batch was last handed to the committer (`_Writer._flush`).
    last_flush: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.batch = Batch(self.stream.spec)
        self.cursor = self.plan.cursor_before

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def status(self) -> str:
        if self.busy:
            return "busy"
        if self.failed_window:
            return "incomplete"
        if self.error:
            return "failed"
        if len(self.committed) < len(self.plan.windows):
            return "stopped"
        return "succeeded"


@dataclass
class RunSummary:
    run_id: str
    account_id: str
    engine: str
    streams: list[StreamRun]
    started_at: datetime
    duration: float
    daily_limit_retry_at: datetime | None = None
    interrupted: bool = False
    #: Zoom could not be reached when the run started: one line, the URL and the cause.
    unreachable: str | None = None
    #: Another run held the account's lease (zoom_ingest_leases): who, and until when.
    busy: str | None = None
    #: The configured limit (requests/s for the Zoom account)…
    rate_limit: float = 0.0
    #: …and what the run achieved: every stream's API calls over the seconds from the
    #: first call to the last page (None when the run made no call).
    calls_per_second: float | None = None

    @property
    def api_calls(self) -> int:
        return sum(s.counters.api_calls for s in self.streams)

    @property
    def exit_code(self) -> int:
        if self.busy is not None:
            return EXIT_BUSY
        if self.unreachable is not None:
            return EXIT_ZOOM_UNREACHABLE
        if any(s.status == "failed" for s in self.streams):
            return EXIT_STREAM_FAILED
        if any(s.status == "incomplete" for s in self.streams):
            return EXIT_INCOMPLETE
        if self.daily_limit_retry_at is not None:
            return EXIT_DAILY_LIMIT
        if any(s.status != "succeeded" for s in self.streams):
            return EXIT_STREAM_FAILED
        return EXIT_OK

    def lines(self) -> list[str]:
        out = [f"run {self.run_id} on {self.engine}: {self.duration:.1f} s"]
        if self.unreachable is not None:
            out.append(f"  {self.unreachable}")
        if self.busy is not None:
            out.append(f"  busy: {self.busy}")
        if self.calls_per_second is not None and self.rate_limit:
            out.append(
                f"  API calls {self.api_calls:,} at {self.calls_per_second:.2f}/s of the "
                f"{self.rate_limit:g}/s limit ({self.calls_per_second / self.rate_limit:.0%})"
            )
        for s in self.streams:
            c = s.counters
            cursor = format_time(s.cursor) if s.cursor else "none"
            out.append(
                f"  {s.name:<15} {s.plan.mode:<11} {s.status:<9} "
                f"windows {len(s.committed)}/{len(s.plan.windows)}  "
                f"fetched {s.fetched:,}  inserted {s.inserted:,}  rejected {s.rejected:,}  "
                f"calls {c.api_calls:,}  retries {c.retries:,}  429s {c.rate_limited:,}  "
                f"cursor {cursor}"
            )
            if s.before_floor:
                out.append(f"    {s.before_floor:,} fetched records before the start not stored")
            if s.error and s.error not in (self.unreachable, self.busy):
                out.append(f"    error: {s.error}")
        if self.daily_limit_retry_at is not None:
            out.append(
                "  stopped at Zoom's daily rate limit; checkpoints kept. Run again after "
                f"{format_time(self.daily_limit_retry_at)}."
            )
        if self.interrupted:
            out.append("  interrupted; checkpoints kept at the committed data.")
        return [mask(line) for line in out]


# --- what the fetch threads tell the writer, and what the writer hands the committer ---


@dataclass(frozen=True)
class _Records:
    """A page of a window's records and its records outside the window (not both empty)."""

    stream: str
    index: int  # the window's place in its stream's plan
    records: list[object]
    strays: tuple[Reject, ...] = ()


@dataclass(frozen=True)
class _WindowDone:
    """The window's last page is in: it can be committed with the batch that holds it."""

    stream: str
    index: int


@dataclass(frozen=True)
class _WindowCancelled:
    """The run is stopping (or the stream failed): the window was not fetched to its end."""

    stream: str
    index: int


@dataclass(frozen=True)
class _WindowFailed:
    """The window's fetch raised `error`; its stream stops there."""

    stream: str
    index: int
    error: BaseException


#: A fetch thread's event. Each window ends with exactly one of the last three.
_Event = _Records | _WindowDone | _WindowCancelled | _WindowFailed


@dataclass(frozen=True)
class _Commit:
    """One flushed batch of a stream (its rows as Arrow, sorted by time, and its rejects),
    and the windows it completes."""

    s: StreamRun
    table: pa.Table
    rejects: list[Reject]
    done: set[int]


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run(
    settings: Settings,
    engine: Engine,
    *,
    progress: bool | None = None,
    client: ZoomClient | None = None,
    now: datetime | None = None,
    lease_engine: Engine | None = None,
) -> RunSummary:
    """One whole run for one Zoom account. Raises EngineBusy if another run holds the
    destination; every other failure is reported in the summary and the runs table.

    The run calls Zoom only while it holds the account's lease (engines/lease.py), kept
    in `lease_engine`'s zoom_ingest_leases (default: the destination's). When another
    run holds it beyond `settings.lease_wait`, the run ends busy (exit 4) with a runs
    row per stream saying who held it."""
    now = now or datetime.now(UTC)
    run_id = new_run_id(now)
    with engine.run_lock():
        engine.ensure_tables()
        checkpoints = engine.read_checkpoints(settings.account_id)
        runs = [
            StreamRun(
                STREAMS_BY_NAME[name],
                plan_stream(settings, name, checkpoints.get(name), now),
            )
            for name in settings.streams
        ]
        for s in runs:
            p = s.plan
            log.info(
                "%s: %s from %s, %d windows (%s … %s)",
                s.name,
                p.mode,
                format_time(p.start),
                len(p.windows),
                p.windows[0].from_date if p.windows else "-",
                p.windows[-1].to_date if p.windows else "-",
            )
        own_client = client is None
        client = client or ZoomClient(settings.zoom_client_config())
        writer = _Writer(settings, engine, run_id, runs, client, progress)
        unreachable: str | None = None
        busy: str | None = None
        lost: list[str] = []

        def summary() -> RunSummary:
            return RunSummary(
                run_id=run_id,
                account_id=settings.account_id,
                engine=engine.describe(),
                streams=runs,
                started_at=now,
                duration=(datetime.now(UTC) - now).total_seconds(),
                daily_limit_retry_at=writer.daily_limit_retry_at,
                interrupted=writer.interrupted,
                unreachable=unreachable,
                busy=busy,
                rate_limit=settings.requests_per_second,
                calls_per_second=writer.calls_per_second(),
            )

        def lease_lost(why: str) -> None:
            # Called from the lease's heartbeat thread: another run calls Zoom for the
            # account now, so this one stops fetching and commits what it has.
            lost.append(why)
            writer.stop.set()

        # Visible from its start: the run's rows say `running` until its end replaces
        # them; a `running` row of a run that cannot be running any more says so.
        gone = _abandon_runs(engine, settings.account_id, run_id, now)
        if gone and engine.exclusive_runs and lease_engine is None:
            # Those runs held this folder's lock, so they are gone for sure: the lease
            # they kept beside the tables need not block the account until it expires.
            free_leases_of_gone_runs(engine, settings.account_id, gone)
        engine.upsert(RUNS, _runs_rows(summary(), settings, running=True))
        try:
            with ExitStack() as holding:
                try:
                    holding.enter_context(
                        account_lease(
                            lease_engine or engine,
                            settings.account_id,
                            run_id,
                            wait=settings.lease_wait.total_seconds(),
                            on_lost=lease_lost,
                        )
                    )
                except AccountBusy as exc:
                    busy = one_line(str(exc))
                    log.error("%s", busy)
                    for s in runs:
                        s.busy = True
                        s.error = busy
                        s.finished = time.monotonic()
                else:
                    unreachable = _fetch_and_commit(client, writer, runs)
        except Exception as exc:
            # The destination failed under us (disk, permissions, a lost commit race that
            # outlived its retries). Checkpoints are already where the data is; record
            # the run as failed if the runs table can still take a row, then re-raise.
            _record_crash(engine, summary, settings, exc)
            raise
        finally:
            if own_client:
                client.close()
        for s in runs:
            if lost and s.status != "succeeded" and not s.error:
                s.error = one_line(lost[0])
        result = summary()
        engine.upsert(RUNS, _runs_rows(result, settings))
        if busy is None:
            _maintain(engine)
    return result


def _fetch_and_commit(client: ZoomClient, writer: _Writer, runs: list[StreamRun]) -> str | None:
    """Connect to Zoom, then let the writer fetch and commit every window. Returns why
    Zoom could not be reached at all, or None."""
    # The token first, once: without a route to Zoom, or with refused credentials, the
    # run ends here in seconds rather than in every window.
    try:
        client.connect()
    except ZoomError as exc:
        for s in runs:
            s.error = one_line(str(exc))
            s.finished = time.monotonic()
        if isinstance(exc, ZoomUnreachable):
            log.error("%s", exc)
            return one_line(str(exc))
        return None
    writer.run()
    return None


def _record_crash(
    engine: Engine, summary: Callable[[], RunSummary], settings: Settings, exc: Exception
) -> None:
    crashed = summary()
    for s in crashed.streams:
        if s.error is None:
            s.error = one_line(f"run failed: {type(exc).__name__}: {exc}")
    try:
        engine.upsert(RUNS, _runs_rows(crashed, settings))
    except Exception as again:
        log.warning("could not record the failed run in %s: %s", RUNS.name, again)


@dataclass(eq=False)
class _Chain:
    """One window's chain of pages. Zoom pages a window strictly in sequence
    (next_page_token), so a chain has at most one page in flight; any fetch thread may
    take its next page."""

    s: StreamRun
    index: int
    window: Window
    order: int  # place in the plan (oldest first)
    pages: Iterator[Page] | None = None
    records: int = 0
    first_newest: datetime | None = None
    #: Estimated pages still to fetch: unknown (infinite) until the first page is in.
    remaining: float = math.inf
    #: The share of the window's records still to fetch (1.0 until the first page).
    fraction_left: float = 1.0
    #: The last page reached below the window's early-stop instant: no more calls.
    ending: bool = False
    last_page_at: float = 0.0
    pages_seen: int = 0

    def observe(self, page: Page) -> None:
        """Update the estimate of pages still to fetch from the page just received.

        Zoom's `total_records`, when a response carries it, is exact. Otherwise the
        records come newest first, so the time span fetched so far and the time left down
        to the window's start give the density and what remains of the window."""
        self.last_page_at = time.monotonic()
        self.pages_seen += 1
        self.records += len(page.records)
        window = self.window
        self.ending = (
            window.stop_before is not None
            and page.oldest is not None
            and page.oldest < window.stop_before
        )
        if page.total_records is not None:
            left = max(0, page.total_records - self.records)
            self.remaining = left / PAGE_SIZE
            self.fraction_left = left / page.total_records if page.total_records else 0.0
            return
        if self.first_newest is None:
            self.first_newest = page.newest
        if page.oldest is None or self.first_newest is None:
            self.remaining = 1.0
            return
        low = datetime.combine(window.from_date, clock_time(), tzinfo=UTC)
        if window.stop_before is not None:
            low = max(low, window.stop_before)
        fetched_span = (self.first_newest - page.oldest).total_seconds()
        left = max(0.0, (page.oldest - low).total_seconds())
        if fetched_span <= 0:
            self.remaining = 1.0
            return
        self.remaining = self.records * left / fetched_span / PAGE_SIZE
        self.fraction_left = left / (left + fetched_span)


class _Scheduler:
    """Which chain's next page goes out next, and how many go out at once.

    - Windows open in plan order (oldest first, so the checkpoint keeps moving) while
      the open chains hold less than `OPEN_HORIZON_SECONDS` of calls at the rate limit,
      and only within `open_limit` windows of the oldest open one (so that a batch, and
      the files it writes, span few days: see `OPEN_WINDOWS_PER_FETCH_THREAD`); a newly
      opened window's first page goes first, since it tells how long the chain is.
    - Among open chains, the one with the largest share of its window left goes next
      (then the most pages left). Days of a stream share their hours' rhythm, so the
      share of time left is the share of records left; evening it out makes a busy day
      take pages in proportion to its length, and the chains run out together instead
      of one long chain paging alone at the end while the limiter idles. (Ranking by an
      estimate of pages left, from the density seen so far, starved chains still in a
      quiet evening hour: their estimates stayed low while busier chains moved on.)
    - In flight: enough pages for the rate limit at the latency seen (Little's law:
      rate × seconds per page, plus slack), at most `max_in_flight`. More would only
      slow the longest chains down by sharing the rate among more of them.
    - A chain that has waited `STALE_CHAIN_SECONDS` goes first (page tokens expire).
    """

    def __init__(
        self, chains: list[_Chain], *, max_in_flight: int, open_limit: int, rate: float
    ) -> None:
        self._cond = threading.Condition()
        self._waiting = list(reversed(chains))  # pop() gives the oldest
        self._ready: list[_Chain] = []
        self._opened: set[_Chain] = set()
        self._first_pages: list[float] = []  # estimated lengths seen on first pages
        self._open = 0
        self._in_flight = 0
        self._max = max(1, max_in_flight)
        self._open_limit = max(1, open_limit)
        self._rate = rate
        self._seconds_per_page: float | None = None
        self.peak_in_flight = 0

    def target(self) -> int:
        if self._seconds_per_page is None:
            return self._max
        needed = math.ceil(self._rate * self._seconds_per_page * IN_FLIGHT_SLACK) + 1
        return max(2, min(self._max, needed))

    def take(self) -> _Chain | None:
        """The next chain to advance by one page; None when every chain is finished."""
        with self._cond:
            while True:
                while self._waiting and self._should_open():
                    chain = self._waiting.pop()
                    self._ready.append(chain)
                    self._opened.add(chain)
                    self._open += 1
                if self._ready and self._in_flight < self.target():
                    chain = max(self._ready, key=self._priority(time.monotonic()))
                    self._ready.remove(chain)
                    self._in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                    return chain
                if not self._open and not self._waiting:
                    return None
                self._cond.wait()

    def end_game(self) -> bool:
        """Every window is open and the open ones hold under END_GAME_SECONDS of calls."""
        with self._cond:
            if self._waiting:
                return False
            work = sum(0.0 if math.isinf(c.remaining) else c.remaining for c in self._opened)
            return work < self._rate * END_GAME_SECONDS

    def _should_open(self) -> bool:
        if self._opened:
            oldest = min(chain.order for chain in self._opened)
            if self._waiting[-1].order - oldest >= self._open_limit:
                return False  # beyond the span: wait for the oldest open window
        if self._open < max(2, self._max):
            return True
        if self._open >= self._open_limit:
            return False
        typical = sum(self._first_pages) / len(self._first_pages) if self._first_pages else 1.0
        work = sum(typical if math.isinf(c.remaining) else c.remaining for c in self._opened)
        return work < self._rate * OPEN_HORIZON_SECONDS

    def release(self, chain: _Chain, *, finished: bool, seconds: float | None) -> None:
        """`chain` is back from a page (`seconds`: its time, limiter wait excluded)."""
        with self._cond:
            self._in_flight -= 1
            if chain.records and len(self._first_pages) < 1000 and chain.pages_seen == 1:
                self._first_pages.append(chain.remaining + 1)
            if finished:
                self._open -= 1
                self._opened.discard(chain)
            else:
                self._ready.append(chain)
            if seconds is not None:
                previous = self._seconds_per_page
                self._seconds_per_page = (
                    seconds if previous is None else 0.9 * previous + 0.1 * seconds
                )
            self._cond.notify_all()

    @staticmethod
    def _priority(now: float) -> Callable[[_Chain], tuple]:
        def key(chain: _Chain) -> tuple:
            started = chain.pages is not None
            stale = started and now - chain.last_page_at > STALE_CHAIN_SECONDS
            return (
                chain.ending or stale,
                not started,
                chain.fraction_left,
                chain.remaining,
                -chain.order,
            )

        return key


class _Writer:
    """Runs the fetch threads and, on the calling thread, normalises their pages; a
    committer thread merges and checkpoints, so a merge never holds up the fetching."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        run_id: str,
        runs: list[StreamRun],
        client: ZoomClient,
        progress: bool | None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.run_id = run_id
        self.runs = {s.name: s for s in runs}
        self.client = client
        self.progress_mode = progress
        self.events: queue.Queue[_Event] = queue.Queue(maxsize=settings.effective_concurrency * 4)
        self.stop = threading.Event()
        self.daily_limit_retry_at: datetime | None = None
        self.interrupted = False
        #: Batches handed to the committer: one merging and one waiting at most, so
        #: memory stays bounded by the batch size.
        self.commits: queue.Queue[_Commit | None] = queue.Queue(maxsize=1)
        self.commit_error: BaseException | None = None
        self.pending_commits = 0  # handed to the committer and not yet merged
        self.pending_lock = threading.Lock()
        self.fetch_started: float | None = None
        self.fetch_finished: float | None = None
        self.peak_in_flight = 0
        self.scheduler: _Scheduler | None = None
        #: Addresses whose countries this run merged already (the committer's only).
        self.country_addresses = RunAddresses()

    def calls_per_second(self) -> float | None:
        """API calls of every stream per second of fetching (start of the fetch threads
        to the last page), or None before any call."""
        calls = sum(s.counters.api_calls for s in self.runs.values())
        if not calls or self.fetch_started is None:
            return None
        end = self.fetch_finished or time.monotonic()
        return calls / max(end - self.fetch_started, 1e-9)

    # --- fetch side (worker threads) -------------------------------------------------

    def _fetch(self, scheduler: _Scheduler) -> None:
        """Advance chains one page at a time; each chain ends with exactly one terminal
        event (done, cancelled or failed)."""
        waited = getattr(self.client, "thread_waited", lambda: 0.0)
        while (chain := scheduler.take()) is not None:
            s, index = chain.s, chain.index
            finished, seconds = True, None
            try:
                if self.stop.is_set() or s.aborted:
                    self.events.put(_WindowCancelled(s.name, index))
                    continue
                if chain.pages is None:
                    chain.pages = fetch_pages(
                        self.client,
                        s.stream,
                        chain.window,
                        self.settings.category_type,
                        s.counters,
                        max_pages=self.settings.max_pages_per_window,
                    )
                started, waited_before = time.monotonic(), waited()
                page = next(chain.pages, None)
                if page is None:
                    self.events.put(_WindowDone(s.name, index))
                    continue
                seconds = time.monotonic() - started - (waited() - waited_before)
                chain.observe(page)
                if page.records or page.strays:
                    self.events.put(_Records(s.name, index, page.records, page.strays))
                if page.failure is not None:  # the window ends here, unproven
                    self.events.put(_WindowFailed(s.name, index, page.failure))
                    continue
                if not page.next_page_token:
                    self.events.put(_WindowDone(s.name, index))
                    continue
                finished = False
            except BaseException as exc:  # every failure is reported; never lost in a thread
                self.events.put(_WindowFailed(s.name, index, exc))
            finally:
                scheduler.release(chain, finished=finished, seconds=seconds)

    # --- write side (calling thread) -------------------------------------------------

    def run(self) -> None:
        chains = [
            _Chain(s, index, window, order)
            for order, (s, index, window) in enumerate(_interleave(self.runs.values()))
        ]
        outstanding = len(chains)
        totals = {s.name: len(s.plan.windows) for s in self.runs.values()}
        concurrency = self.settings.effective_concurrency
        scheduler = _Scheduler(
            chains,
            max_in_flight=concurrency,
            open_limit=open_span(concurrency),
            rate=self.settings.requests_per_second,
        )
        self.scheduler = scheduler
        fetchers = [
            threading.Thread(
                target=self._fetch, args=(scheduler,), name=f"zoom-fetch-{n}", daemon=True
            )
            for n in range(min(concurrency, len(chains)))
        ]
        committer = threading.Thread(target=self._commit_loop, name="zoom-commit", daemon=True)
        committer.start()
        self.fetch_started = time.monotonic()
        try:
            with Progress(totals, bar=self.progress_mode) as bar:
                for thread in fetchers:
                    thread.start()
                try:
                    while outstanding:
                        outstanding -= self._handle(self._next_event(), bar)
                        self._raise_commit_error()
                        self._flush_if_due()
                except KeyboardInterrupt:
                    self.interrupted = True
                    self.stop.set()
                    log.warning("interrupted: finishing in-flight pages, then committing")
                    while outstanding:
                        outstanding -= self._handle(self.events.get(), bar)
                except BaseException:
                    self.stop.set()
                    self._drain(outstanding)
                    raise
                finally:
                    for thread in fetchers:
                        thread.join()
                    self.fetch_finished = time.monotonic()
                    self.peak_in_flight = scheduler.peak_in_flight
                    for s in self.runs.values():
                        if s.finished is None:
                            s.finished = time.monotonic()
            for s in self.runs.values():
                self._flush(s)
        finally:
            self.commits.put(None)
            committer.join()
        self._raise_commit_error()

    def _next_event(self) -> _Event:
        while True:
            try:
                return self.events.get(timeout=1.0)
            except queue.Empty:
                self._raise_commit_error()
                self._flush_if_due()

    def _drain(self, outstanding: int) -> None:
        """After a writer failure: let the fetch threads finish so they can be joined."""
        while outstanding:
            if not isinstance(self.events.get(), _Records):
                outstanding -= 1

    def _handle(self, event: _Event, bar: Progress) -> int:
        """Apply one event; return 1 when it ends a window."""
        s = self.runs[event.stream]
        if isinstance(event, _Records):
            s.batch.add(event.records)
            s.batch.rejects.extend(event.strays)
            s.fetched += len(event.records) + len(event.strays)
            bar.records(s.name, len(event.records))
            if len(s.batch) >= self.settings.batch_rows:
                self._flush(s)
            return 0
        s.windows_finished += 1
        if s.windows_finished == len(s.plan.windows):
            s.finished = time.monotonic()
        match event:
            case _WindowDone(index=index):
                s.done_in_batch.add(index)
                bar.window_done(s.name)
            case _WindowFailed(index=index, error=error):
                self._window_failed(s, s.plan.windows[index], error)
            case _WindowCancelled():
                pass  # never committed: the cursor stops before it
        return 1

    def _window_failed(self, s: StreamRun, window: Window, exc: BaseException) -> None:
        if isinstance(exc, DailyLimitReached):
            if self.daily_limit_retry_at is None:
                log.warning("Zoom's daily rate limit reached: %s", exc)
            self.daily_limit_retry_at = exc.retry_at
            self.stop.set()
            return
        if isinstance(exc, KeyboardInterrupt):
            self.interrupted = True
            self.stop.set()
            return
        message = str(exc) if isinstance(exc, ZoomError) else f"{type(exc).__name__}: {exc}"
        if s.error is None:
            s.error = one_line(
                message if message.startswith(str(window)) else f"{window}: {message}"
            )
            if isinstance(exc, IncompleteAnswer):
                s.failed_window = one_line(f"{window.from_date}..{window.to_date}: {exc.reason}")
                log.error("%s could not be proven complete: %s", window, mask(message))
            else:
                log.error("%s failed: %s", window, mask(message))
        if not isinstance(exc, ZoomError):
            log.debug("unexpected error in %s", window, exc_info=exc)
        # Later windows can't move the cursor past a gap, so the stream stops here; bad
        # credentials stop every stream.
        s.aborted = True
        if isinstance(exc, ZoomAuthError):
            self.stop.set()

    def _flush_if_due(self) -> None:
        every = FLUSH_EVERY_SECONDS
        if self.pending_commits == 0 and self.scheduler is not None and self.scheduler.end_game():
            every = END_GAME_FLUSH_SECONDS  # only while the committer is idle
        # Each stream on its own clock: a busy stream's batches fill (and flush) often, and
        # on one clock they kept a quiet stream's batch from its timed flush, so it grew
        # with the backfill (to `batch_rows`) and its checkpoint waited for the end.
        now = time.monotonic()
        for s in self.runs.values():
            if now - s.last_flush >= every:
                self._flush(s)

    def _flush(self, s: StreamRun) -> None:
        """Hand the buffered rows and rejects to the committer (which merges them, then
        advances the checkpoint) and start a new batch."""
        s.last_flush = time.monotonic()
        batch = s.batch
        if not len(batch) and not batch.rejects and not s.done_in_batch:
            return
        s.batch = Batch(s.stream.spec)
        done, s.done_in_batch = s.done_in_batch, set()
        with self.pending_lock:
            self.pending_commits += 1
        # As Arrow now, so that the batch's buffers and lw_id set go while it waits and
        # merges: only its table and rejects are kept (a full batch's set is ~10 MiB).
        self.commits.put(_Commit(s, batch.to_arrow(), batch.rejects, done))

    def _raise_commit_error(self) -> None:
        if self.commit_error is not None:
            raise self.commit_error

    def _commit_loop(self) -> None:
        """The committer thread: merges in hand-off order. After a failure it commits
        nothing more (the checkpoint stays at the data) and the writer re-raises."""
        while (item := self.commits.get()) is not None:
            try:
                if self.commit_error is None:
                    self._commit(item)
            except BaseException as exc:
                self.commit_error = exc
                self.stop.set()
            finally:
                with self.pending_lock:
                    self.pending_commits -= 1

    def _commit(self, commit: _Commit) -> None:
        """Merge the rows and rejects of one batch, then advance the checkpoint."""
        s, table = commit.s, commit.table
        if s.plan.floor is not None and table.num_rows:
            keep = pc.greater_equal(table["time"], pa.scalar(s.plan.floor, table["time"].type))
            s.before_floor += table.num_rows - pc.sum(keep).as_py()
            table = table.filter(keep)
        if table.num_rows:
            s.inserted += self.engine.merge_new(s.stream.spec, table)
            if s.stream.spec is ACTIVITY_LOGS:  # enrichment: the new addresses' countries
                addresses = self.country_addresses.new(table)
                countries = ip_country_rows(addresses)
                if countries.num_rows:
                    self.engine.merge_new(IP_COUNTRIES, countries)
                self.country_addresses.remember(addresses)
        if commit.rejects:
            s.rejected += len(commit.rejects)
            self.engine.merge_new(REJECTS, self._rejects_table(s, commit.rejects))
        s.committed |= commit.done
        self._advance_cursor(s)

    def _rejects_table(self, s: StreamRun, rejects: list[Reject]) -> pa.Table:
        now = datetime.now(UTC)
        unique = {reject_id(s.name, r.raw_json): r for r in rejects}
        return pa.Table.from_pydict(
            {
                "reject_id": list(unique),
                "run_id": [self.run_id] * len(unique),
                "account_id": [self.settings.account_id] * len(unique),
                "stream": [s.name] * len(unique),
                "rejected_at": [now] * len(unique),
                "reason": [one_line(r.reason) for r in unique.values()],
                # The record as Zoom sent it, but never a credential echoed inside it.
                "raw_json": [mask(r.raw_json) for r in unique.values()],
            },
            schema=REJECTS.schema,
        )

    def _advance_cursor(self, s: StreamRun) -> None:
        windows = s.plan.windows
        contiguous = 0
        while contiguous < len(windows) and contiguous in s.committed:
            contiguous += 1
        if contiguous == 0:
            return
        if contiguous == len(windows):
            candidate = s.plan.cursor_after_all
        else:
            candidate = min(windows[contiguous - 1].covers_until, s.plan.end)
        if s.cursor is not None and candidate <= s.cursor:
            return  # never move back (reconcile, or a lookback re-read)
        self.engine.save_checkpoint(self.settings.account_id, s.name, candidate, self.run_id)
        s.cursor = candidate


def _interleave(runs: Iterable[StreamRun]) -> list[tuple[StreamRun, int, Window]]:
    """Oldest windows first, alternating streams, so both streams advance together."""
    work = [(s, i, w) for s in runs for i, w in enumerate(s.plan.windows)]
    return sorted(work, key=lambda item: (item[2].from_date, item[0].name))


def _abandon_runs(engine: Engine, account_id: str, run_id: str, now: datetime) -> set[str]:
    """Mark `abandoned` the `running` rows of this account's runs that ended without
    recording their end (killed, lost machine): `rules.abandoned_runs`. Returns their
    run ids."""
    abandoned = rules.abandoned_runs(
        engine.read_table(RUNS), account_id, run_id, now, exclusive=engine.exclusive_runs
    )
    if abandoned.num_rows:
        log.warning(
            "%d earlier run row(s) of %s ended without recording their end: marked abandoned "
            "(runs %s)",
            abandoned.num_rows,
            account_id,
            ", ".join(sorted(set(abandoned["run_id"].to_pylist()))),
        )
        engine.upsert(RUNS, abandoned)
    return set(abandoned["run_id"].to_pylist())


def _runs_rows(summary: RunSummary, settings: Settings, *, running: bool = False) -> pa.Table:
    """The run's rows of the runs table: at its start (`running`: no end, no outcome
    yet) or at its end."""
    finished_at = None if running else datetime.now(UTC)
    rows = []
    for s in summary.streams:
        c = s.counters
        rows.append(
            {
                "run_id": summary.run_id,
                "account_id": summary.account_id,
                "stream": s.name,
                "mode": s.plan.mode,
                "started_at": summary.started_at,
                "finished_at": finished_at,
                "window_start": s.plan.start,
                "window_end": s.plan.end,
                "windows": len(s.plan.windows),
                "pages": c.pages,
                "api_calls": c.api_calls,
                "records_fetched": s.fetched,
                "records_inserted": s.inserted,
                "records_rejected": s.rejected,
                "retries": c.retries,
                "rate_limited": c.rate_limited,
                "duration_seconds": None
                if running
                else (s.finished or time.monotonic()) - s.started,
                "cursor_before": s.plan.cursor_before,
                "cursor_after": None if running else s.cursor,
                "status": rules.RUNNING if running else s.status,
                "rate_limit": summary.rate_limit or settings.requests_per_second,
                "calls_per_second": summary.calls_per_second,
                "failed_window": s.failed_window,
                "error": one_line(
                    s.error
                    or (
                        f"daily rate limit; retry after {format_time(summary.daily_limit_retry_at)}"
                        if summary.daily_limit_retry_at and s.status != "succeeded"
                        else None
                    )
                ),
            }
        )
    return pa.Table.from_pylist(rows, schema=RUNS.schema)


def _maintain(engine: Engine) -> None:
    maintain = getattr(engine, "maintain", None)
    if maintain is None:
        return
    try:
        maintain()
    except Exception as exc:  # compaction is an optimisation: never fail a run for it
        log.warning("table maintenance skipped: %s", exc)
