"""Paging a run's windows at once: fetch threads advance the windows' chains of pages one
page at a time, in the order the scheduler picks (schedule.py), under the account's one
rate limiter, and tell what each window brought on a bounded queue.

What a window brings: its pages' records (and the records Zoom sent from outside it), in
order, then exactly one end: done (its pages prove it complete), failed (with the error
that ended it) or cancelled (the run stopped, or its stream was aborted, before its last
page). One consumer reads the queue; it holds at most 4 events per fetch thread, so the
pages waiting are bounded whatever the size of the backfill.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .client import CallCounters, ZoomClient
from .schedule import Chain, DateStarts, Scheduler, open_span
from .streams import DateWindow, Stray, Stream, fetch_pages

#: Events the queue holds per fetch thread: enough that a thread rarely waits for the
#: consumer, few enough that the pages waiting stay a small part of a batch.
EVENTS_PER_FETCH_THREAD = 4


@dataclass(frozen=True)
class WindowToFetch:
    """One window of a stream to page, and where its calls are counted."""

    stream: Stream
    index: int  # the window's place in its stream's plan
    window: DateWindow
    counters: CallCounters


@dataclass(frozen=True)
class Records:
    """A page of a window's records and its records outside the window (not both empty)."""

    stream: str
    index: int  # the window's place in its stream's plan
    records: list[object]
    strays: tuple[Stray, ...] = ()


@dataclass(frozen=True)
class WindowDone:
    """The window's last page is in: it can be committed with the batch that holds it."""

    stream: str
    index: int


@dataclass(frozen=True)
class WindowCancelled:
    """The run is stopping (or the stream failed): the window was not fetched to its end."""

    stream: str
    index: int


@dataclass(frozen=True)
class WindowFailed:
    """The window's fetch raised `error`; its stream stops there."""

    stream: str
    index: int
    error: BaseException


#: A fetch thread's event. Each window ends with exactly one of the last three.
WindowEvent = Records | WindowDone | WindowCancelled | WindowFailed


def in_plan_order(windows: Iterable[WindowToFetch]) -> list[WindowToFetch]:
    """Oldest windows first, alternating streams, so both streams advance together."""
    return sorted(windows, key=lambda w: (w.window.from_date, w.stream.name))


class Fetcher:
    """The fetch threads of one run over `windows`: `start`, read `events` until every
    window has ended, then `join`. `stop` (shared with the caller) cancels every window
    not yet paged to its end; `abort` cancels one stream's."""

    def __init__(
        self,
        client: ZoomClient,
        windows: Iterable[WindowToFetch],
        *,
        category_type: str,
        max_pages: int,
        concurrency: int,
        rate: float,
        stop: threading.Event,
    ) -> None:
        date_starts = DateStarts()  # one account, one zone: learned by every chain
        chains = [
            Chain(w.stream, w.index, w.window, w.counters, order, date_starts=date_starts)
            for order, w in enumerate(in_plan_order(windows))
        ]
        self.client = client
        self.category_type = category_type
        self.max_pages = max_pages
        self.stop = stop
        self.windows = len(chains)
        self.events: queue.Queue[WindowEvent] = queue.Queue(
            maxsize=concurrency * EVENTS_PER_FETCH_THREAD
        )
        self.scheduler = Scheduler(
            chains, max_in_flight=concurrency, open_limit=open_span(concurrency), rate=rate
        )
        self._aborted: set[str] = set()
        self._threads = [
            threading.Thread(target=self._fetch, name=f"zoom-fetch-{n}", daemon=True)
            for n in range(min(concurrency, len(chains)))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def abort(self, stream: str) -> None:
        """Page no more of `stream`: its windows end cancelled after the page in flight
        (a later window cannot move the stream's cursor past a failed one)."""
        self._aborted.add(stream)

    def end_game(self) -> bool:
        """Every window is open and little work is left (`Scheduler.end_game`)."""
        return self.scheduler.end_game()

    def _fetch(self) -> None:
        """Advance chains one page at a time; each chain ends with exactly one terminal
        event (done, cancelled or failed)."""
        waited = getattr(self.client, "thread_waited", lambda: 0.0)
        while (chain := self.scheduler.take()) is not None:
            stream, index = chain.stream.name, chain.index
            finished, seconds = True, None
            try:
                if self.stop.is_set() or stream in self._aborted:
                    self.events.put(WindowCancelled(stream, index))
                    continue
                if chain.pages is None:
                    chain.pages = fetch_pages(
                        self.client,
                        chain.stream,
                        chain.window,
                        self.category_type,
                        chain.counters,
                        max_pages=self.max_pages,
                    )
                started, waited_before = time.monotonic(), waited()
                page = next(chain.pages, None)
                if page is None:
                    self.events.put(WindowDone(stream, index))
                    continue
                seconds = time.monotonic() - started - (waited() - waited_before)
                chain.observe(page)
                if page.records or page.strays:
                    self.events.put(Records(stream, index, page.records, page.strays))
                if page.failure is not None:  # the window ends here, unproven
                    self.events.put(WindowFailed(stream, index, page.failure))
                    continue
                if not page.next_page_token:
                    self.events.put(WindowDone(stream, index))
                    continue
                finished = False
            except BaseException as exc:  # every failure is reported; never lost in a thread
                self.events.put(WindowFailed(stream, index, exc))
            finally:
                self.scheduler.release(chain, finished=finished, seconds=seconds)
