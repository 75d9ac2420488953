"""A run's state and its record: what the job keeps of each stream while it runs
(`StreamRun`: plan, batch, committed windows, tallies, outcome), the run's summary
(`RunSummary`: its printed lines and its exit code), and the rows of the bookkeeping
tables that record it: the runs table's rows of a run (at its start and at its end),
the earlier runs that ended without recording theirs, and the rejects' rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from . import exit_codes
from .engines import rules
from .engines.base import Engine
from .masking import mask, one_line
from .normalise import Batch, Reject
from .plan import Plan
from .tables import REJECTS, RUNS, UTC, format_time, reject_id
from .zoom import CallCounters, Stream

log = logging.getLogger(__name__)


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
    #: A window of the stream failed: its later windows are not fetched (the cursor
    #: cannot move past the gap).
    aborted: bool = False
    #: Another run held the account's lease: nothing was fetched.
    busy: bool = False
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    #: When this stream's batch was last handed to the committer (`job._Writer._flush`).
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


def rejects_rows(run_id: str, account_id: str, stream: str, rejects: list[Reject]) -> pa.Table:
    """The rejects table's rows of a batch's rejects, one per distinct raw record."""
    now = datetime.now(UTC)
    unique = {reject_id(stream, r.raw_json): r for r in rejects}
    return pa.Table.from_pydict(
        {
            "reject_id": list(unique),
            "run_id": [run_id] * len(unique),
            "account_id": [account_id] * len(unique),
            "stream": [stream] * len(unique),
            "rejected_at": [now] * len(unique),
            "reason": [one_line(r.reason) for r in unique.values()],
            # The record as Zoom sent it, but never a credential echoed inside it.
            "raw_json": [mask(r.raw_json) for r in unique.values()],
        },
        schema=REJECTS.schema,
    )


def abandon_runs(engine: Engine, account_id: str, run_id: str, now: datetime) -> set[str]:
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
        """The run's exit code, from the one mapping of outcomes to codes."""
        return exit_codes.for_run(
            [s.status for s in self.streams],
            busy=self.busy is not None,
            unreachable=self.unreachable is not None,
            daily_limit=self.daily_limit_retry_at is not None,
        )

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


def runs_rows(
    streams: Iterable[StreamRun],
    *,
    run_id: str,
    account_id: str,
    started_at: datetime,
    rate_limit: float,
    calls_per_second: float | None,
    daily_limit_retry_at: datetime | None,
    running: bool = False,
) -> pa.Table:
    """The run's rows of the runs table, one per stream: at its start (`running`: no
    end, no outcome yet) or at its end."""
    finished_at = None if running else datetime.now(UTC)
    rows = []
    for s in streams:
        c = s.counters
        rows.append(
            {
                "run_id": run_id,
                "account_id": account_id,
                "stream": s.name,
                "mode": s.plan.mode,
                "started_at": started_at,
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
                "rate_limit": rate_limit,
                "calls_per_second": calls_per_second,
                "failed_window": s.failed_window,
                "error": one_line(
                    s.error
                    or (
                        f"daily rate limit; retry after {format_time(daily_limit_retry_at)}"
                        if daily_limit_retry_at and s.status != "succeeded"
                        else None
                    )
                ),
            }
        )
    return pa.Table.from_pylist(rows, schema=RUNS.schema)
