"""The Zoom source: errors, OAuth, the HTTP client and paging.

The first part drives the client with scripted responses (no sockets) for the cases a
server cannot easily be made to produce; the second talks over real sockets to the local
simulator on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from support.sim_settings import simulator_settings
from zoom_ingest.job import zoom_client_config
from zoom_ingest.normalise import Batch, parse_time
from zoom_ingest.plan import Window
from zoom_ingest.settings import Secret, Settings, SettingsError
from zoom_ingest.simulator import Fault, Simulator
from zoom_ingest.tables import UTC
from zoom_ingest.zoom import (
    STREAMS_BY_NAME,
    CallCounters,
    DailyLimitReached,
    RateLimiter,
    TokenProvider,
    ZoomAuthError,
    ZoomClient,
    ZoomError,
    ZoomPermissionError,
    ZoomRequestError,
    ZoomScopeError,
    ZoomUnavailable,
    fetch_pages,
)
from zoom_ingest.zoom.errors import IncompleteAnswer, scopes_from_message

#: The run's page cap (max_pages_per_window), what every window gets by default.
MAX_PAGES = Settings.max_pages_per_window
SECRET = "s3cr3t-client-value"
TOKEN = "tok-abcdef-123456"

# -- scripted responses -------------------------------------------------------------------


def response(
    status: int, body: object = None, *, headers: dict[str, str] | None = None, raw: bytes = b""
) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made._content = json.dumps(body).encode() if body is not None else raw
    made.headers = CaseInsensitiveDict(
        {"Content-Type": "application/json", "x-zm-trackingid": "TRK-1", **(headers or {})}
    )
    made.encoding = "utf-8"
    return made


def token_ok(token: str = TOKEN, expires_in: int = 3600) -> requests.Response:
    return response(200, {"access_token": token, "token_type": "bearer", "expires_in": expires_in})


class ScriptedSession(requests.Session):
    """Answers token POSTs and API GETs from two scripts, and records what was sent."""

    def __init__(self, tokens: list[requests.Response], api: list[requests.Response]) -> None:
        super().__init__()
        self.token_script = list(tokens)
        self.api_script = list(api)
        self.posts: list[dict[str, Any]] = []
        self.gets: list[dict[str, Any]] = []

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kw: Any) -> Any:
        self.posts.append({"url": url, "data": data, **kw})
        return self.token_script.pop(0)

    def get(self, url: str | bytes, **kw: Any) -> Any:
        self.gets.append({"url": url, **kw})
        return self.api_script.pop(0)


def unit_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "account_id": "acct-unit",
        "client_id": "client-unit",
        "client_secret": Secret(SECRET),
        "api_url": "https://api.zoom.test/v2",
        "oauth_url": "https://zoom.test/oauth/token",
        "max_retries": 2,
        "timeout": 5,
    }
    return Settings(**{**values, **changes})


def scripted_client(
    tokens: list[requests.Response], api: list[requests.Response], **changes: Any
) -> tuple[ZoomClient, ScriptedSession]:
    session = ScriptedSession(tokens, api)
    client = ZoomClient(
        zoom_client_config(unit_settings(**changes)),
        session=session,
        limiter=RateLimiter(1000),
        backoff_base=0.001,
        backoff_max=0.002,
    )
    return client, session


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert TOKEN not in text


# -- unit: transport safety -----------------------------------------------------------------


def test_every_request_verifies_tls_and_follows_no_redirect() -> None:
    client, session = scripted_client([token_ok()], [response(200, {"ok": 1})])
    assert client.get("/report/activities", {"from": "2025-01-01"}, CallCounters()) == {"ok": 1}
    (get,) = session.gets
    assert get["url"] == "https://api.zoom.test/v2/report/activities"
    assert get["verify"] is True
    assert get["allow_redirects"] is False
    assert get["timeout"] == 5
    assert get["headers"]["Authorization"] == f"Bearer {TOKEN}"
    (post,) = session.posts
    assert post["url"] == "https://zoom.test/oauth/token"
    assert post["verify"] is True
    # form body, not query string; Basic auth with the client id and secret
    assert post["data"] == {"grant_type": "account_credentials", "account_id": "acct-unit"}
    assert post["auth"] == ("client-unit", SECRET)
    assert session.verify is True


def test_a_session_without_tls_verification_is_refused() -> None:
    session = requests.Session()
    session.verify = False
    with pytest.raises(ValueError, match="TLS verification"):
        ZoomClient(zoom_client_config(unit_settings()), session=session, limiter=RateLimiter(1000))


def test_own_session_verifies_tls() -> None:
    client = ZoomClient(zoom_client_config(unit_settings()), limiter=RateLimiter(1000))
    try:
        assert client._session.verify is True
    finally:
        client.close()


@pytest.mark.parametrize("field", ["api_url", "oauth_url"])
def test_plain_http_to_a_remote_host_is_refused(field: str) -> None:
    with pytest.raises(SettingsError, match="loopback"):
        unit_settings(**{field: "http://api.example.com/v2"})
    # Even a client config tampered with after it was made does not get through.
    config = zoom_client_config(unit_settings())
    object.__setattr__(config, field, "http://api.example.com/v2")
    with pytest.raises(SettingsError, match="loopback"):
        ZoomClient(config, limiter=RateLimiter(1000))


def test_redirects_are_not_followed() -> None:
    client, session = scripted_client(
        [token_ok()], [response(302, raw=b"", headers={"Location": "http://evil.example/"})]
    )
    with pytest.raises(ZoomRequestError, match="redirect"):
        client.get("/report/activities", {}, CallCounters())
    assert len(session.gets) == 1


# -- unit: error mapping --------------------------------------------------------------------


def test_zoom_error_text_keeps_code_message_and_tracking_id() -> None:
    err = ZoomError("GET /x failed", status=400, code=300, message="bad range", tracking_id="T9")
    text = str(err)
    assert "code 300" in text and "bad range" in text and "T9" in text and "400" in text
    assert (err.status, err.code, err.message, err.tracking_id) == (400, 300, "bad range", "T9")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
            "ZOOM_CLIENT_ID / ZOOM_CLIENT_SECRET",
        ),
        (400, {"code": 4702, "message": "Invalid client"}, "ZOOM_CLIENT_ID / ZOOM_CLIENT_SECRET"),
        (400, {"reason": "Invalid account_id", "error": "invalid_request"}, "ZOOM_ACCOUNT_ID"),
        (400, {"code": 4717, "message": "The app has been disabled."}, "activate it"),
        (400, {"code": 4705, "message": "Grant type is not supported."}, "Server-to-Server"),
    ],
)
def test_oauth_errors_name_the_setting_to_fix(
    status: int, body: dict[str, Any], expected: str
) -> None:
    client, session = scripted_client([response(status, body)], [])
    with pytest.raises(ZoomAuthError) as caught:
        client.get("/report/activities", {}, CallCounters())
    assert expected in str(caught.value)
    assert caught.value.tracking_id == "TRK-1"
    assert session.gets == []  # no API call without a token
    assert_no_secrets(str(caught.value), repr(caught.value))


def test_missing_scope_names_the_scope() -> None:
    message = "Invalid access token, does not contain scopes:[report:read:user_activities:admin]."
    client, _ = scripted_client([token_ok()], [response(400, {"code": 4711, "message": message})])
    with pytest.raises(ZoomScopeError) as caught:
        client.get("/report/activities", {}, CallCounters())
    assert caught.value.scopes == ("report:read:user_activities:admin",)
    assert "add scope report:read:user_activities:admin" in str(caught.value)
    assert "Server-to-Server OAuth app" in str(caught.value)


def test_scopes_from_message() -> None:
    assert scopes_from_message("does not contain scopes:[a:b, c:d]") == ("a:b", "c:d")
    assert scopes_from_message("no list here") == ()


def test_no_permission_says_which_permission() -> None:
    client, _ = scripted_client(
        [token_ok()], [response(400, {"code": 200, "message": "No permission."})]
    )
    with pytest.raises(ZoomPermissionError, match="Reports permission"):
        client.get("/report/operationlogs", {}, CallCounters())


def test_bad_request_is_not_retried() -> None:
    client, session = scripted_client(
        [token_ok()], [response(400, {"code": 300, "message": "The date range is invalid."})]
    )
    with pytest.raises(ZoomRequestError) as caught:
        client.get("/report/activities", {}, CallCounters())
    assert caught.value.code == 300
    assert len(session.gets) == 1


def test_daily_limit_stops_at_once_with_retry_at() -> None:
    counters = CallCounters()
    daily = response(
        429,
        {"code": 429, "message": "You have reached the maximum daily rate limit for this API."},
        headers={"X-RateLimit-Type": "Daily-limit", "Retry-After": "2030-05-31T00:00:00Z"},
    )
    client, session = scripted_client([token_ok()], [daily])
    with pytest.raises(DailyLimitReached) as caught:
        client.get("/report/activities", {}, counters)
    assert caught.value.retry_at == datetime(2030, 5, 31, tzinfo=UTC)
    assert "2030-05-31T00:00:00Z" in str(caught.value)
    assert len(session.gets) == 1
    assert counters.rate_limited == 1 and counters.retries == 0
    # Every later call stops at once: the quota is spent until retry_at.
    with pytest.raises(DailyLimitReached) as again:
        client.get("/report/operationlogs", {}, counters)
    assert again.value.retry_at == caught.value.retry_at
    assert len(session.gets) == 1 and counters.api_calls == 1


def test_second_code_124_after_refresh_is_an_auth_error() -> None:
    invalid = {"code": 124, "message": "Invalid access token."}
    client, session = scripted_client(
        [token_ok("t1-xxxxxxxx"), token_ok("t2-xxxxxxxx")],
        [response(401, invalid), response(401, invalid)],
    )
    with pytest.raises(ZoomAuthError, match="freshly issued"):
        client.get("/report/activities", {}, CallCounters())
    assert len(session.posts) == 2
    assert [g["headers"]["Authorization"] for g in session.gets] == [
        "Bearer t1-xxxxxxxx",
        "Bearer t2-xxxxxxxx",
    ]


def test_echoed_credentials_are_scrubbed_from_errors() -> None:
    client, _ = scripted_client(
        [response(401, {"reason": f"bad secret {SECRET}", "error": "invalid_client"})], []
    )
    with pytest.raises(ZoomAuthError) as caught:
        client.get("/report/activities", {}, CallCounters())
    assert_no_secrets(str(caught.value))
    client, _ = scripted_client(
        [token_ok()], [response(400, {"code": 999, "message": f"token {TOKEN} refused"})]
    )
    with pytest.raises(ZoomRequestError) as caught2:
        client.get("/report/activities", {}, CallCounters())
    assert_no_secrets(str(caught2.value))
    assert "***" in str(caught2.value)


def test_token_provider_refreshes_before_expiry_and_once_per_invalidation() -> None:
    now = [0.0]
    session = ScriptedSession([token_ok("t1-xxxxxxxx", 100), token_ok("t2-xxxxxxxx", 100)], [])
    provider = TokenProvider(zoom_client_config(unit_settings()), session, clock=lambda: now[0])
    assert provider.token() == "t1-xxxxxxxx"
    now[0] = 85.0  # inside the lifetime, before the 10 % margin
    assert provider.token() == "t1-xxxxxxxx"
    now[0] = 91.0  # within the margin: refreshed before Zoom would reject it
    assert provider.token() == "t2-xxxxxxxx"
    provider.invalidate("t1-xxxxxxxx")  # a stale rejection does not throw away t2
    assert provider.token() == "t2-xxxxxxxx"
    assert provider.requests_made == 2
    assert "t2" not in repr(provider) and SECRET not in repr(provider)


# -- integration: the simulator over real sockets ------------------------------------------


def sim_settings(sim: Simulator, **changes: Any) -> Settings:
    values: dict[str, Any] = {"timeout": 5.0, "max_retries": 4, "requests_per_second": 200.0}
    return simulator_settings(sim, **{**values, **changes})


def sim_client(sim: Simulator, **changes: Any) -> ZoomClient:
    settings = sim_settings(sim, **changes)
    return ZoomClient(
        zoom_client_config(settings),
        limiter=RateLimiter(settings.requests_per_second),
        backoff_base=0.01,
        backoff_max=0.05,
    )


def day_window(stream: str, first: date, last: date, stop_before: datetime | None = None) -> Window:
    return Window(
        stream=stream,
        from_date=first,
        to_date=last,
        stop_before=stop_before,
        covers_until=datetime.combine(last, datetime.min.time(), tzinfo=UTC),
    )


def lw_ids(stream: str, records: list[Any]) -> set[str]:
    batch = Batch(STREAMS_BY_NAME[stream].spec)
    batch.add(records)
    assert not batch.rejects, batch.rejects[:3]
    return set(batch.rows)


def in_dates(records: list[Any], first: date, last: date) -> list[Any]:
    """The records Zoom serves for from=first, to=last (the simulated account is on UTC)."""
    return [r for r in records if first <= parse_time(r["time"]).date() <= last]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=7, days=6, activity_per_day=400, operation_per_day=80) as running:
        yield running


@pytest.fixture
def fresh_sim(sim: Simulator) -> Iterator[Simulator]:
    """The module's simulator with faults cleared and counters reset around the test."""
    sim.faults.clear()
    sim.stats.reset()
    yield sim
    sim.faults.clear()


