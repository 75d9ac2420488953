"""Rate limits: Zoom's per-second and daily limits, with its headers and 429 bodies, and call stats.

Report endpoints are in Zoom's Heavy category: a per-second limit (a token bucket whose
burst is the limit) and a daily count that resets at 00:00 UTC. Every API answer
carries ``X-RateLimit-Category``, ``-Limit`` and ``-Remaining``; a refused call gets a
429 with ``X-RateLimit-Type`` and ``Retry-After`` (1 second for QPS, the next UTC
midnight for the daily limit). `Stats` counts what the simulator was asked.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

from .http import Reply, json_reply

#: Python 3.10 has no datetime.UTC.
UTC = timezone.utc

#: X-RateLimit-Limit when no daily limit is set: the Business+ Heavy daily quota.
NOMINAL_DAILY_LIMIT = 60_000

QPS_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
DAILY_MESSAGE = (
    "You have reached the maximum daily rate limit for this API. "
    "Refer to the response header for details on when you can make another request."
)


class RateLimits:
    """Zoom's Heavy-category limits for one account: a token bucket (burst = the
    per-second limit) and a daily count that resets at 00:00 UTC."""

    def __init__(
        self, qps_limit: float | None, daily_limit: int | None, today: Callable[[], date]
    ) -> None:
        self._qps = qps_limit
        self._daily = daily_limit
        self._today = today  # the simulator's UTC date
        self._lock = threading.Lock()
        self._capacity = max(1.0, qps_limit or 0.0)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._day = today()
        self._used = 0

    def admit(self) -> str | None:
        """Counts the call, or says which limit refuses it ("qps" or "daily")."""
        with self._lock:
            self._roll_day()
            if self._daily is not None and self._used >= self._daily:
                return "daily"
            if self._qps is not None:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._qps)
                self._stamp = now
                if self._tokens < 1.0:
                    return "qps"
                self._tokens -= 1.0
            self._used += 1
            return None

    def headers(self) -> list[tuple[str, str]]:
        with self._lock:
            self._roll_day()
            limit = self._daily if self._daily is not None else NOMINAL_DAILY_LIMIT
            return [
                ("X-RateLimit-Category", "Heavy"),
                ("X-RateLimit-Limit", str(limit)),
                ("X-RateLimit-Remaining", str(max(0, limit - self._used))),
            ]

    def _roll_day(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._used = today, 0


def too_many(which: str, now: datetime) -> Reply:
    """Zoom's 429 for the limit `which` ("qps" or "daily") refused at `now`."""
    if which == "qps":
        headers = [("X-RateLimit-Type", "QPS"), ("Retry-After", "1")]
        message = QPS_MESSAGE
    else:
        headers = [
            ("X-RateLimit-Type", "Daily-limit"),
            ("Retry-After", next_utc_midnight(now)),
        ]
        message = DAILY_MESSAGE
    return json_reply(429, {"code": 429, "message": message}, *headers)


def next_utc_midnight(now: datetime) -> str:
    return f"{(now.astimezone(UTC).date() + timedelta(days=1)).isoformat()}T00:00:00Z"


class Stats:
    """What the simulator was asked. Thread-safe; the properties return copies.

    calls / calls_by_path / requests count API calls (every answer, errors and resets
    included; a reset is recorded with status 0); token requests are counted apart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._calls = 0
            self._by_path: Counter[str] = Counter()
            self._token_requests = 0
            self._rate_limited = 0
            self._requests: list[tuple[str, dict[str, str], int]] = []

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def calls_by_path(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_path)

    @property
    def token_requests(self) -> int:
        with self._lock:
            return self._token_requests

    @property
    def rate_limited(self) -> int:
        with self._lock:
            return self._rate_limited

    @property
    def requests(self) -> list[tuple[str, dict[str, str], int]]:
        with self._lock:
            return [(path, dict(params), status) for path, params, status in self._requests]

    def record_call(self, path: str, params: dict[str, str], status: int) -> None:
        with self._lock:
            self._calls += 1
            self._by_path[path] += 1
            self._requests.append((path, params, status))
            self._rate_limited += status == 429

    def record_token_request(self, status: int) -> None:
        with self._lock:
            self._token_requests += 1
            self._rate_limited += status == 429

    def __repr__(self) -> str:
        return (
            f"Stats(calls={self.calls}, token_requests={self.token_requests}, "
            f"rate_limited={self.rate_limited}, calls_by_path={self.calls_by_path})"
        )
