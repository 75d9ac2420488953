"""The simulator: Zoom's S2S OAuth token endpoint and both report endpoints over real HTTP.

Behaviour follows the API contract page: Basic-auth token requests, bearer tokens that
expire or get revoked (401 code 124), scopes (400 code 4711), date validation (400 code
300), newest-first paging with expiring next_page_tokens, Heavy-category rate limits
with Zoom's headers and 429 bodies, and faults switched on by tests.

The server is a ThreadingHTTPServer on 127.0.0.1 speaking HTTP/1.1 keep-alive, so a
pooled ``requests.Session`` reuses its connections. It logs nothing but its own bugs.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import contextlib
import hmac
import json
import logging
import math
import random
import re
import secrets
import socket
import string
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from ..settings import Secret, Settings
from ..tables import UTC
from .data import (
    ACTIVITY_LOGS,
    CATEGORY_FILTERS,
    OPERATION_LOGS,
    STREAMS,
    Dataset,
    category_codes,
    day_bounds,
)
from .faults import (
    ARRIVAL_KINDS,
    HTTP_ERROR_KINDS,
    PAGE_KINDS,
    PAGE_TOKEN_KINDS,
    TOKEN_PATH,
    Fault,
    FaultSet,
)

log = logging.getLogger(__name__)

ACTIVITY_SCOPE = "report:read:user_activities:admin"
OPERATION_SCOPE = "report:read:operation_logs:admin"
CLASSIC_SCOPE = "report:read:admin"
DEFAULT_SCOPES = (ACTIVITY_SCOPE, OPERATION_SCOPE)
MAX_PAGE_SIZE = 300
DEFAULT_PAGE_SIZE = 30
RETENTION_MONTHS = 6
#: X-RateLimit-Limit when no daily limit is set: the Business+ Heavy daily quota.
NOMINAL_DAILY_LIMIT = 60_000
#: Generated days kept serialised in memory; older ones are generated again when needed.
DEFAULT_CACHE_BYTES = 256 * 2**20

QPS_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
DAILY_MESSAGE = (
    "You have reached the maximum daily rate limit for this API. "
    "Refer to the response header for details on when you can make another request."
)
PAGE_TOKEN_MESSAGE = "The next page token is invalid or expired."


@dataclass(frozen=True)
class Endpoint:
    stream: str
    scope: str
    records_key: str


ENDPOINTS: Mapping[str, Endpoint] = {
    "/v2/report/activities": Endpoint(ACTIVITY_LOGS, ACTIVITY_SCOPE, "activity_logs"),
    "/v2/report/operationlogs": Endpoint(OPERATION_LOGS, OPERATION_SCOPE, "operation_logs"),
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


#: Close the connection without an answer.
RESET = Reply(0, b"")

JSON_TYPE = "application/json;charset=UTF-8"


def json_reply(status: int, payload: object, *headers: tuple[str, str]) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, body, [("Content-Type", JSON_TYPE), *headers])


class ApiError(Exception):
    """A Zoom error answer: HTTP status, Zoom code and message."""

    def __init__(self, status: int, code: int, message: str, *headers: tuple[str, str]) -> None:
        super().__init__(message)
        self.reply = json_reply(status, {"code": code, "message": message}, *headers)


# --------------------------------------------------------------------------- bookkeeping


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


class AccessTokens:
    """Issued bearer tokens: several valid at once, each with its scopes and expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[frozenset[str], float]] = {}
        #: Every token ever issued, in order (expired and revoked ones too), so tests can
        #: search logs, errors and tables for any of them.
        self._issued: list[str] = []

    def issue(self, scopes: frozenset[str], ttl: float) -> str:
        token = "sim." + secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (scopes, now + ttl)
            self._issued.append(token)
        return token

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def scopes(self, token: str | None) -> frozenset[str] | None:
        """The token's scopes, or None when it is unknown, expired or revoked."""
        if not token:
            return None
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()


@dataclass(frozen=True)
class Chain:
    """What a next_page_token stands for: the query and where the next page starts."""

    path: str
    from_date: date
    to_date: date
    category: str
    page_size: int
    after_key: int | None  # order key of the last record served; None: from the top
    last_record: bytes | None  # its JSON, for pages that repeat it


