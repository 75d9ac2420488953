"""Which window's next page goes out next, and how many pages are out at once: the
order in which a run pages its windows, from Zoom's timing rules.

Zoom pages a window strictly in sequence (next_page_token), so each window is a chain of
pages with at most one in flight, and its page tokens expire after 15 minutes. The rate
limit is the account's, shared by every chain: the scheduler keeps it busy to the last
call (no long chain paging alone at the end) while the open windows stay within a span
of days (every batch, and every file a MERGE writes, spans the open windows' days). The
fetch threads (fetcher.py) ask it for chains; it knows nothing of batches or tables.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time

from ..tables import UTC
from .client import CallCounters
from .rules import AHEAD_OF_UTC, BEHIND_UTC, PAGE_SIZE
from .streams import DateWindow, Page, Stream

#: The end game: every window is open and the open ones hold fewer calls than the rate
#: limit makes in this time (the job then merges more often, so that the merge after the
#: last page, which the run waits for, is a small one).
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


class DateStarts:
    """Where the account's dates begin against UTC midnight, learned from the chains'
    first pages and shared by a run's chains (thread-safe).

    Zoom reads `from`/`to` in the account's zone (undocumented), so a date's records
    begin at its local midnight: before the UTC one east of UTC (Asia/Kolkata: 5 h 30
    min), after it west of UTC. Taken as UTC's, east of UTC every chain's estimate fell
    to nothing with about a fifth of a day still to fetch. A window's newest record
    comes before the local midnight that ends its last date, so each first page bounds
    the zone's lead on UTC from above; the tightest bound of any chain (a busy day's
    newest record is minutes from its end) is the lead, and the estimated start of a
    date is never later than its true start: estimates err on the side of work left.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The smallest bound seen: until a first page, the furthest any zone leads.
        self._lead = AHEAD_OF_UTC

    def bound(self, window: DateWindow, newest: datetime) -> None:
        """`newest`, the newest record of `window`'s first page, came before its end."""
        end = datetime.combine(window.to_date + timedelta(days=1), clock_time(), tzinfo=UTC)
        with self._lock:
            self._lead = max(-BEHIND_UTC, min(self._lead, end - newest))

    def start(self, day: date) -> datetime:
        """The instant `day` begins in the account's zone, at the latest."""
        with self._lock:
            lead = self._lead
        return datetime.combine(day, clock_time(), tzinfo=UTC) - lead


@dataclass(eq=False)
class Chain:
    """One window's chain of pages. Zoom pages a window strictly in sequence
    (next_page_token), so a chain has at most one page in flight; any fetch thread may
    take its next page."""

    stream: Stream
    index: int  # the window's place in its stream's plan
    window: DateWindow
    counters: CallCounters  # the stream's calls
    order: int  # place in the run's plan (oldest first)
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
    #: Shared by a run's chains.
    date_starts: DateStarts = field(default_factory=DateStarts)

    def observe(self, page: Page) -> None:
        """Update the estimate of pages still to fetch from the page just received.

        Zoom's `total_records`, when a response carries it, is exact. Otherwise the
        records come newest first, so the time span fetched so far and the time left down
        to the window's start (its first date's midnight in the account's zone,
        `DateStarts`) give the density and what remains of the window."""
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
        if self.first_newest is None and page.newest is not None:
            self.first_newest = page.newest
            self.date_starts.bound(window, page.newest)
        if page.oldest is None or self.first_newest is None:
            self.remaining = 1.0
            return
        low = self.date_starts.start(window.from_date)
        if window.stop_before is not None:
            low = max(low, window.stop_before)
        fetched_span = (self.first_newest - page.oldest).total_seconds()
        left = max(0.0, (page.oldest - low).total_seconds())
        if fetched_span <= 0:
            self.remaining = 1.0
            return
        self.remaining = self.records * left / fetched_span / PAGE_SIZE
        self.fraction_left = left / (left + fetched_span)