def today() -> date:
    return datetime.now(UTC).date()


# -- unit: paging with scripted pages ------------------------------------------------------


def page_body(key: str, times: list[str], token: str = "") -> dict[str, Any]:
    return {"next_page_token": token, key: [{"time": t, "operator": "a@b.c"} for t in times]}


def test_fetch_pages_sends_the_documented_query_and_stops_on_empty_token() -> None:
    key = "operation_logs"
    client, session = scripted_client(
        [token_ok()],
        [
            response(200, page_body(key, ["2025-01-02T10:00:00Z"], token="p2")),
            response(200, page_body(key, [], token="p3")),  # empty page, token: go on
            response(200, page_body(key, ["2025-01-01T09:00:00Z", "not a time"])),
        ],
        category_type="role",
    )
    window = day_window("operation_logs", date(2025, 1, 1), date(2025, 1, 2))
    counters = CallCounters()
    settings = unit_settings(category_type="role")
    pages = list(
        fetch_pages(
            client,
            STREAMS_BY_NAME[key],
            window,
            settings.category_type,
            counters,
            max_pages=MAX_PAGES,
        )
    )
    assert [len(p.records) for p in pages] == [1, 0, 2]
    assert pages[2].newest == pages[2].oldest == datetime(2025, 1, 1, 9, tzinfo=UTC)
    assert pages[1].newest is None
    params = [g["params"] for g in session.gets]
    assert params[0] == {
        "from": "2025-01-01",
        "to": "2025-01-02",
        "page_size": 300,
        "category_type": "role",
    }
    assert params[1]["next_page_token"] == "p2" and params[2]["next_page_token"] == "p3"
    assert session.gets[0]["url"].endswith("/report/operationlogs")
    assert counters.pages == 3 and counters.api_calls == 3