class PageTokens:
    """Opaque next_page_tokens; each lives `ttl` seconds and may be used again meanwhile
    (a client retrying a failed page sends the same one)."""

    _ALPHABET = string.ascii_letters + string.digits

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._chains: dict[str, tuple[Chain, float]] = {}
        self._issued = 0

    def issue(self, chain: Chain) -> str:
        token = "".join(secrets.choice(self._ALPHABET) for _ in range(35))
        with self._lock:
            now = time.monotonic()
            self._issued += 1
            if self._issued % 1024 == 0:
                self._chains = {t: v for t, v in self._chains.items() if v[1] > now}
            self._chains[token] = (chain, now + self._ttl)
        return token

    def get(self, token: str) -> Chain | None:
        with self._lock:
            found = self._chains.get(token)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def drop(self, token: str) -> None:
        with self._lock:
            self._chains.pop(token, None)


@dataclass(frozen=True)
class Query:
    from_date: date
    to_date: date
    page_size: int
    category: str
    page_token: str | None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later, clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def tracking_id() -> str:
    return f"v=2.0;clid=us06;rid=WEB_{secrets.token_hex(16)}"


def next_utc_midnight(now: datetime) -> str:
    return f"{(now.astimezone(UTC).date() + timedelta(days=1)).isoformat()}T00:00:00Z"


