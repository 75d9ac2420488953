"""The HTTP client for Zoom's report API: one pooled session, the shared rate limiter,
bounded retries, and Zoom's error bodies turned into errors that say what to do.

What is retried (tenacity: at most `config.max_retries` more attempts, exponential
backoff with jitter): 5xx and 408, connection errors and resets, timeouts, and 200s whose
body is not a usable JSON object (an HTML page from a proxy, truncated JSON). A per-second
429 is retried after `Retry-After`, which the shared limiter imposes on every thread. A
daily 429 is final for the run (`DailyLimitReached`). A 401 with code 124 gets one token
refresh and one more try. Everything else (4xx) fails at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from .. import __version__
from ..masking import mask
from ..setting_values import check_url
from ..tables import UTC
from .auth import TokenProvider
from .config import ZoomClientConfig
from .errors import (
    DailyLimitReached,
    IncompleteAnswer,
    RateLimited,
    TransientZoomError,
    UnusableAnswer,
    ZoomAuthError,
    ZoomError,
    ZoomPermissionError,
    ZoomRequestError,
    ZoomScopeError,
    ZoomUnavailable,
    ZoomUnreachable,
    scopes_from_message,
    scrub,
)
from .ratelimit import RateLimiter
from .transport import (
    ACCEPT_ENCODING,
    DeadlineExceeded,
    EnvironmentAdapter,
    ResponseTooLarge,
    TransportLimits,
)

log = logging.getLogger(__name__)

#: Zoom error codes (JSON body `code`).
CODE_INVALID_TOKEN = 124
CODE_NO_PERMISSION = 200
CODE_MISSING_SCOPE = 4711
#: A per-second 429 without a usable Retry-After waits this long.
#: Attempts at the first token when no connection can be made at all (DNS, refused,
#: TLS): enough to ride out a blip, few enough that a run with no route to Zoom ends
#: within seconds instead of retrying every window.
CONNECT_ATTEMPTS = 3
DEFAULT_QPS_WAIT = 1.0
#: …and a Retry-After beyond this is not believed for a *per-second* limit.
MAX_QPS_WAIT = 60.0

#: Checks a 200 body; returns what is wrong with it, or None. A problem means the body
#: is garbage and the request is retried.
BodyCheck = Callable[[dict[str, Any]], str | None]

_PERMISSION_HINT = (
    "the Zoom user who owns the app needs a role with the Reports permissions (View Sign "
    "In / Sign Out and Operation Logs): web portal → User Management → Roles"
)


@dataclass
class CallCounters:
    """Tallies of one stream's calls; shared by its threads, so every update is locked.

    `api_calls`: HTTP requests sent to the API (every attempt). `retries`: attempts after
    the first, whatever the reason. `rate_limited`: 429 responses received (per-second
    and daily). `pages`: pages received by `fetch_pages`.
    """

    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    pages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        if name not in ("api_calls", "retries", "rate_limited", "pages"):
            raise ValueError(f"unknown counter {name!r}")
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "api_calls": self.api_calls,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "pages": self.pages,
            }


@dataclass
class _Call:
    """The state of one `get()` across its attempts."""

    path: str
    attempts: int = 0
    #: This attempt already refreshed the token after a 401 code 124.
    refreshed_token: bool = False


class ZoomClient:
    """GET JSON from Zoom's API with the shared limiter, token, retries and error mapping.

    Thread-safe: one client serves every fetch thread of a run.
    """

    def __init__(
        self,
        config: ZoomClientConfig,
        *,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        # Settings validated these already; checked again here because this is where the
        # bearer token and the client secret leave the process.
        check_url("api_url", config.api_url)
        check_url("oauth_url", config.oauth_url)
        self._config = config
        #: The adapter of the session the client made itself (None for a session passed
        #: in): report GETs go through its `get`, and `close()` closes that session.
        self._adapter: EnvironmentAdapter | None = None
        if session is None:
            session = requests.Session()
            # The environment's proxies and CA bundle are read here, once, instead of
            # on every call (see transport.py).
            session.trust_env = False
            # One connection per fetch thread, kept alive across pages and windows.
            pool = config.connections + 2
            adapter = EnvironmentAdapter(
                (config.api_url, config.oauth_url),
                pool_connections=4,
                pool_maxsize=pool,
                limits=TransportLimits(
                    deadline=config.request_deadline, max_body_bytes=config.max_response_bytes
                ),
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._adapter = adapter
        if session.verify is False:
            raise ValueError("a session with TLS verification disabled is not accepted")
        session.verify = True
        session.headers["User-Agent"] = f"zoom-ingest/{__version__}"
        # Only the encodings the transport inflates with a size cap (no br, no zstd).
        session.headers["Accept-Encoding"] = ACCEPT_ENCODING
        self._session = session
        self.limiter = limiter or RateLimiter.for_account(
            config.account_id, config.requests_per_second
        )
        self.tokens = TokenProvider(config, session)
        # base · 2^(attempt-1), capped, plus up to `base` of jitter so that threads hit by
        # the same outage do not retry in lockstep.
        self._backoff = wait_exponential(multiplier=backoff_base, max=backoff_max) + wait_random(
            0, backoff_base
        )
        self._api_url = config.api_url.rstrip("/")
        # Once Zoom says the daily quota is spent, every further call would only get the
        # same 429: the other threads stop without calling.
        self._daily_limit: DailyLimitReached | None = None
        self._waits = threading.local()

    @property
    def config(self) -> ZoomClientConfig:
        return self._config

    def thread_waited(self) -> float:
        """Seconds the calling thread has spent waiting for the rate limiter so far (the
        job subtracts it from a page's time to see the latency a chain of pages meets)."""
        return getattr(self._waits, "seconds", 0.0)

    # -- public -----------------------------------------------------------------------

    def get(
        self,
        path: str,
        params: Mapping[str, Any],
        counters: CallCounters,
        *,
        check: BodyCheck | None = None,
    ) -> dict[str, Any]:
        """GET `path` (e.g. "/report/activities") under the API URL → the JSON object.

        Raises a `ZoomError` subclass; never a requests exception.
        """
        url = self._url(path)
        spent = self._daily_limit
        if spent is not None and datetime.now(UTC) < spent.retry_at:
            raise DailyLimitReached(
                f"GET {path}: not sent, Zoom's daily request limit is reached",
                retry_at=spent.retry_at,
                tracking_id=spent.tracking_id,
            )
        call = _Call(path=path)
        query = dict(params)
        # Nearly every call succeeds at once: its first attempt runs here, and tenacity
        # (a Retrying object and its per-attempt bookkeeping) only comes in after a
        # failure, which it then sees as its own first attempt.
        try:
            return self._attempt(call, url, query, counters, check)
        except TransientZoomError as first:
            failure: TransientZoomError | None = first

        def attempt() -> dict[str, Any]:
            nonlocal failure
            if failure is not None:
                replayed, failure = failure, None
                raise replayed
            return self._attempt(call, url, query, counters, check)

        retrying = Retrying(
            stop=stop_after_attempt(self._config.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(TransientZoomError),
            before_sleep=lambda state: self._before_retry(call, counters, state),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransientZoomError as last:
            if isinstance(last, UnusableAnswer):
                raise IncompleteAnswer(
                    f"{last.summary} (after {call.attempts} attempts)",
                    reason=last.summary.removeprefix(f"GET {path}: "),
                    status=last.status,
                    code=last.code,
                    message=last.message,
                    tracking_id=last.tracking_id,
                ) from last
            hint = _last_failure_hint(path, last)
            raise ZoomUnavailable.after(
                f"GET {path}: Zoom kept failing", call.attempts, last, hint
            ) from last

    def connect(self) -> None:
        """Get the run's first access token now, before any window starts.

        A Zoom that cannot be reached (DNS, refused, TLS) raises ZoomUnreachable after
        `CONNECT_ATTEMPTS`, naming the URL and the cause in one line; a token endpoint
        that keeps failing raises ZoomUnavailable after the usual retries; refused
        credentials raise ZoomAuthError at once.
        """
        attempts = 0

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            limit = (
                CONNECT_ATTEMPTS
                if isinstance(exc, ZoomUnreachable)
                else self._config.max_retries + 1
            )
            return state.attempt_number >= limit

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            self.tokens.token()

        retrying = Retrying(
            stop=stop,
            wait=self._backoff,
            retry=retry_if_exception_type(TransientZoomError),
            before_sleep=lambda state: log.warning(
                "%s; retrying in %.1f s",
                state.outcome.exception() if state.outcome else "token request failed",
                state.next_action.sleep if state.next_action else 0.0,
            ),
            reraise=True,
        )
        try:
            retrying(attempt)
        except ZoomUnreachable:
            raise
        except TransientZoomError as last:
            raise ZoomUnavailable.after(
                "token request failed", attempts, last, f"last: {last.summary}"
            ) from last

    def close(self) -> None:
        if self._adapter is not None:  # the client's own session
            self._session.close()

    def __enter__(self) -> ZoomClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ZoomClient(api_url={self._api_url!r}, limiter={self.limiter!r})"

    # -- one attempt ------------------------------------------------------------------

    def _attempt(
        self,
        call: _Call,
        url: str,
        params: dict[str, Any],
        counters: CallCounters,
        check: BodyCheck | None,
    ) -> dict[str, Any]:
        call.attempts += 1
        # One refresh per attempt: a token rejected right after its refresh means the
        # app or account is wrong, but a revocation during an earlier attempt of this
        # call (before a 5xx, a reset, …) says nothing about the token issued since.
        call.refreshed_token = False
        while True:
            token = self.tokens.token()
            # Token first, then the slot: a slot taken and then spent waiting for a token
            # would leave late and bunch up with the next thread's.
            self._waits.seconds = self.thread_waited() + self.limiter.acquire()
            counters.add("api_calls")
            response = self._send(call, url, params, token)
            if response.status_code == 401 and _int_code(_json_object(response)) == (
                CODE_INVALID_TOKEN
            ):
                if call.refreshed_token:
                    raise self._error(
                        ZoomAuthError,
                        call,
                        response,
                        "Zoom rejected a freshly issued access token",
                        hint="check that the app is activated and ZOOM_ACCOUNT_ID is its account",
                    )
                call.refreshed_token = True
                log.info(
                    "GET %s: access token rejected (code 124)%s; refreshing it once",
                    call.path,
                    _tracking_suffix(response),
                )
                self.tokens.invalidate(token)
                continue
            return self._handle(call, response, counters, check)

    def _send(self, call: _Call, url: str, params: dict[str, Any], token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            if self._adapter is not None:
                # The same GET with less CPU (transport.py); it never follows redirects.
                return self._adapter.get(self._session, url, params, headers, self._config.timeout)
            return self._session.get(
                url,
                params=params,
                headers=headers,
                timeout=self._config.timeout,
                verify=True,
                # Never carry the bearer token to wherever a redirect points.
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise ZoomError(
                f"GET {call.path}: TLS verification failed ({type(exc).__name__})",
                hint="check ZOOM_API_URL and the machine's CA certificates",
            ) from None
        except ResponseTooLarge as exc:
            # A bomb or a runaway body comes back the same on a retry: the window fails.
            raise IncompleteAnswer(f"GET {call.path}: {exc}", reason=str(exc)) from None
        except DeadlineExceeded as exc:
            raise UnusableAnswer(f"GET {call.path}: {exc}") from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            # The exception text can be long (pool internals); its type says enough.
            raise TransientZoomError(f"GET {call.path}: {_describe_network_error(exc)}") from None

    def _handle(
        self,
        call: _Call,
        response: requests.Response,
        counters: CallCounters,
        check: BodyCheck | None,
    ) -> dict[str, Any]:
        status = response.status_code
        body = _json_object(response)
        if 200 <= status < 300:
            if body is None:
                raise self._error(
                    TransientZoomError,
                    call,
                    response,
                    f"GET {call.path}: {status} with a body that is not a JSON object "
                    f"({_describe_body(response)})",
                )
            problem = check(body) if check else None
            if problem:
                raise self._error(
                    UnusableAnswer, call, response, f"GET {call.path}: unusable body: {problem}"
                )
            return body

        code = _int_code(body)
        if status == 429:
            counters.add("rate_limited")
            if _is_daily_limit(response, body):
                retry_at = _daily_retry_at(response.headers.get("Retry-After"))
                error = self._error(
                    DailyLimitReached,
                    call,
                    response,
                    "Zoom's daily request limit for this account is reached",
                    retry_at=retry_at,
                )
                self._daily_limit = error  # type: ignore[assignment]
                raise error
            wait = _qps_wait(response.headers.get("Retry-After"))
            self.limiter.penalise(wait)
            raise self._error(
                RateLimited,
                call,
                response,
                f"GET {call.path}: per-second rate limit; every call waits {wait:g} s",
                retry_after=wait,
            )
        if status >= 500 or status == 408:
            raise self._error(TransientZoomError, call, response, f"GET {call.path} failed")
        if status == 401:
            raise self._error(
                ZoomAuthError,
                call,
                response,
                f"GET {call.path}: Zoom rejected the access token",
                hint="check ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET",
            )
        if code == CODE_MISSING_SCOPE:
            message = _message(body, self.tokens.secrets())
            raise self._error(
                ZoomScopeError,
                call,
                response,
                f"GET {call.path}: the app lacks a required OAuth scope",
                scopes=scopes_from_message(message),
            )
        if code == CODE_NO_PERMISSION:
            raise self._error(
                ZoomPermissionError,
                call,
                response,
                f"GET {call.path}: no permission to read this report",
                hint=_PERMISSION_HINT,
            )
        if 300 <= status < 400:
            location = response.headers.get("Location", "?")
            raise self._error(
                ZoomRequestError,
                call,
                response,
                f"GET {call.path}: unexpected redirect to {location} (not followed)",
                hint="check ZOOM_API_URL",
            )
        raise self._error(ZoomRequestError, call, response, f"GET {call.path} was refused")

    def _error(
        self,
        kind: type[ZoomError],
        call: _Call,
        response: requests.Response,
        summary: str,
        **extra: Any,
    ) -> ZoomError:
        body = _json_object(response)
        return kind(
            summary,
            status=response.status_code,
            code=body.get("code") if body and isinstance(body.get("code"), (int, str)) else None,
            message=_message(body, self.tokens.secrets()),
            tracking_id=response.headers.get("x-zm-trackingid"),
            **extra,
        )

    # -- retry policy -----------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            # The shared limiter already holds every thread (this one included) back for
            # Retry-After; sleeping here too would wait twice.
            return 0.0
        return self._backoff(state)

    def _before_retry(self, call: _Call, counters: CallCounters, state: RetryCallState) -> None:
        counters.add("retries")
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, RateLimited):
            log.info("%s; retry %d/%d", exc, call.attempts, self._config.max_retries)
            return
        log.warning(
            "%s; retry %d/%d in %.1f s", exc, call.attempts, self._config.max_retries, sleep
        )

    def _url(self, path: str) -> str:
        if not path.startswith("/") or "://" in path:
            raise ValueError(f"expected an API path such as /report/activities, got {path!r}")
        return self._api_url + path


def _last_failure_hint(path: str, last: TransientZoomError) -> str:
    """Zoom's own message says enough about a failed API call. Without one (a reset, a
    timeout, a garbage body), or when the failing request was not the API call (the
    token endpoint), the summary of the last attempt is what tells the user."""
    if last.message and last.summary.startswith(f"GET {path}"):
        return "try again later"
    return f"last: {last.summary}"


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = _decode_json(response)
    except (ValueError, LookupError):  # JSONDecodeError, bad bytes, an unknown charset
        return None
    return body if isinstance(body, dict) else None


def _decode_json(response: requests.Response) -> Any:
    """`response.json()`, through orjson when that gives the same value.

    A page of 300 records is about 50 kB: orjson decodes it in about half the time of
    the standard library, on the fetch threads that share the interpreter with the
    normaliser. It is used only where its answer is the one `json` would give: a body
    that is UTF-8 (or says no charset), with no run of 19 or more digits (orjson turns
    an integer beyond 64 bits into a float, `json` keeps it exact). Whatever orjson
    refuses (NaN, Infinity, a byte order mark, invalid UTF-8, lone surrogates, garbage)
    goes through `response.json()` as before, so the same bodies decode, to the same
    values, and the same ones fail."""
    content = response.content
    encoding = response.encoding
    if (
        (encoding is None or encoding.lower() in _UTF8_NAMES)
        and content
        and _LONG_DIGIT_RUN not in content.translate(_DIGITS_TO_ZERO)
    ):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return response.json()


_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def _int_code(body: dict[str, Any] | None) -> int | None:
    code = body.get("code") if body else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    return None


def _message(body: dict[str, Any] | None, secrets: tuple[str, ...]) -> str | None:
    message = body.get("message") if body else None
    if not isinstance(message, str) or not message:
        return None
    return scrub(message, secrets)[:500]


def _is_daily_limit(response: requests.Response, body: dict[str, Any] | None) -> bool:
    kind = response.headers.get("X-RateLimit-Type", "")
    if kind:
        return "daily" in kind.lower()
    message = body.get("message") if body else None
    return isinstance(message, str) and "daily" in message.lower()


def _qps_wait(retry_after: str | None) -> float:
    """Retry-After of a per-second 429: seconds (or, tolerated, an instant)."""
    seconds = _seconds_or_instant(retry_after)
    if seconds is None:
        return DEFAULT_QPS_WAIT
    return min(max(seconds, 0.0), MAX_QPS_WAIT)


def _daily_retry_at(retry_after: str | None) -> datetime:
    """Retry-After of a daily 429: an ISO instant (documented) or seconds; without either,
    Zoom's daily quota resets at 00:00 UTC."""
    now = datetime.now(UTC)
    if retry_after:
        instant = _parse_instant(retry_after)
        if instant is not None:
            return instant
        try:
            return now + timedelta(seconds=float(retry_after))
        except ValueError:
            pass
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def _seconds_or_instant(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    instant = _parse_instant(value)
    if instant is None:
        return None
    return (instant - datetime.now(UTC)).total_seconds()


def _parse_instant(value: str) -> datetime | None:
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)  # Zoom's instants are UTC
    return instant.astimezone(UTC)


def _describe_body(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    return f"{kind}, {len(response.content)} bytes"


def _describe_network_error(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the response was cut off"
    # requests' text names the host and the cause (e.g. 'Connection reset by peer');
    # it never contains request headers, so no token.
    return f"connection failed ({type(exc).__name__}: {mask(str(exc))[:200]})"


def _tracking_suffix(response: requests.Response) -> str:
    tracking_id = response.headers.get("x-zm-trackingid")
    return mask(f" [x-zm-trackingid {tracking_id}]") if tracking_id else ""
