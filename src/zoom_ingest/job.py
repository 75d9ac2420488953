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
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from . import exit_codes
from .engines.base import Engine
from .geo import ip_country_rows_for
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

log = logging.getLogger("zoom_ingest.job")

# The run's outcomes, from the one module that declares every entry point's exit codes.
EXIT_OK = exit_codes.OK
EXIT_STREAM_FAILED = exit_codes.STREAM_FAILED
EXIT_DAILY_LIMIT = exit_codes.DAILY_LIMIT
EXIT_ZOOM_UNREACHABLE = exit_codes.ZOOM_UNREACHABLE
#: Flush (and checkpoint) at least this often even when the batch is not full, so a
#: long backfill that is interrupted loses little progress.
FLUSH_EVERY_SECONDS = 30.0


@dataclass
class StreamRun:
    """The state and the tallies of one stream during a run."""

    stream: Stream
    plan: Plan
    counters: CallCounters = field(default_factory=CallCounters)
    batch: Batch | None = None
    done_in_batch: set[int] = field(default_factory=set)
    committed: set[int] = field(default_factory=set)
    windows_finished: int = 0
    fetched: int = 0
    inserted: int = 0
    rejected: int = 0
    before_floor: int = 0
    cursor: datetime | None = None
    error: str | None = None
    aborted: bool = False
    cancelled_windows: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def __post_init__(self) -> None:
        self.batch = Batch(self.stream.spec)
        self.cursor = self.plan.cursor_before

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def status(self) -> str:
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

    @property
    def exit_code(self) -> int:
        if self.unreachable is not None:
            return EXIT_ZOOM_UNREACHABLE
        if any(s.status == "failed" for s in self.streams):
            return EXIT_STREAM_FAILED
        if self.daily_limit_retry_at is not None:
            return EXIT_DAILY_LIMIT
        if any(s.status != "succeeded" for s in self.streams):
            return EXIT_STREAM_FAILED
        return EXIT_OK

    def lines(self) -> list[str]:
        out = [f"run {self.run_id} on {self.engine}: {self.duration:.1f} s"]
        if self.unreachable is not None:
            out.append(f"  {self.unreachable}")
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
            if s.error and s.error != self.unreachable:
                out.append(f"    error: {s.error}")
        if self.daily_limit_retry_at is not None:
            out.append(
                "  stopped at Zoom's daily rate limit; checkpoints kept. Run again after "
                f"{format_time(self.daily_limit_retry_at)}."
            )
        if self.interrupted:
            out.append("  interrupted; checkpoints kept at the committed data.")
        return out


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run(
    settings: Settings,
    engine: Engine,
    *,
    progress: bool | None = None,
    client: ZoomClient | None = None,
    now: datetime | None = None,
) -> RunSummary:
    """One whole run for one Zoom account. Raises EngineBusy if another run holds the
    destination; every other failure is reported in the summary and the runs table."""
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
        client = client or ZoomClient(settings)
        writer = _Writer(settings, engine, run_id, runs, client, progress)
        unreachable: str | None = None

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
            )

        try:
            # The token first, once: without a route to Zoom, or with refused
            # credentials, the run ends here in seconds rather than in every window.
            try:
                client.connect()
            except ZoomError as exc:
                if isinstance(exc, ZoomUnreachable):
                    unreachable = str(exc)
                    log.error("%s", exc)
                for s in runs:
                    s.error = str(exc)
                    s.finished = time.monotonic()
            else:
                writer.run()
        except Exception as exc:
            # The destination failed under us (disk, permissions, a lost commit race that
            # outlived its retries). Checkpoints are already where the data is; record
            # the run as failed if the runs table can still take a row, then re-raise.
            _record_crash(engine, summary, settings, exc)
            raise
        finally:
            if own_client:
                client.close()
        result = summary()
        engine.append(RUNS, _runs_rows(result, settings))
        _maintain(engine)
    return result


def _record_crash(
    engine: Engine, summary: Callable[[], RunSummary], settings: Settings, exc: Exception
) -> None:
    crashed = summary()
    for s in crashed.streams:
        if s.error is None:
            s.error = f"run failed: {type(exc).__name__}: {exc}"
    try:
        engine.append(RUNS, _runs_rows(crashed, settings))
    except Exception as again:
        log.warning("could not record the failed run in %s: %s", RUNS.name, again)