def test_early_stop_after_the_page_that_reaches_below_stop_before() -> None:
    key = "operation_logs"
    pages = [
        response(200, page_body(key, ["2025-01-02T12:00:00Z", "2025-01-02T11:00:00Z"], "p2")),
        response(200, page_body(key, ["garbled", "also garbled"], "p3")),  # no parseable time
        response(200, page_body(key, ["2025-01-02T10:30:00Z", "2025-01-02T09:00:00Z"], "p4")),
        response(200, page_body(key, ["2025-01-02T08:00:00Z"], "")),
    ]
    client, session = scripted_client([token_ok()], pages)
    stop_before = datetime(2025, 1, 2, 10, tzinfo=UTC)
    window = day_window(key, date(2025, 1, 2), date(2025, 1, 2), stop_before=stop_before)
    got = list(
        fetch_pages(
            client, STREAMS_BY_NAME[key], window, "all", CallCounters(), max_pages=MAX_PAGES
        )
    )
    assert len(got) == 3 and len(session.gets) == 3  # page 4 is never asked for
    assert got[2].oldest == datetime(2025, 1, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "bad_body",
    [
        {"message": "an object, but not a report page"},
        {"operation_logs": {"not": "a list"}},
        {"operation_logs": [], "next_page_token": 5},
    ],
)
def test_a_body_without_the_records_list_is_retried_as_garbage(bad_body: dict[str, Any]) -> None:
    key = "operation_logs"
    client, _ = scripted_client(
        [token_ok()],
        [response(200, bad_body), response(200, page_body(key, ["2025-01-01T09:00:00Z"]))],
    )
    window = day_window(key, date(2025, 1, 1), date(2025, 1, 1))
    counters = CallCounters()
    pages = list(
        fetch_pages(client, STREAMS_BY_NAME[key], window, "all", counters, max_pages=MAX_PAGES)
    )
    assert len(pages) == 1 and len(pages[0].records) == 1
    assert counters.retries == 1 and counters.api_calls == 2