# --------------------------------------------------------------------------- the simulator


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

        credentials = _Credentials.from_seed(seed)
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
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # ---- lifecycle

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._server = _Server(("127.0.0.1", self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"zoom-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:  # keep-alive clients must not reach a stopped server
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

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
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def oauth_url(self) -> str:
        return f"{self.base_url}{TOKEN_PATH}"

    def settings(self, **changes: Any) -> Settings:
        """Settings that point the job at this simulator (its URLs and credentials),
        with `changes` applied on top."""
        return Settings(
            account_id=self.account_id,
            client_id=self.client_id,
            client_secret=Secret(self.client_secret),
            api_url=self.api_url,
            oauth_url=self.oauth_url,
        ).with_changes(**changes)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"Simulator(seed={self.seed}, account_id={self.account_id!r}, {where})"

    # ---- what tests and benchmarks use

    def clock(self) -> datetime:
        """The simulator's current time: `now` at construction, then real time passing."""
        return self.now + timedelta(seconds=time.monotonic() - self._started_at)

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
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = _single_values(parts.query)
        if path == TOKEN_PATH:
            reply = self._token_request(method, query, body, authorization)
            self.stats.record_token_request(reply.status)
            return reply
        reply = self._api_call(method, path, query, authorization)
        self.stats.record_call(path, query, reply.status)
        return reply

    def _token_request(
        self, method: str, query: dict[str, str], body: bytes, authorization: str | None
    ) -> Reply:
        headers = [("x-zm-trackingid", tracking_id())]
        fault = self.faults.take(ARRIVAL_KINDS, TOKEN_PATH)
        if fault is not None:
            early = self._arrival_fault(fault)
            if early is not None:
                return early if early is RESET else _with_headers(early, headers)
        reply = _with_headers(self._issue_token(method, query, body, authorization), headers)
        if reply.status == 200 and self.faults.take(PAGE_KINDS, TOKEN_PATH) is not None:
            reply = _truncated(reply)
        return reply

    def _issue_token(
        self, method: str, query: dict[str, str], body: bytes, authorization: str | None
    ) -> Reply:
        if method != "POST":
            return json_reply(405, {"reason": "Method Not Allowed", "error": "invalid_request"})
        client_id, client_secret = _basic_credentials(authorization)
        if not (
            hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        ):
            return json_reply(
                400, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
            )
        form = {**query, **_single_values(body.decode("utf-8", "replace"))}
        if form.get("grant_type") != "account_credentials":
            return json_reply(
                400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"}
            )
        if not form.get("account_id"):
            return json_reply(
                400,
                {"reason": "Invalid request : Missing account_id.", "error": "invalid_request"},
            )
        if form["account_id"] != self.account_id:
            return json_reply(
                400,
                {"reason": "Invalid request : Account does not exist.", "error": "invalid_request"},
            )
        token = self._access.issue(self.scopes, self.token_ttl)
        return json_reply(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(self.token_ttl),
                "scope": " ".join(sorted(self.scopes)),
                "api_url": self.base_url,
            },
        )

    def _api_call(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> Reply:
        if self.latency:
            time.sleep(self.latency)
        try:
            fault = self.faults.take(ARRIVAL_KINDS, path)
            reply = self._arrival_fault(fault) if fault is not None else None
            if reply is None:
                reply = self._report(method, path, query, authorization)
        except ApiError as error:
            reply = error.reply
        if reply is RESET:
            return reply
        return _with_headers(reply, [("x-zm-trackingid", tracking_id()), *self._limits.headers()])

    def _arrival_fault(self, fault: Fault) -> Reply | None:
        """The answer a fault gives instead of the real one, or None to go on."""
        kind = fault.kind
        if kind == "reset":
            return RESET
        if kind in HTTP_ERROR_KINDS:
            status = int(kind.removeprefix("http_"))
            message = {500: "Internal Server Error", 502: "Bad Gateway"}.get(
                status, "Service Unavailable"
            )
            return json_reply(status, {"code": status, "message": message})
        if kind == "slow":
            time.sleep(fault.delay)
        elif kind == "qps_429":
            return self._too_many("qps")
        elif kind == "daily_429":
            return self._too_many("daily")
        elif kind == "token_revoked":
            self.revoke_tokens()
        elif kind == "html_200":
            page = b"<!DOCTYPE html><html><head><title>Zoom</title></head><body>"
            page += b"<h1>We'll be right back</h1></body></html>"
            return Reply(200, page, [("Content-Type", "text/html;charset=UTF-8")])
        return None

    def _too_many(self, which: str) -> Reply:
        if which == "qps":
            headers = [("X-RateLimit-Type", "QPS"), ("Retry-After", "1")]
            message = QPS_MESSAGE
        else:
            headers = [
                ("X-RateLimit-Type", "Daily-limit"),
                ("Retry-After", next_utc_midnight(self.clock())),
            ]
            message = DAILY_MESSAGE
        return json_reply(429, {"code": 429, "message": message}, *headers)

    def _report(
        self, method: str, path: str, params: dict[str, str], authorization: str | None
    ) -> Reply:
        scopes = self._access.scopes(_bearer(authorization))
        if scopes is None:
            raise ApiError(401, 124, "Invalid access token.")
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            raise ApiError(404, 404, "Not Found.")
        if method != "GET":
            raise ApiError(405, 405, f"Method {method} is not allowed.")
        if endpoint.scope not in scopes and CLASSIC_SCOPE not in scopes:
            message = f"Invalid access token, does not contain scopes:[{endpoint.scope}]."
            raise ApiError(400, 4711, message)
        refused = self._limits.admit()
        if refused is not None:
            return self._too_many(refused)
        query = self._validate(endpoint, params)
        chain = self._resolve(path, query)
        if query.page_token and self.faults.take(PAGE_TOKEN_KINDS, path) is not None:
            self._pages.drop(query.page_token)
            raise ApiError(400, 300, PAGE_TOKEN_MESSAGE)
        return self._page(endpoint, path, query, chain)

    def _validate(self, endpoint: Endpoint, params: dict[str, str]) -> Query:
        from_date = _date_param(params, "from")
        to_date = _date_param(params, "to")
        if to_date < from_date:
            raise ApiError(400, 300, "The to date cannot be earlier than the from date.")
        if to_date > add_months(from_date, 1):
            raise ApiError(400, 300, "The date range cannot exceed one month.")
        oldest = add_months(self.clock().date(), -RETENTION_MONTHS)
        if from_date < oldest:
            raise ApiError(
                400, 300, f"Only data from the last 6 months can be queried (from {oldest})."
            )
        size_text = params.get("page_size", "")
        if size_text == "":
            page_size = DEFAULT_PAGE_SIZE
        elif size_text.isdigit() and 1 <= int(size_text) <= MAX_PAGE_SIZE:
            page_size = int(size_text)
        else:
            raise ApiError(400, 300, f"Invalid field: page_size must be 1 to {MAX_PAGE_SIZE}.")
        category = "all"
        if endpoint.stream == OPERATION_LOGS:
            category = params.get("category_type") or "all"
            if category not in CATEGORY_FILTERS:
                raise ApiError(
                    400, 300, f"Invalid field: category_type, one of {', '.join(CATEGORY_FILTERS)}."
                )
        token = params.get("next_page_token") or None
        return Query(from_date, to_date, page_size, category, token)

    def _resolve(self, path: str, query: Query) -> Chain | None:
        """The chain a next_page_token continues (None: the first page)."""
        if query.page_token is None:
            return None
        chain = self._pages.get(query.page_token)
        same_query = chain is not None and (
            chain.path,
            chain.from_date,
            chain.to_date,
            chain.category,
            chain.page_size,
        ) == (path, query.from_date, query.to_date, query.category, query.page_size)
        if not same_query:
            raise ApiError(400, 300, PAGE_TOKEN_MESSAGE)
        return chain

    def _page(self, endpoint: Endpoint, path: str, query: Query, chain: Chain | None) -> Reply:
        lo = day_bounds(query.from_date, self.account_utc_offset_hours)[0]
        hi = day_bounds(query.to_date, self.account_utc_offset_hours)[1]
        after_key = chain.after_key if chain else None
        previous_last = chain.last_record if chain else None
        fault = self.faults.take(PAGE_KINDS, path)
        if fault is not None and fault.kind == "empty_page_with_token":
            records = b""
            token = self._pages.issue(
                Chain(path, query.from_date, query.to_date, query.category, query.page_size,
                      after_key, previous_last)
            )  # fmt: skip
        else:
            page = self._data.page(
                endpoint.stream, lo, hi, category_codes(query.category), after_key, query.page_size
            )
            records = page.body
            if self.duplicate_across_pages and previous_last is not None:
                records = previous_last + (b"," + records if records else b"")
            token = ""
            if page.more:
                token = self._pages.issue(
                    Chain(path, query.from_date, query.to_date, query.category, query.page_size,
                          page.last_key, page.last_record)
                )  # fmt: skip
        head = json.dumps(
            {
                "from": query.from_date.isoformat(),
                "to": query.to_date.isoformat(),
                "page_size": query.page_size,
                "next_page_token": token,
            },
            separators=(",", ":"),
        )
        body = b"".join(
            (head[:-1].encode(), b',"', endpoint.records_key.encode(), b'":[', records, b"]}")
        )
        reply = Reply(200, body, [("Content-Type", JSON_TYPE)])
        if fault is not None and fault.kind == "truncated_json":
            reply = _truncated(reply)
        return reply


@dataclass(frozen=True)
class _Credentials:
    account_id: str
    client_id: str
    client_secret: str

    @classmethod
    def from_seed(cls, seed: int) -> _Credentials:
        """Simulator-only fakes, stable per seed so a restarted simulator takes the same."""
        rng = random.Random(f"{seed}/credentials")
        alphabet = string.ascii_letters + string.digits

        def text(n: int) -> str:
            return "".join(rng.choice(alphabet) for _ in range(n))

        return cls(account_id=text(22), client_id=text(22), client_secret=text(32))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _ceil_second(value: datetime | None) -> int | None:
    if value is None:
        return None
    _check(value.tzinfo is not None, "start/end must be aware datetimes")
    return math.ceil(value.timestamp())


def _single_values(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _date_param(params: dict[str, str], name: str) -> date:
    text = params.get(name, "")
    if _DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ApiError(400, 300, f"Invalid field: {name} is required, a date in yyyy-mm-dd format.")


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _basic_credentials(authorization: str | None) -> tuple[str, str]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret


def _with_headers(reply: Reply, headers: list[tuple[str, str]]) -> Reply:
    return Reply(reply.status, reply.body, [*reply.headers, *headers])


def _truncated(reply: Reply) -> Reply:
    return Reply(reply.status, reply.body[: max(1, len(reply.body) // 2)], reply.headers)


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many windows connect at once in benchmarks

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (and tests stopping the server) are not errors worth a trace.
        if not isinstance(sys.exc_info()[1], OSError):
            log.exception("zoom simulator: error while handling a request")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZoomSimulator/1.0"
    timeout = 120  # idle keep-alive connections are closed eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        # One small write for headers, one for the body: without NODELAY, Nagle and
        # delayed ACKs would add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        simulator = self.server.simulator
        with simulator._connections_lock:
            simulator._connections.add(self.connection)

    def finish(self) -> None:
        simulator = self.server.simulator
        with simulator._connections_lock:
            simulator._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def do_PATCH(self) -> None:
        self._answer("PATCH")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.simulator.handle(
                method, self.path, self.headers.get("Authorization"), body
            )
        except Exception:
            log.exception("zoom simulator: error while answering %s %s", method, self.path)
            reply = json_reply(500, {"code": 500, "message": "Simulator error."})
        if reply is RESET:
            # Linger 0: closing sends a TCP RST, as a crashing proxy does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks make thousands of calls


# --------------------------------------------------------------------------- foreground


def env_lines(sim: Simulator) -> list[str]:
    """Shell lines that point zoom-ingest at a running simulator."""
    return [
        f"ZOOM_API_URL={sim.api_url}",
        f"ZOOM_OAUTH_URL={sim.oauth_url}",
        f"ZOOM_ACCOUNT_ID={sim.account_id}",
        f"ZOOM_CLIENT_ID={sim.client_id}",
        # A simulator-only fake; printing it is the point.
        f"ZOOM_CLIENT_SECRET={sim.client_secret}",
    ]


def serve(sim: Simulator, *, out: TextIO | None = None) -> None:
    """Run `sim` in the foreground: print its env lines, block until Ctrl-C, stop it."""
    out = out or sys.stdout
    started_here = not sim.running
    if started_here:
        sim.start()
    try:
        for line in env_lines(sim):
            print(line, file=out)
        print("# Zoom API simulator running; Ctrl-C stops it.", file=out, flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if started_here:
            sim.stop()