class _Writer:
    """Runs the fetch pool and, on the calling thread, merges and checkpoints."""

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
        self.events: queue.Queue[tuple] = queue.Queue(maxsize=settings.effective_concurrency * 4)
        self.stop = threading.Event()
        self.daily_limit_retry_at: datetime | None = None
        self.interrupted = False
        self.last_flush = time.monotonic()

    # --- fetch side (worker threads) -------------------------------------------------

    def _fetch_window(self, s: StreamRun, index: int, window: Window) -> None:
        """Post the window's pages, then exactly one terminal event."""
        try:
            if self.stop.is_set() or s.aborted:
                self.events.put(("cancelled", s.name, index, None))
                return
            for page in fetch_pages(self.client, s.stream, window, self.settings, s.counters):
                if page.records:
                    self.events.put(("records", s.name, index, page.records))
                if self.stop.is_set() or s.aborted:
                    self.events.put(("cancelled", s.name, index, None))
                    return
            self.events.put(("done", s.name, index, None))
        except BaseException as exc:  # every failure is reported; never lost in a thread
            self.events.put(("failed", s.name, index, exc))

    # --- write side (calling thread) -------------------------------------------------

    def run(self) -> None:
        work = _interleave(self.runs.values())
        outstanding = len(work)
        totals = {s.name: len(s.plan.windows) for s in self.runs.values()}
        with (
            Progress(totals, bar=self.progress_mode) as bar,
            ThreadPoolExecutor(
                max_workers=self.settings.effective_concurrency, thread_name_prefix="zoom-fetch"
            ) as pool,
        ):
            for s, index, window in work:
                pool.submit(self._fetch_window, s, index, window)
            try:
                while outstanding:
                    outstanding -= self._handle(self._next_event(), bar)
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
                for s in self.runs.values():
                    if s.finished is None:
                        s.finished = time.monotonic()
        for s in self.runs.values():
            self._flush(s)

    def _next_event(self) -> tuple:
        while True:
            try:
                return self.events.get(timeout=1.0)
            except queue.Empty:
                self._flush_if_due()

    def _drain(self, outstanding: int) -> None:
        """After a writer failure: let the workers finish so the pool can shut down."""
        while outstanding:
            kind = self.events.get()[0]
            if kind != "records":
                outstanding -= 1

    def _handle(self, event: tuple, bar: Progress) -> int:
        """Apply one event; return 1 when it ends a window."""
        kind, name, index, payload = event
        s = self.runs[name]
        if kind == "records":
            s.batch.add(payload)  # type: ignore[union-attr]
            s.fetched += len(payload)
            bar.records(name, len(payload))
            if len(s.batch) >= self.settings.batch_rows:  # type: ignore[arg-type]
                self._flush(s)
            return 0
        s.windows_finished += 1
        if s.windows_finished == len(s.plan.windows):
            s.finished = time.monotonic()
        if kind == "done":
            s.done_in_batch.add(index)
            bar.window_done(name)
        elif kind == "cancelled":
            s.cancelled_windows += 1
        else:
            self._window_failed(s, s.plan.windows[index], payload)
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
            s.error = message if message.startswith(str(window)) else f"{window}: {message}"
            log.error("%s failed: %s", window, message)
        if not isinstance(exc, ZoomError):
            log.debug("unexpected error in %s", window, exc_info=exc)
        # Later windows can't move the cursor past a gap, so the stream stops here; bad
        # credentials stop every stream.
        s.aborted = True
        if isinstance(exc, ZoomAuthError):
            self.stop.set()

    def _flush_if_due(self) -> None:
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_SECONDS:
            for s in self.runs.values():
                self._flush(s)

    def _flush(self, s: StreamRun) -> None:
        """Merge the buffered rows and rejects, then advance the checkpoint."""
        self.last_flush = time.monotonic()
        batch = s.batch
        assert batch is not None
        if not len(batch) and not batch.rejects and not s.done_in_batch:
            return
        s.batch = Batch(s.stream.spec)
        table = batch.to_arrow()
        if s.plan.floor is not None and table.num_rows:
            keep = pc.greater_equal(table["time"], pa.scalar(s.plan.floor, table["time"].type))
            s.before_floor += table.num_rows - pc.sum(keep).as_py()
            table = table.filter(keep)
        if table.num_rows:
            s.inserted += self.engine.merge_new(s.stream.spec, table)
            if s.stream.spec is ACTIVITY_LOGS:  # enrichment: the new addresses' countries
                countries = ip_country_rows_for(table)
                if countries.num_rows:
                    self.engine.merge_new(IP_COUNTRIES, countries)
        if batch.rejects:
            s.rejected += len(batch.rejects)
            self.engine.merge_new(REJECTS, self._rejects_table(s, batch.rejects))
        s.committed |= s.done_in_batch
        s.done_in_batch = set()
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
                "reason": [r.reason for r in unique.values()],
                "raw_json": [r.raw_json for r in unique.values()],
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


def _interleave(runs: object) -> list[tuple[StreamRun, int, Window]]:
    """Oldest windows first, alternating streams, so both streams advance together."""
    work = [(s, i, w) for s in runs for i, w in enumerate(s.plan.windows)]  # type: ignore[attr-defined]
    return sorted(work, key=lambda item: (item[2].from_date, item[0].name))


def _runs_rows(summary: RunSummary, settings: Settings) -> pa.Table:
    finished_at = datetime.now(UTC)
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
                "duration_seconds": (s.finished or time.monotonic()) - s.started,
                "cursor_before": s.plan.cursor_before,
                "cursor_after": s.cursor,
                "status": s.status,
                "error": s.error
                or (
                    f"daily rate limit; retry after {format_time(summary.daily_limit_retry_at)}"
                    if summary.daily_limit_retry_at and s.status != "succeeded"
                    else None
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
