"""One client-side rate limiter per Zoom account, shared by every thread and stream.

Zoom counts requests per account per second (Heavy APIs: 10/s Pro, 40/s Business+) across
every app on the account. A limiter that lets a burst of N through at the start of its own
second and then blocks (a fixed-window or token-bucket limiter, which is what libraries
such as pyrate-limiter provide) can put up to 2N calls inside one of Zoom's seconds when
the two clocks are not aligned. So this limiter *paces*: calls leave evenly spaced, one
every 1/rate seconds, and any one-second span sees at most `rate` of them. It also needs
an operation those libraries lack: after a 429 everyone holds back for `Retry-After`.
Both fit in a few lines around a lock, so it is written here rather than adapted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import ClassVar

log = logging.getLogger(__name__)

#: Requests reach Zoom a little later than they leave, by varying amounts (thread
#: scheduling, connection reuse, network). Pacing 3% slower than the limit keeps a call
#: up to 30 ms late followed by a punctual one from landing `rate + 1` calls in one of
#: Zoom's seconds. It was 5%, which alone capped a backfill at 95% of the limit. Issue
#: 14 measured how late calls leave after their slot (`benchmarks/trace.py`): p99 19 ms
#: on a 2-core machine at load 11; under heavier load the tail reaches 100s of ms, which
#: no margin of a few percent covers and which Zoom's per-second bucket absorbs anyway.
ARRIVAL_JITTER_ALLOWANCE = 0.03


class RateLimiter:
    """Thread-safe pacing limiter: `acquire()` blocks until this caller's slot comes up."""

    _shared: ClassVar[dict[str, RateLimiter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        rate_per_second: float,
        *,
        jitter_allowance: float = ARRIVAL_JITTER_ALLOWANCE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be positive, got {rate_per_second!r}")
        self._jitter_allowance = jitter_allowance
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = clock()  # the earliest instant the next call may leave
        self._interval = 0.0
        self.set_rate(rate_per_second)

    @property
    def rate_per_second(self) -> float:
        return self._rate

    def set_rate(self, rate_per_second: float) -> None:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be positive, got {rate_per_second!r}")
        with self._lock:
            self._rate = float(rate_per_second)
            self._interval = (1.0 + self._jitter_allowance) / self._rate

    def acquire(self) -> float:
        """Wait for the next free slot; returns the seconds waited.

        Slots are handed out in call order under the lock and slept for outside it, so a
        waiting thread never holds up the bookkeeping of the others.
        """
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def penalise(self, seconds: float) -> None:
        """Nobody's next call leaves for `seconds` (after a per-second 429 from Zoom)."""
        if seconds <= 0:
            return
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + seconds)

    @classmethod
    def for_account(cls, account_id: str, rate_per_second: float) -> RateLimiter:
        """The one limiter of this process for a Zoom account (Zoom's limits are per
        account, so both streams and every thread must share it). A later call with a
        different rate changes the rate of the shared limiter."""
        with cls._shared_lock:
            limiter = cls._shared.get(account_id)
            if limiter is None:
                limiter = cls._shared[account_id] = cls(rate_per_second)
                return limiter
        if limiter.rate_per_second != rate_per_second:
            log.info(
                "rate limit for the Zoom account changed from %g/s to %g/s",
                limiter.rate_per_second,
                rate_per_second,
            )
            limiter.set_rate(rate_per_second)
        return limiter

    def __repr__(self) -> str:
        return f"RateLimiter({self._rate:g}/s)"