@pytest.mark.parametrize("records", [None, "missing"])
def test_a_report_page_without_its_records_list_is_no_empty_page(records: object) -> None:
    """Issue 21: a 200 with the report's keys and no records list (or null) once passed
    for an empty page and the window for complete. It is retried, and when it persists
    the window cannot be proven complete."""
    key = "activity_logs"
    empty: dict[str, Any] = {"from": "2025-01-01", "to": "2025-01-01", "next_page_token": ""}
    if records is None:
        empty[key] = None
    client, session = scripted_client([token_ok()], [response(200, empty) for _ in range(3)])
    window = day_window(key, date(2025, 1, 1), date(2025, 1, 1))
    counters = CallCounters()
    with pytest.raises(IncompleteAnswer) as caught:
        list(
            fetch_pages(client, STREAMS_BY_NAME[key], window, "all", counters, max_pages=MAX_PAGES)
        )
    assert "'activity_logs' is missing, expected a list" in caught.value.reason
    assert "3 attempts" in str(caught.value) and "\n" not in str(caught.value)
    assert counters.retries == 2 and len(session.gets) == 3


def test_garbage_until_retries_run_out_is_unavailable() -> None:
    client, _ = scripted_client(
        [token_ok()], [response(200, raw=b"<html>maintenance</html>") for _ in range(3)]
    )
    with pytest.raises(ZoomUnavailable) as caught:
        client.get("/report/activities", {}, CallCounters())
    assert caught.value.attempts == 3  # max_retries=2 → 3 attempts
    assert "3 attempts" in str(caught.value) and "not a JSON object" in str(caught.value)


