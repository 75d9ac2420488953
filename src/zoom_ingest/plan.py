"""Which date windows a run fetches for a stream, from its checkpoint.

Zoom's report endpoints take `from`/`to` *dates* (at most one month apart, within the last
six months) and the time zone they are read in is undocumented: UTC or the account's,
anywhere from UTC−12 to UTC+14. Records are instants. So:

- to cover UTC instants [a, b], request dates (a − 12h).date() … (b + 14h).date();
- once every date ≤ D is fetched, all instants < D+1 00:00Z − 14h are covered.

The checkpoint cursor means "every record with time < cursor is committed". Windows are
cut oldest first and the job advances the cursor across contiguous committed windows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from .settings import Settings
from .tables import UTC
from .zoom.rules import AHEAD_OF_UTC, BEHIND_UTC, retention_start

log = logging.getLogger(__name__)

#: A range of at most this many dates is fetched as one paging chain (one call when
#: nothing is new); longer ranges are cut into `window_days` windows run in parallel.
SINGLE_WINDOW_MAX_DATES = 3


@dataclass(frozen=True)
class Window:
    """One request chain: `from`/`to` dates (inclusive), and where paging may stop."""

    stream: str
    from_date: date
    to_date: date
    #: A newest-first chain may stop after a page whose records are all older than this.
    stop_before: datetime | None
    #: Instant below which every record is covered once this window and all earlier
    #: windows of the plan are committed.
    covers_until: datetime

    def __str__(self) -> str:
        if self.from_date == self.to_date:
            return f"{self.stream} {self.from_date}"
        return f"{self.stream} {self.from_date}…{self.to_date}"


@dataclass(frozen=True)
class Plan:
    stream: str
    mode: str  # backfill | incremental | reconcile
    start: datetime  # earliest instant this run is responsible for
    end: datetime  # the run's start time: nothing newer is promised
    windows: tuple[Window, ...]
    #: The backfill start's midnight, when set: records older than this are not stored.
    floor: datetime | None
    cursor_before: datetime | None

    @property
    def cursor_after_all(self) -> datetime:
        """The cursor once every window is committed."""
        return min(self.windows[-1].covers_until, self.end) if self.windows else self.end


def plan_stream(settings: Settings, stream: str, cursor: datetime | None, now: datetime) -> Plan:
    """The windows one run fetches for one stream. `cursor` and `now` are aware datetimes
    in any zone; the dates asked of Zoom are reckoned from their UTC instants."""
    now = now.astimezone(UTC)
    cursor = cursor.astimezone(UTC) if cursor is not None else None
    today = now.date()
    oldest = retention_start(today)
    # The backfill start is a floor in every mode: a run that resumes an interrupted
    # backfill re-reads from cursor − lookback and must not store records before it.
    floor = _midnight(settings.backfill_start) if settings.backfill_start else None

    if cursor is None:
        # No checkpoint yet: whatever the mode, the first run is a backfill. A reconcile
        # that started at today − N would otherwise claim everything before it.
        mode = "backfill"
        start = floor if floor is not None else _midnight(oldest)
        stop_before = start
        if settings.mode == "reconcile":
            log.info("%s: no checkpoint yet, so this reconcile run is a backfill", stream)
    elif settings.mode == "reconcile":
        # Re-read the last N days in full, and never less than an incremental run would
        # read: after a gap (a stopped backfill, failed runs, an outage) the cursor may
        # lie further back than N days, and the range since it is still owed.
        mode = "reconcile"
        start = min(
            cursor - settings.lookback, _midnight(today - timedelta(days=settings.reconcile_days))
        )
        stop_before = None
    else:
        mode = "incremental"
        start = cursor - settings.lookback
        stop_before = start

    first = (start - BEHIND_UTC).date()
    if first < oldest:
        if mode == "backfill" and settings.backfill_start is not None:
            log.warning(
                "%s: backfill start %s is older than Zoom's 6-month retention; starting at %s",
                stream,
                settings.backfill_start,
                oldest,
            )
        elif mode != "backfill" and cursor is not None and cursor < _midnight(oldest):
            log.warning(
                "%s: checkpoint %s is older than Zoom's 6-month retention; records between "
                "it and %s can no longer be fetched",
                stream,
                cursor,
                oldest,
            )
        first = oldest
        start = max(start, _midnight(oldest))
        if floor is not None:
            floor = max(floor, _midnight(oldest))
    last = (now + AHEAD_OF_UTC).date()
    windows = cut_windows(stream, first, last, settings.window_days, stop_before)
    return Plan(
        stream=stream,
        mode=mode,
        start=start,
        end=now,
        windows=tuple(windows),
        floor=floor,
        cursor_before=cursor,
    )


def cut_windows(
    stream: str, first: date, last: date, window_days: int, stop_before: datetime | None
) -> list[Window]:
    """Oldest first. A short range is one chain; a long one is cut for parallel fetches."""
    total = (last - first).days + 1
    step = total if total <= SINGLE_WINDOW_MAX_DATES else window_days
    windows = []
    day = first
    while day <= last:
        end = min(day + timedelta(days=step - 1), last)
        windows.append(
            Window(
                stream=stream,
                from_date=day,
                to_date=end,
                stop_before=stop_before,
                covers_until=_midnight(end + timedelta(days=1)) - AHEAD_OF_UTC,
            )
        )
        day = end + timedelta(days=1)
    return windows


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
