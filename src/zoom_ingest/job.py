"""One run: plan → fetch → normalise → merge → checkpoint → report.

Threads: the source's fetch threads (zoom/fetcher.py) page the windows of both streams
concurrently under the account's one rate limiter and hand raw pages to this module's
writer loop (the calling thread) through a bounded queue; the writer batches them and a
committer thread merges each batch and moves the checkpoint. Memory is bounded by
`batch_rows` and the queues, not by the size of the backfill. Only the writer and the
committer touch the engine.

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
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from .engines.base import AccountBusy, Engine
from .engines.lease import account_lease, free_leases_of_gone_runs
from .geo import RunAddresses, ip_country_rows
from .masking import mask, one_line
from .normalise import Batch, Reject, raw_json
from .plan import Window, plan_stream
from .progress import Progress
from .run_state import RunSummary, StreamRun, abandon_runs, rejects_rows, runs_rows
from .settings import Settings
from .tables import ACTIVITY_LOGS, IP_COUNTRIES, REJECTS, RUNS, UTC, format_time
from .zoom import (
    STREAMS_BY_NAME,
    DailyLimitReached,
    ZoomAuthError,
    ZoomClient,
    ZoomError,
    ZoomUnreachable,
)
from .zoom.config import ZoomClientConfig
from .zoom.errors import IncompleteAnswer
from .zoom.fetcher import (
    Fetcher,
    Records,
    WindowCancelled,
    WindowDone,
    WindowEvent,
    WindowFailed,
    WindowToFetch,
)

log = logging.getLogger("zoom_ingest.job")

#: Flush (and checkpoint) at least this often even when the batch is not full, so a
#: long backfill that is interrupted loses little progress.
FLUSH_EVERY_SECONDS = 30.0
#: …and more often in the end game (every window open and little work left: the
#: fetcher's `end_game`), so that the merge after the last page (which the run waits
#: for) is a small one.
END_GAME_FLUSH_SECONDS = 3.0
#: A full batch takes along another stream's batch of at least 1/this of `batch_rows`.
TAKE_ALONG_SHARE = 4


# --- what the writer hands the committer ---


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


def zoom_client_config(settings: Settings) -> ZoomClientConfig:
    """The part of the settings the Zoom client needs: where, who, and how hard."""
    return ZoomClientConfig(
        account_id=settings.account_id,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        api_url=settings.api_url,
        oauth_url=settings.oauth_url,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        requests_per_second=settings.requests_per_second,
        connections=settings.effective_concurrency,
        request_deadline=settings.request_deadline,
        max_response_bytes=settings.max_response_bytes,
    )


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
        client = client or ZoomClient(zoom_client_config(settings))
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
        gone = abandon_runs(engine, settings.account_id, run_id, now)
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


class _Writer:
    """Runs the fetch threads (the source's `Fetcher`) and, on the calling thread,
    batches and normalises their pages; a committer thread merges and checkpoints, so a
    merge never holds up the fetching."""

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
        #: Rows a batch holds before it is merged: the settings', or the engine's own.
        self.batch_rows = settings.batch_rows or engine.batch_rows
        self.run_id = run_id
        self.runs = {s.name: s for s in runs}
        self.progress_mode = progress
        self.stop = threading.Event()
        self.fetcher = Fetcher(
            client,
            (
                WindowToFetch(s.stream, index, window, s.counters)
                for s in runs
                for index, window in enumerate(s.plan.windows)
            ),
            category_type=settings.category_type,
            max_pages=settings.max_pages_per_window,
            concurrency=settings.effective_concurrency,
            rate=settings.requests_per_second,
            stop=self.stop,
        )
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

    def run(self) -> None:
        outstanding = self.fetcher.windows
        totals = {s.name: len(s.plan.windows) for s in self.runs.values()}
        committer = threading.Thread(target=self._commit_loop, name="zoom-commit", daemon=True)
        committer.start()
        self.fetch_started = time.monotonic()
        try:
            with Progress(totals, bar=self.progress_mode) as bar:
                self.fetcher.start()
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
                        outstanding -= self._handle(self.fetcher.events.get(), bar)
                except BaseException:
                    self.stop.set()
                    self._drain(outstanding)
                    raise
                finally:
                    self.fetcher.join()
                    self.fetch_finished = time.monotonic()
                    for s in self.runs.values():
                        if s.finished is None:
                            s.finished = time.monotonic()
            for s in self.runs.values():
                self._flush(s)
        finally:
            self.commits.put(None)
            committer.join()
        self._raise_commit_error()

    def _next_event(self) -> WindowEvent:
        while True:
            try:
                return self.fetcher.events.get(timeout=1.0)
            except queue.Empty:
                self._raise_commit_error()
                self._flush_if_due()

    def _drain(self, outstanding: int) -> None:
        """After a writer failure: let the fetch threads finish so they can be joined."""
        while outstanding:
            if not isinstance(self.fetcher.events.get(), Records):
                outstanding -= 1

    def _handle(self, event: WindowEvent, bar: Progress) -> int:
        """Apply one event; return 1 when it ends a window."""
        s = self.runs[event.stream]
        if isinstance(event, Records):
            s.batch.add(event.records)
            s.batch.rejects.extend(
                Reject(reason=x.reason, raw_json=raw_json(x.record)) for x in event.strays
            )
            s.fetched += len(event.records) + len(event.strays)
            bar.records(s.name, len(event.records))
            limit = self.batch_rows
            if len(s.batch) >= limit:
                # A full batch takes along the other streams' batches of a quarter batch
                # or more (theirs first: they merge in a moment), so a quiet stream's
                # batch never grows to a full one beside full batches of the busy one
                # while it waits for its timed flush (issue 22). Smaller ones stay: each
                # merge has a fixed cost, and a quiet stream's few rows taken along with
                # every full batch made four times the merges for a few MiB.
                for other in self.runs.values():
                    if other is not s and len(other.batch) * TAKE_ALONG_SHARE >= limit:
                        self._flush(other)
                self._flush(s)
            return 0
        s.windows_finished += 1
        if s.windows_finished == len(s.plan.windows):
            s.finished = time.monotonic()
        match event:
            case WindowDone(index=index):
                s.done_in_batch.add(index)
                bar.window_done(s.name)
            case WindowFailed(index=index, error=error):
                self._window_failed(s, s.plan.windows[index], error)
            case WindowCancelled():
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
        self.fetcher.abort(s.name)
        if isinstance(exc, ZoomAuthError):
            self.stop.set()

    def _flush_if_due(self) -> None:
        every = FLUSH_EVERY_SECONDS
        if self.pending_commits == 0 and self.fetcher.end_game():
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
                # Not held while waiting for the next batch: the pipeline holds the
                # batches being built, waiting and merged, and no more.
                del item

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
            rows = rejects_rows(self.run_id, self.settings.account_id, s.name, commit.rejects)
            self.engine.merge_new(REJECTS, rows)
        s.committed |= commit.done
        self._advance_cursor(s)

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


def _runs_rows(summary: RunSummary, settings: Settings, *, running: bool = False) -> pa.Table:
    """The run's rows of the runs table: at its start (`running`: no end, no outcome
    yet) or at its end."""
    return runs_rows(
        summary.streams,
        run_id=summary.run_id,
        account_id=summary.account_id,
        started_at=summary.started_at,
        rate_limit=summary.rate_limit or settings.requests_per_second,
        calls_per_second=summary.calls_per_second,
        daily_limit_retry_at=summary.daily_limit_retry_at,
        running=running,
    )


def _maintain(engine: Engine) -> None:
    maintain = getattr(engine, "maintain", None)
    if maintain is None:
        return
    try:
        maintain()
    except Exception as exc:  # compaction is an optimisation: never fail a run for it
        log.warning("table maintenance skipped: %s", exc)