def test_without_retries_one_transient_failure_is_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, session = scripted_client(
        [token_ok()], [response(503, {"message": "busy"}), response(200, {"ok": 1})], max_retries=0
    )
    counters = CallCounters()
    with caplog.at_level(logging.INFO), pytest.raises(ZoomUnavailable) as caught:
        client.get("/report/activities", {}, counters)
    assert caught.value.attempts == 1 and len(session.gets) == 1
    assert counters.retries == 0 and "retry" not in caplog.text


def test_a_failure_after_a_first_failure_is_retried_with_the_same_numbering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = scripted_client(
        [token_ok()],
        [response(503, {"message": "busy"}), response(502, {}), response(200, {"ok": 1})],
    )
    counters = CallCounters()
    with caplog.at_level(logging.INFO):
        assert client.get("/report/activities", {}, counters) == {"ok": 1}
    assert counters.retries == 2 and counters.api_calls == 3
    assert "retry 1/2" in caplog.text and "retry 2/2" in caplog.text


def test_scope_error_from_a_stream_lists_granular_and_classic_scopes() -> None:
    client, _ = scripted_client(
        [token_ok()], [response(400, {"code": 4711, "message": "Invalid access token."})]
    )
    window = day_window("activity_logs", date(2025, 1, 1), date(2025, 1, 1))
    stream = STREAMS_BY_NAME["activity_logs"]
    with pytest.raises(ZoomScopeError) as caught:
        list(fetch_pages(client, stream, window, "all", CallCounters(), max_pages=MAX_PAGES))
    text = str(caught.value)
    assert "report:read:user_activities:admin" in text and "report:read:admin" in text


# -- integration: tokens ---------------------------------------------------------------------


def fetch_all(client: ZoomClient, stream: str, window: Window, counters: CallCounters) -> list:
    records: list[Any] = []
    for page in fetch_pages(
        client, STREAMS_BY_NAME[stream], window, "all", counters, max_pages=MAX_PAGES
    ):
        records.extend(page.records)
    return records


def last_days(stream: str, days: int, stop_before: datetime | None = None) -> Window:
    return day_window(stream, today() - timedelta(days=days - 1), today(), stop_before)


def test_one_token_serves_many_calls_from_many_threads(fresh_sim: Simulator) -> None:
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(5):
                    client.get("/report/activities", window_params(1), counters)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not errors
    assert fresh_sim.stats.token_requests == 1
    assert counters.api_calls == 20 and counters.retries == 0


def window_params(days: int) -> dict[str, Any]:
    return {
        "from": (today() - timedelta(days=days - 1)).isoformat(),
        "to": today().isoformat(),
        "page_size": 300,
    }


def test_token_is_refreshed_before_it_expires() -> None:
    with Simulator(seed=1, days=1, activity_per_day=10, operation_per_day=5, token_ttl=1) as sim:
        counters = CallCounters()
        with sim_client(sim) as client:
            client.get("/report/activities", window_params(1), counters)
            time.sleep(1.0)  # past 90 % of the 1-second lifetime
            client.get("/report/activities", window_params(1), counters)
        assert sim.stats.token_requests == 2
        assert counters.api_calls == 2  # no call was rejected with an expired token