class Scheduler:
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
    - Two kinds of chain go before that rule, each because it would otherwise page
      alone at the end while the limiter idles. First a critical chain: one whose
      pages, one at a time, take longer than all the work left (waiting windows at the
      typical first estimate) at the rate limit; a busy day's small share left can be
      more pages than the others hold together. Then, while windows wait beyond the
      span, the oldest open one, which keeps them waiting: evened out with the others
      it finished with them, so the plan's last windows opened near the end and their
      longest chains paged alone (issue 22: about four seconds of the Pro shape's end
      in Asia/Kolkata).
    - In flight: enough pages for the rate limit at the latency seen (Little's law:
      rate × seconds per page, plus slack), at most `max_in_flight`. More would only
      slow the longest chains down by sharing the rate among more of them.
    - A chain that has waited `STALE_CHAIN_SECONDS` goes first (page tokens expire).
    """

    def __init__(
        self, chains: list[Chain], *, max_in_flight: int, open_limit: int, rate: float
    ) -> None:
        self._cond = threading.Condition()
        self._waiting = list(reversed(chains))  # pop() gives the oldest
        self._ready: list[Chain] = []
        self._opened: set[Chain] = set()
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

    def take(self) -> Chain | None:
        """The next chain to advance by one page; None when every chain is finished."""
        with self._cond:
            while True:
                while self._waiting and self._should_open():
                    chain = self._waiting.pop()
                    self._ready.append(chain)
                    self._opened.add(chain)
                    self._open += 1
                if self._ready and self._in_flight < self.target():
                    key = self._priority(
                        time.monotonic(), self._span_holder(), self._critical_pages()
                    )
                    chain = max(self._ready, key=key)
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
            return self._open_work(unknown=0.0) < self._rate * END_GAME_SECONDS

    def _typical_first_pages(self) -> float:
        """The pages a window's first estimate gave, on average so far (1 before any)."""
        return sum(self._first_pages) / len(self._first_pages) if self._first_pages else 1.0

    def _open_work(self, unknown: float) -> float:
        """Pages left in the open windows; a chain without an estimate yet counts `unknown`."""
        return sum(unknown if math.isinf(c.remaining) else c.remaining for c in self._opened)

    def _span_holder(self) -> Chain | None:
        """The oldest open window while it keeps waiting windows shut (the span), or None."""
        if not self._waiting or not self._opened:
            return None
        oldest = min(self._opened, key=lambda chain: chain.order)
        if self._waiting[-1].order - oldest.order >= self._open_limit:
            return oldest
        return None

    def _critical_pages(self) -> float:
        """Pages left above which a chain is critical: paged one page at a time, it would
        still be paging when all the work left, at the rate limit, is done. A chain's
        page comes back after its latency, or after the pages in flight before it have
        left the limiter, whichever is later."""
        if self._seconds_per_page is None:
            return math.inf
        work = self._open_work(unknown=0.0) + self._typical_first_pages() * len(self._waiting)
        cycle = max(self._seconds_per_page, self.target() / self._rate)
        return work / self._rate / cycle

    def _should_open(self) -> bool:
        if self._span_holder() is not None:
            return False  # beyond the span: wait for the oldest open window
        if self._open < max(2, self._max):
            return True
        if self._open >= self._open_limit:
            return False
        work = self._open_work(unknown=self._typical_first_pages())
        return work < self._rate * OPEN_HORIZON_SECONDS

    def release(self, chain: Chain, *, finished: bool, seconds: float | None) -> None:
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
    def _priority(now: float, holder: Chain | None, critical: float) -> Callable[[Chain], tuple]:
        def key(chain: Chain) -> tuple:
            started = chain.pages is not None
            stale = started and now - chain.last_page_at > STALE_CHAIN_SECONDS
            return (
                chain.ending or stale,
                not started,
                chain.remaining >= critical,
                chain is holder,
                chain.fraction_left,
                chain.remaining,
                -chain.order,
            )

        return key
