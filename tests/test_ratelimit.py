"""The shared pacing limiter: even spacing, no bursts, penalties, one per account."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from zoom_ingest.zoom.ratelimit import RateLimiter


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def paced(rate: float, clock: FakeClock) -> RateLimiter:
    return RateLimiter(rate, jitter_allowance=0.0, clock=clock, sleep=clock.sleep)


def test_calls_leave_evenly_spaced_first_one_at_once() -> None:
    clock = FakeClock()
    limiter = paced(10, clock)
    leave_times = []
    for _ in range(6):
        limiter.acquire()
        leave_times.append(clock())
    gaps = [b - a for a, b in itertools.pairwise(leave_times)]
    assert leave_times[0] == 1000.0
    assert gaps == pytest.approx([0.1] * 5)


def test_no_burst_after_idle_time() -> None:
    clock = FakeClock()
    limiter = paced(10, clock)
    limiter.acquire()
    clock.sleep(5.0)  # idle: a token bucket would now let a burst through
    waits = [limiter.acquire() for _ in range(4)]
    assert waits[0] == 0.0
    assert waits[1:] == pytest.approx([0.1, 0.1, 0.1])


def test_jitter_allowance_paces_slightly_below_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    start = clock()
    for _ in range(11):
        limiter.acquire()
    # 11 calls span 10 intervals: more than one second, so never 11 in one of Zoom's seconds
    assert clock() - start > 1.0


def test_penalise_holds_back_every_caller() -> None:
    clock = FakeClock()
    limiter = paced(10, clock)
    limiter.acquire()
    limiter.penalise(2.0)
    assert limiter.acquire() == pytest.approx(2.0)
    assert limiter.acquire() == pytest.approx(0.1)
    limiter.penalise(0)  # no-op
    assert limiter.acquire() == pytest.approx(0.1)


def test_concurrent_callers_get_distinct_slots() -> None:
    # The clock never moves and sleeping is free: every caller's wait is its slot offset,
    # so a race in the bookkeeping would show as two callers with the same slot.
    clock = FakeClock()
    limiter = RateLimiter(20, jitter_allowance=0.0, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait(timeout=5)
        for _ in range(25):
            wait = limiter.acquire()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(waits) == pytest.approx([i * 0.05 for i in range(200)])


def test_real_clock_paces_threads() -> None:
    limiter = RateLimiter(50)
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait(timeout=5)
        for _ in range(5):
            limiter.acquire()

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    # 20 calls at 50/s (+5%) cannot finish before 19 intervals have passed
    assert time.monotonic() - start >= 19 * (1.05 / 50) - 0.01


def test_one_shared_limiter_per_account() -> None:
    a1 = RateLimiter.for_account("acct-ratelimit-A", 10)
    a2 = RateLimiter.for_account("acct-ratelimit-A", 10)
    b = RateLimiter.for_account("acct-ratelimit-B", 10)
    assert a1 is a2
    assert a1 is not b
    a3 = RateLimiter.for_account("acct-ratelimit-A", 40)
    assert a3 is a1
    assert a1.rate_per_second == 40


def test_bad_rate_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