def test_revoked_token_is_refreshed_once_and_the_call_retried(fresh_sim: Simulator) -> None:
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        client.get("/report/activities", window_params(1), counters)
        fresh_sim.revoke_tokens()
        body = client.get("/report/activities", window_params(1), counters)
        assert isinstance(body["activity_logs"], list)
        fresh_sim.faults.inject(Fault("token_revoked", count=1))
        client.get("/report/activities", window_params(1), counters)
    assert fresh_sim.stats.token_requests == 3
    assert counters.api_calls == 5  # two calls were answered 401 124, then retried


def test_token_endpoint_outage_is_retried(fresh_sim: Simulator) -> None:
    fresh_sim.faults.inject(Fault("http_503", count=2, path="/oauth/token"))
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        client.get("/report/activities", window_params(1), counters)
    assert fresh_sim.stats.token_requests == 3
    assert counters.retries == 2


def test_bad_client_secret_names_the_settings(fresh_sim: Simulator) -> None:
    with (
        sim_client(fresh_sim, client_secret=Secret("wrong-secret-value")) as client,
        pytest.raises(ZoomAuthError) as caught,
    ):
        client.get("/report/activities", window_params(1), CallCounters())
    assert "ZOOM_CLIENT_ID / ZOOM_CLIENT_SECRET" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)
    assert fresh_sim.stats.calls == 0


def test_bad_account_names_the_setting(fresh_sim: Simulator) -> None:
    with (
        sim_client(fresh_sim, account_id="no-such-account") as client,
        pytest.raises(ZoomAuthError) as caught,
    ):
        client.get("/report/activities", window_params(1), CallCounters())
    assert "ZOOM_ACCOUNT_ID" in str(caught.value)


def test_missing_scope_names_the_scope_to_add() -> None:
    with (
        Simulator(
            seed=2,
            days=1,
            activity_per_day=5,
            operation_per_day=5,
            scopes=["report:read:operation_logs:admin"],
        ) as sim,
        sim_client(sim) as client,
    ):
        window = last_days("activity_logs", 1)
        with pytest.raises(ZoomScopeError) as caught:
            fetch_all(client, "activity_logs", window, CallCounters())
        # the other stream's scope is there
        fetch_all(client, "operation_logs", last_days("operation_logs", 1), CallCounters())
    assert "report:read:user_activities:admin" in caught.value.scopes
    assert "add scope report:read:user_activities:admin" in str(caught.value)


# -- integration: retries ----------------------------------------------------------------------


def test_server_errors_resets_and_timeouts_are_retried_and_counted(fresh_sim: Simulator) -> None:
    fresh_sim.faults.inject(Fault("http_503", count=1))
    fresh_sim.faults.inject(Fault("http_500", count=1))
    fresh_sim.faults.inject(Fault("reset", count=1))
    fresh_sim.faults.inject(Fault("slow", count=1, delay=1.0))
    counters = CallCounters()
    with sim_client(fresh_sim, timeout=0.3, max_retries=5) as client:
        body = client.get("/report/activities", window_params(1), counters)
    assert isinstance(body["activity_logs"], list)
    assert counters.retries == 4 and counters.api_calls == 5
    # The slow answer the client gave up on is still being served; it must be counted
    # here, not in the next test's counters (the module shares one simulator).
    deadline = time.monotonic() + 5
    while fresh_sim.stats.calls < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fresh_sim.stats.calls == 5


@pytest.mark.parametrize("kind", ["html_200", "truncated_json"])
def test_garbage_bodies_are_retried(fresh_sim: Simulator, kind: str) -> None:
    fresh_sim.faults.inject(Fault(kind, count=2))
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        body = client.get("/report/activities", window_params(1), counters)
    assert isinstance(body["activity_logs"], list)
    assert counters.retries == 2 and counters.api_calls == 3


def test_retries_run_out_as_zoom_unavailable(fresh_sim: Simulator) -> None:
    fresh_sim.faults.inject(Fault("http_502", count=None))
    counters = CallCounters()
    with (
        sim_client(fresh_sim, max_retries=3) as client,
        pytest.raises(ZoomUnavailable) as caught,
    ):
        client.get("/report/activities", window_params(1), counters)
    assert caught.value.attempts == 4 and "4 attempts" in str(caught.value)
    assert caught.value.status == 502
    assert fresh_sim.stats.calls == 4 and counters.retries == 3


