"""The simulator: one local Zoom account served over HTTP, its lifecycle and its public API.

`Simulator` composes the pieces, each in a module of its own: the generated records
(data), the HTTP server (http), the token endpoint and access tokens (oauth), the
rate limits and call stats (ratelimits), page tokens and newest-first pages (paging),
the endpoint table and request dispatch (routes), and switchable faults (faults).
Here are only its parameters, start/stop, what a client needs to reach it
(`connection()`: URLs and credentials as plain strings), and what tests and benchmarks
call. Like every module of the simulator it imports nothing of zoom_ingest but Zoom's
rules: whoever points a client at it makes the client's settings from `connection()`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any

from .data import ACTIVITY_LOGS, OPERATION_LOGS, STREAMS, UTC, Dataset, day_bounds
from .faults import TOKEN_PATH, FaultSet
from .http import LoopbackServer, Reply
from .oauth import DEFAULT_SCOPES, AccessTokens, Credentials
from .paging import Pager, PageTokens
from .ratelimits import RateLimits, Stats
from .routes import ENDPOINTS, Routes

#: Generated days kept serialised in memory; older ones are generated again when needed.
DEFAULT_CACHE_BYTES = 256 * 2**20


class Simulator:
    """A local Zoom API. ``with Simulator(...) as sim:`` serves it on 127.0.0.1."""

    def __init__(
        self,
        seed: int = 7,
        *,
        days: float = 30,
        activity_per_day: float = 200,
        operation_per_day: float = 40,
        now: datetime | None = None,
        account_utc_offset_hours: float = 0,
        qps_limit: float | None = None,
        daily_limit: int | None = None,
        latency: float = 0.0,
        token_ttl: float = 3600,
        page_token_ttl: float = 900,
        scopes: Iterable[str] | str | None = None,
        late_fraction: float = 0.0,
        duplicate_across_pages: bool = False,
        port: int = 0,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        client_secret: str | None = None,
        day_spread: float = 0.0,
    ) -> None:
        """`client_secret`: use this fake instead of the one derived from the seed (tests
        that look for it in logs and tables want one that is easy to recognise).
        `day_spread`: 0 gives every day the same mean volume; above 0, days are uneven
        (quiet weekends, a seeded log-normal spread of this sigma), as real accounts are."""
        _check(days >= 0, "days must not be negative")
        _check(activity_per_day >= 0 and operation_per_day >= 0, "per_day must not be negative")
        _check(-12 <= account_utc_offset_hours <= 14, "account_utc_offset_hours is -12..14")
        _check(qps_limit is None or qps_limit > 0, "qps_limit must be positive or None")
        _check(daily_limit is None or daily_limit >= 0, "daily_limit must be >= 0 or None")
        _check(latency >= 0 and token_ttl > 0 and page_token_ttl > 0, "bad latency or ttl")
        _check(0.0 <= late_fraction <= 1.0, "late_fraction must be between 0 and 1")
        _check(0 <= port <= 65535, "port must be 0..65535")
        _check(0.0 <= day_spread <= 3.0, "day_spread must be between 0 and 3")
        if now is None:
            now = datetime.now(UTC)
        _check(now.tzinfo is not None, "now must be an aware datetime")
        self.seed = seed
        self.now = now.astimezone(UTC)
        self.start_time = self.now - timedelta(days=days)
        self.account_utc_offset_hours = account_utc_offset_hours
        self.latency = latency
        self.token_ttl = token_ttl
        self.duplicate_across_pages = duplicate_across_pages
        if isinstance(scopes, str):
            scopes = scopes.split()
        self.scopes = frozenset(DEFAULT_SCOPES if scopes is None else scopes)
        self._started_at = time.monotonic()

        credentials = Credentials.from_seed(seed)
        self.account_id = credentials.account_id
        self.client_id = credentials.client_id
        self.client_secret = credentials.client_secret if client_secret is None else client_secret
        _check(bool(self.client_secret), "client_secret must not be empty")

        self.faults = FaultSet(seed)
        self.stats = Stats()
        self._data = Dataset(
            seed=seed,
            start=self.start_time,
            now=self.now,
            per_day={ACTIVITY_LOGS: activity_per_day, OPERATION_LOGS: operation_per_day},
            offset_hours=account_utc_offset_hours,
            late_fraction=late_fraction,
            cache_bytes=cache_bytes,
            day_spread=day_spread,
        )
        self._limits = RateLimits(qps_limit, daily_limit, lambda: self.clock().date())
        self._access = AccessTokens()
        self._pages = PageTokens(page_token_ttl)
        self._routes = Routes(
            self,
            self._access,
            self._limits,
            Pager(self._data, self._pages, account_utc_offset_hours),
        )
        self._port = port
        self._server: LoopbackServer | None = None

    # ---- lifecycle

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._server = LoopbackServer(self._port, self.handle)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running; use start() or `with`")
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def oauth_url(self) -> str:
        return f"{self.base_url}{TOKEN_PATH}"

    def connection(self) -> dict[str, str]:
        """Where this simulator answers and the app credentials it accepts, as plain
        strings under Zoom's names for a Server-to-Server OAuth app: api_url, oauth_url,
        account_id, client_id, client_secret. Its client secret is a simulator-only fake:
        handing it to a client is the point."""
        return {
            "api_url": self.api_url,
            "oauth_url": self.oauth_url,
            "account_id": self.account_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"Simulator(seed={self.seed}, account_id={self.account_id!r}, {where})"

    # ---- what tests and benchmarks use

    def clock(self) -> datetime:
        """The simulator's current time: `now` at construction, then real time passing."""
        return self.now + timedelta(seconds=time.monotonic() - self._started_at)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta`: the account's generated history goes on
        until the new `now` (seeded per day, as if the simulator had started later)."""
        _check(delta >= timedelta(0), "time only moves forward")
        self.now += delta
        self._data.extend_to(self.now)

    def ground_truth(
        self, stream: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Every record the API serves now, newest first, with start <= time < end."""
        _check(stream in STREAMS, f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
        return self._data.ground_truth(stream, _ceil_second(start), _ceil_second(end))

    def records_between(self, path: str, from_date: date, to_date: date) -> int:
        """How many records a `from`/`to` request of `path` (as in `stats.requests`,
        e.g. /v2/report/activities; category `all`) pages through now."""
        endpoint = ENDPOINTS[path]
        lo = day_bounds(from_date, self.account_utc_offset_hours)[0]
        hi = day_bounds(to_date, self.account_utc_offset_hours)[1]
        return self._data.count(endpoint.stream, lo, hi)

    def add_records(self, stream: str, records: Iterable[Mapping[str, Any] | Any]) -> None:
        """New or late-arriving records, served from now on exactly as given (any JSON
        value: a non-object or one without a valid `time` is served at the current time)."""
        _check(stream in STREAMS, f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
        self._data.add_records(stream, list(records), math.floor(self.clock().timestamp()))

    def release_late(self) -> None:
        """Late records (``late_fraction``) become visible."""
        self._data.release_late()

    def revoke_tokens(self) -> None:
        """Every access token issued so far now gets 401 code 124."""
        self._access.revoke_all()

    def issued_tokens(self) -> list[str]:
        """Every access token the token endpoint has issued, oldest first (for tests that
        check no token leaks into logs, errors or tables)."""
        return self._access.issued()

    # ---- requests

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Reply:
        """Answer one HTTP request (the server's threads call this)."""
        return self._routes.handle(method, target, authorization, body)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _ceil_second(value: datetime | None) -> int | None:
    if value is None:
        return None
    _check(value.tzinfo is not None, "start/end must be aware datetimes")
    return math.ceil(value.timestamp())