def test_per_second_429_is_waited_out_and_counted(fresh_sim: Simulator) -> None:
    fresh_sim.faults.inject(Fault("qps_429", count=1))  # Retry-After: 1
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        started = time.monotonic()
        body = client.get("/report/activities", window_params(1), counters)
        waited = time.monotonic() - started
    assert isinstance(body["activity_logs"], list)
    assert waited >= 0.95  # Retry-After was honoured
    assert counters.rate_limited == 1 and counters.retries == 1 and counters.api_calls == 2
    assert fresh_sim.stats.rate_limited == 1


def test_daily_429_stops_at_once_with_the_reset_time(fresh_sim: Simulator) -> None:
    fresh_sim.faults.inject(Fault("daily_429"))
    counters = CallCounters()
    with sim_client(fresh_sim) as client, pytest.raises(DailyLimitReached) as caught:
        client.get("/report/activities", window_params(1), counters)
    next_midnight = datetime.combine(today() + timedelta(days=1), datetime.min.time(), UTC)
    assert caught.value.retry_at == next_midnight
    assert fresh_sim.stats.calls == 1 and counters.retries == 0 and counters.rate_limited == 1


# -- integration: paging -------------------------------------------------------------------------


def test_pages_of_a_window_add_up_to_the_ground_truth(fresh_sim: Simulator) -> None:
    first, last = today() - timedelta(days=3), today() - timedelta(days=1)
    window = day_window("activity_logs", first, last)
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        fetched = fetch_all(client, "activity_logs", window, counters)
    truth = in_dates(fresh_sim.ground_truth("activity_logs"), first, last)
    assert len(truth) > 600  # several pages
    assert lw_ids("activity_logs", fetched) == lw_ids("activity_logs", truth)
    assert len(fetched) == len(truth)
    assert counters.pages == counters.api_calls == math.ceil(len(truth) / 300)


def test_operation_logs_window_matches_the_ground_truth(fresh_sim: Simulator) -> None:
    first = today() - timedelta(days=5)
    window = day_window("operation_logs", first, today())
    with sim_client(fresh_sim) as client:
        fetched = fetch_all(client, "operation_logs", window, CallCounters())
    truth = in_dates(fresh_sim.ground_truth("operation_logs"), first, today())
    assert lw_ids("operation_logs", fetched) == lw_ids("operation_logs", truth)


def test_early_stop_asks_only_for_the_pages_needed(fresh_sim: Simulator) -> None:
    first = today() - timedelta(days=5)
    truth = in_dates(fresh_sim.ground_truth("activity_logs"), first, today())
    times = sorted((parse_time(r["time"]) for r in truth), reverse=True)
    total_pages = math.ceil(len(times) / 300)
    assert total_pages >= 5
    # Everything at or after the 450th newest record is wanted. Page 2 holds it and
    # reaches below it; later pages are older still and are not asked for.
    stop_before = times[449]
    window = day_window("activity_logs", first, today(), stop_before=stop_before)
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        fetched = fetch_all(client, "activity_logs", window, counters)
    oldest_of_page = times[299::300]
    expected_pages = next(i for i, t in enumerate(oldest_of_page) if t < stop_before) + 1
    assert expected_pages == 2
    assert counters.api_calls == counters.pages == expected_pages
    assert fresh_sim.stats.calls == expected_pages
    wanted = {r["time"] for r in truth if parse_time(r["time"]) >= stop_before}
    assert wanted <= {r["time"] for r in fetched}


def test_expired_page_token_restarts_the_window(fresh_sim: Simulator) -> None:
    first = today() - timedelta(days=5)
    window = day_window("activity_logs", first, today())
    fresh_sim.faults.inject(Fault("page_token_expired", count=1, after_calls=1))
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        fetched = fetch_all(client, "activity_logs", window, counters)
    truth = in_dates(fresh_sim.ground_truth("activity_logs"), first, today())
    full = math.ceil(len(truth) / 300)
    assert lw_ids("activity_logs", fetched) == lw_ids("activity_logs", truth)
    # pages 1 and 2, page 3 refused, then the whole chain again
    assert counters.pages == 2 + full
    assert counters.api_calls == 3 + full


def test_page_token_expiring_again_and_again_gives_up(fresh_sim: Simulator) -> None:
    window = day_window("activity_logs", today() - timedelta(days=5), today())
    fresh_sim.faults.inject(Fault("page_token_expired", count=None))
    counters = CallCounters()
    with (
        sim_client(fresh_sim) as client,
        pytest.raises(ZoomRequestError, match="expired 4 times") as caught,
    ):
        fetch_all(client, "activity_logs", window, counters)
    assert caught.value.code == 300
    assert counters.pages == 4  # the first page of the first try and of 3 restarts


def test_empty_pages_with_a_token_are_paged_through(fresh_sim: Simulator) -> None:
    first = today() - timedelta(days=3)
    window = day_window("activity_logs", first, today())
    fresh_sim.faults.inject(Fault("empty_page_with_token", count=2))
    counters = CallCounters()
    with sim_client(fresh_sim) as client:
        fetched = fetch_all(client, "activity_logs", window, counters)
    truth = in_dates(fresh_sim.ground_truth("activity_logs"), first, today())
    assert lw_ids("activity_logs", fetched) == lw_ids("activity_logs", truth)
    assert counters.pages == math.ceil(len(truth) / 300) + 2


# -- integration: the shared limiter against Zoom's per-second counting ---------------------------


def test_limiter_keeps_every_second_within_zooms_limit() -> None:
    rate = 40
    with Simulator(seed=3, days=1, activity_per_day=10, operation_per_day=5, qps_limit=rate) as sim:
        settings = sim_settings(sim, requests_per_second=float(rate))
        limiter = RateLimiter(rate)
        counters = CallCounters()
        stamps: list[float] = []
        lock = threading.Lock()
        with ZoomClient(
            zoom_client_config(settings), limiter=limiter, backoff_base=0.01, backoff_max=0.05
        ) as client:

            def worker() -> None:
                for _ in range(10):
                    client.get("/report/activities", window_params(1), counters)
                    with lock:
                        stamps.append(time.monotonic())

            started = time.monotonic()
            threads = [threading.Thread(target=worker) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        assert sim.stats.rate_limited == 0 and counters.rate_limited == 0
        assert counters.api_calls == 60
        # 60 calls at 40/s: no faster than the limit allows
        assert max(stamps) - started >= 59 / rate
        assert sim.stats.calls == 60


def test_without_the_limiter_the_same_load_is_rate_limited() -> None:
    # The counter-check: the simulator does enforce the limit, so the test above means
    # something.
    rate = 20
    with Simulator(seed=3, days=1, activity_per_day=10, operation_per_day=5, qps_limit=rate) as sim:
        settings = sim_settings(sim, requests_per_second=1000.0, max_retries=20)
        counters = CallCounters()
        with ZoomClient(
            zoom_client_config(settings),
            limiter=RateLimiter(1000),
            backoff_base=0.01,
            backoff_max=0.05,
        ) as client:
            threads = [
                threading.Thread(
                    target=lambda: [
                        client.get("/report/activities", window_params(1), counters)
                        for _ in range(10)
                    ]
                )
                for _ in range(6)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        assert sim.stats.rate_limited > 0
        assert counters.rate_limited == sim.stats.rate_limited


# -- integration: secrets ---------------------------------------------------------------------


def test_secret_and_token_never_reach_logs_or_errors(
    fresh_sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    tokens: set[str] = set()
    with sim_client(fresh_sim, max_retries=2) as client:
        for kind in ("http_503", "reset", "html_200", "token_revoked", "qps_429"):
            fresh_sim.faults.inject(Fault(kind, count=1))
            client.get("/report/activities", window_params(1), CallCounters())
            tokens.add(client.tokens._token or "")
        fresh_sim.faults.inject(Fault("http_500", count=None))
        with pytest.raises(ZoomUnavailable) as unavailable:
            client.get("/report/activities", window_params(1), CallCounters())
        fresh_sim.faults.clear()
        fresh_sim.faults.inject(Fault("daily_429"))
        with pytest.raises(DailyLimitReached) as daily:
            client.get("/report/activities", window_params(1), CallCounters())
        texts += [str(unavailable.value), repr(unavailable.value), str(daily.value)]
        texts += [repr(client), repr(client.tokens), repr(client.config)]
    with sim_client(fresh_sim, client_secret=Secret(fresh_sim.client_secret + "x")) as client:
        with pytest.raises(ZoomAuthError) as auth:
            client.get("/report/activities", window_params(1), CallCounters())
        texts += [str(auth.value), repr(auth.value)]
    texts.append(caplog.text)
    assert "retry" in caplog.text  # the retries were logged…
    tokens.discard("")
    assert len(tokens) == 2
    for text in texts:  # …and nothing secret was
        assert fresh_sim.client_secret not in text
        for token in tokens:
            assert token not in text
