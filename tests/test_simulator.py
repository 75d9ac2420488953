"""The local Zoom API simulator, over real sockets, against the API contract."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from support.foreground import foreground
from zoom_ingest.simulated import env_lines
from zoom_ingest.simulator import (
    CATEGORY_DISPLAY_NAMES,
    FAULT_KINDS,
    Fault,
    Simulator,
)
from zoom_ingest.tables import UTC

TIMEOUT = 5
NOW = datetime(2025, 3, 15, 10, 30, 5, tzinfo=UTC)
TODAY = NOW.date()
ACTIVITIES = "/report/activities"
OPERATIONS = "/report/operationlogs"
ACTIVITY_SCOPE = "report:read:user_activities:admin"
OPERATION_SCOPE = "report:read:operation_logs:admin"
PAGE_TOKEN_MESSAGE = "The next page token is invalid or expired."


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def shared() -> Iterator[Simulator]:
    """A read-only simulator for tests that only look."""
    with Simulator(seed=7, days=20, activity_per_day=400, operation_per_day=120, now=NOW) as sim:
        yield sim


def token_response(sim: Simulator, session: requests.Session, **data: str) -> requests.Response:
    form = {"grant_type": "account_credentials", "account_id": sim.account_id, **data}
    return session.post(
        sim.oauth_url, auth=(sim.client_id, sim.client_secret), data=form, timeout=TIMEOUT
    )


def token(sim: Simulator, session: requests.Session) -> str:
    response = token_response(sim, session)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def call(
    sim: Simulator, session: requests.Session, path: str, bearer: str | None, **params: Any
) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return session.get(sim.api_url + path, params=params, headers=headers, timeout=TIMEOUT)


def window(days_back: int, days: int = 1) -> dict[str, str]:
    start = TODAY - timedelta(days=days_back)
    return {"from": start.isoformat(), "to": (start + timedelta(days=days - 1)).isoformat()}


def fetch_all(
    sim: Simulator,
    session: requests.Session,
    path: str,
    bearer: str,
    key: str,
    **params: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record of a paging chain, and the page bodies."""
    records: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    params = dict(params)
    for _ in range(500):  # bounded
        response = call(sim, session, path, bearer, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        records.extend(body[key])
        if not body["next_page_token"]:
            return records, pages
        params["next_page_token"] = body["next_page_token"]
    raise AssertionError("paging did not end")


def utc_span(first: date, last: date, offset_hours: float) -> tuple[datetime, datetime]:
    """UTC instants [start, end) that local dates first..last cover at UTC+offset."""
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    shift = timedelta(hours=offset_hours)
    return start - shift, end - shift


def zoom_error(response: requests.Response) -> tuple[int, int, str]:
    body = response.json()
    return response.status_code, body["code"], body["message"]


# --------------------------------------------------------------------------- token endpoint


def test_token_endpoint_issues_working_bearer_tokens(shared, session):
    response = token_response(shared, session)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == {ACTIVITY_SCOPE, OPERATION_SCOPE}
    assert body["api_url"] == shared.base_url
    assert response.headers["x-zm-trackingid"]
    # Several tokens are valid at once.
    second = token(shared, session)
    assert second != body["access_token"]
    for bearer in (body["access_token"], second):
        assert call(shared, session, ACTIVITIES, bearer, **window(1)).status_code == 200


def test_token_endpoint_accepts_the_form_in_the_query_string(shared, session):
    response = session.post(
        shared.oauth_url,
        params={"grant_type": "account_credentials", "account_id": shared.account_id},
        auth=(shared.client_id, shared.client_secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


@pytest.mark.parametrize(
    ("auth", "form", "error", "reason"),
    [
        ("bad-secret", {}, "invalid_client", "Invalid client_id or client_secret"),
        (None, {}, "invalid_client", "Invalid client_id or client_secret"),
        ("ok", {"account_id": "nope"}, "invalid_request", "Account does not exist"),
        ("ok", {"grant_type": "client_credentials"}, "unsupported_grant_type", "grant type"),
    ],
)
def test_token_endpoint_errors(shared, session, auth, form, error, reason):
    data = {"grant_type": "account_credentials", "account_id": shared.account_id, **form}
    credentials = {
        "ok": (shared.client_id, shared.client_secret),
        "bad-secret": (shared.client_id, "wrong"),
        None: None,
    }[auth]
    response = session.post(shared.oauth_url, auth=credentials, data=data, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert reason in response.json()["reason"]
    assert shared.client_secret not in response.text


# --------------------------------------------------------------------------- auth and scopes


def test_missing_unknown_expired_and_revoked_tokens_get_124(session):
    with Simulator(seed=1, days=2, now=NOW, token_ttl=0.3) as sim:
        for bearer in (None, "not-a-token"):
            response = call(sim, session, ACTIVITIES, bearer, **window(1))
            assert zoom_error(response) == (401, 124, "Invalid access token.")
        expiring = token(sim, session)
        assert call(sim, session, ACTIVITIES, expiring, **window(1)).status_code == 200
        time.sleep(0.4)
        assert zoom_error(call(sim, session, ACTIVITIES, expiring, **window(1)))[:2] == (401, 124)

    with Simulator(seed=1, days=2, now=NOW) as sim:
        bearer = token(sim, session)
        sim.revoke_tokens()
        assert zoom_error(call(sim, session, ACTIVITIES, bearer, **window(1)))[:2] == (401, 124)
        assert call(sim, session, ACTIVITIES, token(sim, session), **window(1)).status_code == 200


def test_missing_scope_gets_4711_naming_the_scope(session):
    with Simulator(seed=1, days=2, now=NOW, scopes=[OPERATION_SCOPE]) as sim:
        bearer = token(sim, session)
        status, code, message = zoom_error(call(sim, session, ACTIVITIES, bearer, **window(1)))
        assert (status, code) == (400, 4711)
        assert message == f"Invalid access token, does not contain scopes:[{ACTIVITY_SCOPE}]."
        assert call(sim, session, OPERATIONS, bearer, **window(1)).status_code == 200


def test_classic_report_scope_reads_both_endpoints(session):
    with Simulator(seed=1, days=2, now=NOW, scopes=["report:read:admin"]) as sim:
        body = token_response(sim, session).json()
        assert body["scope"] == "report:read:admin"
        for path in (ACTIVITIES, OPERATIONS):
            assert call(sim, session, path, body["access_token"], **window(1)).status_code == 200


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (ACTIVITIES, {"to": "2025-03-10"}),
        (ACTIVITIES, {"from": "2025-03-10"}),
        (ACTIVITIES, {"from": "2025/03/01", "to": "2025-03-10"}),
        (ACTIVITIES, {"from": "2025-02-30", "to": "2025-03-10"}),
        (ACTIVITIES, {"from": "2025-3-1", "to": "2025-03-10"}),
        (ACTIVITIES, {"from": "2025-03-10", "to": "2025-03-09"}),  # to before from
        (ACTIVITIES, {"from": "2025-01-31", "to": "2025-03-01"}),  # over a month
        (OPERATIONS, {"from": "2025-02-10", "to": "2025-03-11"}),  # over a month
        (ACTIVITIES, {"from": "2024-09-14", "to": "2024-09-20"}),  # older than 6 months
        (ACTIVITIES, {"from": "2025-03-01", "to": "2025-03-10", "page_size": "0"}),
        (ACTIVITIES, {"from": "2025-03-01", "to": "2025-03-10", "page_size": "301"}),
        (ACTIVITIES, {"from": "2025-03-01", "to": "2025-03-10", "page_size": "ten"}),
        (OPERATIONS, {"from": "2025-03-01", "to": "2025-03-10", "category_type": "users"}),
        (OPERATIONS, {"from": "2025-03-01", "to": "2025-03-10", "category_type": "User"}),
    ],
)
def test_invalid_queries_get_code_300(shared, session, path, params):
    response = call(shared, session, path, token(shared, session), **params)
    status, code, message = zoom_error(response)
    assert (status, code) == (400, 300)
    assert message


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2025-01-31", "to": "2025-02-28"},  # exactly one calendar month
        {"from": "2025-02-10", "to": "2025-03-10"},
        {"from": "2024-09-15", "to": "2024-09-20"},  # exactly six months back
        {"from": "2025-03-14", "to": "2025-03-30"},  # `to` in the future
    ],
)
def test_edge_queries_are_accepted(shared, session, params):
    response = call(shared, session, ACTIVITIES, token(shared, session), **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"]) == (params["from"], params["to"])
    assert body["page_size"] == 30  # Zoom's default
    assert len(body["activity_logs"]) <= 30


# --------------------------------------------------------------------------- paging


@pytest.mark.parametrize("offset", [0, 14, -12])
def test_pages_newest_first_cover_exactly_the_local_dates(session, offset):
    with Simulator(
        seed=3, days=8, activity_per_day=500, now=NOW, account_utc_offset_hours=offset
    ) as sim:
        first, last = TODAY - timedelta(days=5), TODAY - timedelta(days=2)
        params = {"from": first.isoformat(), "to": last.isoformat(), "page_size": 97}
        bearer = token(sim, session)
        records, pages = fetch_all(sim, session, ACTIVITIES, bearer, "activity_logs", **params)

        start, end = utc_span(first, last, offset)
        truth = sim.ground_truth("activity_logs", start, end)
        assert len(truth) > 1000
        assert records == truth  # same records, same order
        times = [r["time"] for r in records]
        assert times == sorted(times, reverse=True)
        assert all(len(p["activity_logs"]) <= 97 for p in pages)
        assert all(p["next_page_token"] for p in pages[:-1]) and pages[-1]["next_page_token"] == ""
        # The account's time zone matters: UTC dates would give other records.
        if offset:
            assert truth != sim.ground_truth("activity_logs", *utc_span(first, last, 0))
        # Same-second ties come back in the same order every time.
        assert max(Counter(times).values()) > 1
        again, _ = fetch_all(sim, session, ACTIVITIES, bearer, "activity_logs", **params)
        assert again == records


def test_category_filter_selects_display_names(shared, session):
    bearer = token(shared, session)
    params = {**window(6, 5), "page_size": 300}
    everything, _ = fetch_all(shared, session, OPERATIONS, bearer, "operation_logs", **params)
    assert everything == shared.ground_truth("operation_logs", *utc_span(
        TODAY - timedelta(days=6), TODAY - timedelta(days=2), 0))  # fmt: skip
    by_filter = []
    for category, names in CATEGORY_DISPLAY_NAMES.items():
        records, _ = fetch_all(
            shared, session, OPERATIONS, bearer, "operation_logs", category_type=category, **params
        )
        assert {r["category_type"] for r in records} <= set(names), category
        by_filter.extend(records)
    assert {"IM", "Channels"} <= {r["category_type"] for r in everything}
    key = json.dumps
    assert Counter(map(key, by_filter)) == Counter(map(key, everything))


def test_page_tokens_expire(session):
    with Simulator(seed=4, days=3, activity_per_day=200, now=NOW, page_token_ttl=0.3) as sim:
        bearer = token(sim, session)
        params = {**window(1), "page_size": 10}
        first = call(sim, session, ACTIVITIES, bearer, **params).json()
        assert first["next_page_token"]
        params["next_page_token"] = first["next_page_token"]
        assert call(sim, session, ACTIVITIES, bearer, **params).status_code == 200
        time.sleep(0.4)
        response = call(sim, session, ACTIVITIES, bearer, **params)
        assert zoom_error(response) == (400, 300, PAGE_TOKEN_MESSAGE)


def test_page_tokens_are_tied_to_their_query(shared, session):
    bearer = token(shared, session)
    params = {**window(3, 2), "page_size": 10}
    first = call(shared, session, OPERATIONS, bearer, **params).json()
    page_token = first["next_page_token"]
    follow = {**params, "next_page_token": page_token}
    # The same token may be sent again (a retry) and gives the same page.
    second = call(shared, session, OPERATIONS, bearer, **follow).json()["operation_logs"]
    retried = call(shared, session, OPERATIONS, bearer, **follow).json()["operation_logs"]
    assert retried == second and len(second) == 10
    assert second[0] != first["operation_logs"][0]
    for path, changed in [
        (OPERATIONS, {"to": TODAY.isoformat()}),
        (OPERATIONS, {"page_size": 11}),
        (OPERATIONS, {"category_type": "user"}),
        (ACTIVITIES, {}),
        (OPERATIONS, {"next_page_token": "not-a-token"}),
    ]:
        response = call(shared, session, path, bearer, **{**follow, **changed})
        assert zoom_error(response) == (400, 300, PAGE_TOKEN_MESSAGE), (path, changed)


def test_duplicate_across_pages_repeats_each_pages_predecessor(session):
    with Simulator(seed=5, days=3, activity_per_day=300, now=NOW,
                   duplicate_across_pages=True) as sim:  # fmt: skip
        bearer = token(sim, session)
        params = {**window(2, 2), "page_size": 50}
        records, pages = fetch_all(sim, session, ACTIVITIES, bearer, "activity_logs", **params)
        assert len(pages) > 3
        for before, after in itertools.pairwise(pages):
            assert after["activity_logs"][0] == before["activity_logs"][-1]
        truth = sim.ground_truth(
            "activity_logs", *utc_span(TODAY - timedelta(days=2), TODAY - timedelta(days=1), 0)
        )
        assert len(records) == len(truth) + len(pages) - 1
        unique = {json.dumps(r, sort_keys=True) for r in records}
        assert unique == {json.dumps(r, sort_keys=True) for r in truth}


# --------------------------------------------------------------------------- rate limits


def test_qps_limit_answers_429_with_zoom_headers(session):
    with Simulator(seed=1, days=1, activity_per_day=5, now=NOW, qps_limit=3) as sim:
        bearer = token(sim, session)
        responses = [call(sim, session, ACTIVITIES, bearer, **window(0)) for _ in range(8)]
        statuses = [r.status_code for r in responses]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:], statuses
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.json() == {
            "code": 429,
            "message": "You have reached the maximum per-second rate limit for this API. "
            "Try again later.",
        }
        assert limited.headers["X-RateLimit-Type"] == "QPS"
        assert limited.headers["Retry-After"] == "1"
        assert limited.headers["X-RateLimit-Category"] == "Heavy"
        assert sim.stats.rate_limited == statuses.count(429)
        time.sleep(1.05)
        assert call(sim, session, ACTIVITIES, bearer, **window(0)).status_code == 200


def test_daily_limit_answers_429_until_next_utc_midnight(session):
    with Simulator(seed=1, days=1, activity_per_day=5, now=NOW, daily_limit=2) as sim:
        bearer = token(sim, session)
        responses = [call(sim, session, ACTIVITIES, bearer, **window(0)) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
        assert responses[0].headers["X-RateLimit-Limit"] == "2"
        limited = responses[2]
        assert "maximum daily rate limit" in limited.json()["message"]
        assert limited.headers["X-RateLimit-Type"] == "Daily-limit"
        assert limited.headers["Retry-After"] == "2025-03-16T00:00:00Z"


# --------------------------------------------------------------------------- faults


def _expect_status(status: int) -> Callable[..., None]:
    def check(sim: Simulator, session: requests.Session, bearer: str) -> None:
        response = call(sim, session, ACTIVITIES, bearer, **window(1))
        assert response.status_code == status
        assert response.json()["code"] == status

    return check


def _expect_reset(sim: Simulator, session: requests.Session, bearer: str) -> None:
    with pytest.raises(requests.ConnectionError):
        call(sim, session, ACTIVITIES, bearer, **window(1))
    assert sim.stats.requests[-1][2] == 0


def _expect_slow(sim: Simulator, session: requests.Session, bearer: str) -> None:
    began = time.monotonic()
    assert call(sim, session, ACTIVITIES, bearer, **window(1)).status_code == 200
    assert time.monotonic() - began >= 0.25


def _expect_qps_429(sim: Simulator, session: requests.Session, bearer: str) -> None:
    response = call(sim, session, ACTIVITIES, bearer, **window(1))
    assert response.status_code == 429
    assert (response.headers["X-RateLimit-Type"], response.headers["Retry-After"]) == ("QPS", "1")


def _expect_daily_429(sim: Simulator, session: requests.Session, bearer: str) -> None:
    for _ in range(3):  # until cleared, whatever the count
        response = call(sim, session, ACTIVITIES, bearer, **window(1))
        assert response.status_code == 429
        assert response.headers["X-RateLimit-Type"] == "Daily-limit"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", response.headers["Retry-After"])
    sim.faults.clear()


def _expect_revoked(sim: Simulator, session: requests.Session, bearer: str) -> None:
    assert zoom_error(call(sim, session, ACTIVITIES, bearer, **window(1)))[:2] == (401, 124)
    assert call(sim, session, ACTIVITIES, bearer, **window(1)).status_code == 401
    fresh = token(sim, session)
    assert call(sim, session, ACTIVITIES, fresh, **window(1)).status_code == 200


def _expect_page_token_expired(sim: Simulator, session: requests.Session, bearer: str) -> None:
    params = {**window(1), "page_size": 5}
    first = call(sim, session, ACTIVITIES, bearer, **params)  # no token: not hit
    assert first.status_code == 200
    params["next_page_token"] = first.json()["next_page_token"]
    response = call(sim, session, ACTIVITIES, bearer, **params)
    assert zoom_error(response) == (400, 300, PAGE_TOKEN_MESSAGE)


def _expect_html(sim: Simulator, session: requests.Session, bearer: str) -> None:
    response = call(sim, session, ACTIVITIES, bearer, **window(1))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def _expect_truncated(sim: Simulator, session: requests.Session, bearer: str) -> None:
    response = call(sim, session, ACTIVITIES, bearer, **window(1))
    assert response.status_code == 200
    assert response.text.startswith('{"from"')
    with pytest.raises(ValueError):
        json.loads(response.text)


def _expect_empty_page(sim: Simulator, session: requests.Session, bearer: str) -> None:
    params = {**window(1), "page_size": 5}
    empty = call(sim, session, ACTIVITIES, bearer, **params).json()
    assert empty["activity_logs"] == [] and empty["next_page_token"]
    following = call(
        sim, session, ACTIVITIES, bearer, **params, next_page_token=empty["next_page_token"]
    ).json()
    assert (
        following["activity_logs"]
        == sim.ground_truth(
            "activity_logs", *utc_span(TODAY - timedelta(days=1), TODAY - timedelta(days=1), 0)
        )[:5]
    )


FAULT_CHECKS: dict[str, tuple[Fault, Callable[..., None]]] = {
    "http_500": (Fault("http_500"), _expect_status(500)),
    "http_502": (Fault("http_502"), _expect_status(502)),
    "http_503": (Fault("http_503"), _expect_status(503)),
    "reset": (Fault("reset"), _expect_reset),
    "slow": (Fault("slow", delay=0.25), _expect_slow),
    "qps_429": (Fault("qps_429"), _expect_qps_429),
    "daily_429": (Fault("daily_429"), _expect_daily_429),
    "token_revoked": (Fault("token_revoked"), _expect_revoked),
    "page_token_expired": (Fault("page_token_expired"), _expect_page_token_expired),
    "html_200": (Fault("html_200"), _expect_html),
    "truncated_json": (Fault("truncated_json"), _expect_truncated),
    "empty_page_with_token": (Fault("empty_page_with_token"), _expect_empty_page),
}


def test_every_fault_kind_is_checked():
    assert set(FAULT_CHECKS) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", sorted(FAULT_CHECKS))
def test_fault_kind(session, kind):
    fault, check = FAULT_CHECKS[kind]
    with Simulator(seed=6, days=2, activity_per_day=100, now=NOW) as sim:
        bearer = token(sim, session)
        sim.faults.inject(fault)
        check(sim, session, bearer)
        assert sim.faults.hits(kind) >= 1
        # Spent (or cleared): the next call is answered normally.
        bearer = token(sim, session)
        assert call(sim, session, ACTIVITIES, bearer, **window(1)).status_code == 200


def test_fault_count_after_calls_and_path(session):
    with Simulator(seed=6, days=2, activity_per_day=20, now=NOW) as sim:
        bearer = token(sim, session)
        sim.faults.inject(Fault("http_503", count=2, after_calls=2, path="/v2/report/activities"))
        statuses = [call(sim, session, ACTIVITIES, bearer, **window(1)).status_code
                    for _ in range(5)]  # fmt: skip
        assert statuses == [200, 200, 503, 503, 200]
        sim.faults.inject(Fault("http_500", count=None, path=OPERATIONS))
        assert call(sim, session, ACTIVITIES, bearer, **window(1)).status_code == 200
        assert call(sim, session, OPERATIONS, bearer, **window(1)).status_code == 500
        sim.faults.clear()
        assert call(sim, session, OPERATIONS, bearer, **window(1)).status_code == 200
        # The token endpoint only when asked for.
        sim.faults.inject(Fault("http_503", path="/oauth/token"))
        assert call(sim, session, ACTIVITIES, bearer, **window(1)).status_code == 200
        assert token_response(sim, session).status_code == 503
        assert token_response(sim, session).status_code == 200
        assert sim.stats.token_requests == 3


def test_probabilistic_faults_are_seeded(session):
    def pattern() -> list[int]:
        with Simulator(seed=8, days=1, activity_per_day=5, now=NOW) as sim:
            bearer = token(sim, session)
            sim.faults.inject(Fault("http_502", count=None, probability=0.3))
            return [call(sim, session, ACTIVITIES, bearer, **window(0)).status_code
                    for _ in range(30)]  # fmt: skip

    first = pattern()
    assert 0 < first.count(502) < 30
    assert set(first) == {200, 502}
    assert pattern() == first


def test_fault_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("http_418")
    with pytest.raises(ValueError):
        Fault("http_500", probability=1.5)
    with pytest.raises(ValueError):
        Fault("http_500", count=0)


# --------------------------------------------------------------------------- data


def test_same_seed_same_data_other_seed_other_data(session):
    def snapshot(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bytes]:
        with Simulator(seed=seed, days=3, activity_per_day=150, operation_per_day=30,
                       now=NOW) as sim:  # fmt: skip
            page = call(sim, session, ACTIVITIES, token(sim, session), **window(1))
            return (
                sim.ground_truth("activity_logs"),
                sim.ground_truth("operation_logs"),
                page.content.replace(page.json()["next_page_token"].encode(), b""),
            )

    first = snapshot(21)
    assert first[0] and first[1]
    assert snapshot(21) == first
    assert snapshot(22)[0] != first[0]


def test_generated_records_look_like_zoom(shared):
    activity = shared.ground_truth("activity_logs")
    assert 20 * 400 * 0.8 < len(activity) < 20 * 400 * 1.2
    times = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in activity]
    assert max(times) <= NOW and min(times) >= NOW - timedelta(days=20)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["time"]) for r in activity)
    assert {r["type"] for r in activity} == {"Sign in", "Sign out"}
    emails = [r["email"] for r in activity]
    assert any(not e.isascii() and re.search(r"[\u4e00-\u9fff\uac00-\ud7af]", e) for e in emails)
    assert any(re.search(r"[à-ž]", e) for e in emails)
    addresses = [r["ip_address"] for r in activity if "ip_address" in r]
    assert any(":" in a for a in addresses) and any(re.fullmatch(r"[\d.]+", a) for a in addresses)
    assert any(set(r) == {"email", "time", "type"} for r in activity)
    clients = Counter(r.get("client_type") for r in activity)
    assert {"Browser", "win", "Windows", "Mac", "iOS", "Android", "Linux"} <= set(clients)
    for r in activity:
        if r.get("client_type") == "Browser":
            assert r["version"] == "-"
        elif "version" in r:
            assert re.fullmatch(r"\d+\.\d+\.\d+ \(\d+\)", r["version"]), r
    assert max(Counter(r["time"] for r in activity).values()) > 1

    operations = shared.ground_truth("operation_logs")
    names = {n for group in CATEGORY_DISPLAY_NAMES.values() for n in group}
    assert {r["category_type"] for r in operations} == names
    assert all(set(r) == {"time", "operator", "category_type", "action", "operation_detail"}
               for r in operations)  # fmt: skip
    assert {"Add", "Update", "Delete", "Sign in with SSO"} <= {r["action"] for r in operations}
    assert any(len(r["operation_detail"]) > 2000 for r in operations)
    assert any(re.fullmatch(r"Change Role  - \S+@\S+: from \w+ to \w+", r["operation_detail"])
               for r in operations)  # fmt: skip


def test_late_records_appear_on_release(session):
    with Simulator(seed=9, days=3, activity_per_day=400, now=NOW, late_fraction=0.2) as sim:
        bearer = token(sim, session)
        params = {**window(2, 3), "page_size": 300}
        before, _ = fetch_all(sim, session, ACTIVITIES, bearer, "activity_logs", **params)
        visible = sim.ground_truth("activity_logs")
        assert before == sim.ground_truth("activity_logs", *utc_span(
            TODAY - timedelta(days=2), TODAY, 0))  # fmt: skip

        sim.release_late()
        after, _ = fetch_all(sim, session, ACTIVITIES, bearer, "activity_logs", **params)
        released = sim.ground_truth("activity_logs")
        assert 0.1 < 1 - len(visible) / len(released) < 0.3
        new = [r for r in after if r not in before]
        assert len(after) == len(before) + len(new) and new
        assert min(r["time"] for r in new) < before[0]["time"]  # late: older than the newest


def test_added_records_are_served_in_place(session):
    with Simulator(seed=10, days=3, activity_per_day=200, now=NOW) as sim:
        bearer = token(sim, session)
        older = {"email": "late@example.com", "time": "2025-03-14T08:00:00Z", "type": "Sign in"}
        fresh = {
            "email": "new@example.com",
            "time": "2025-03-15T10:31:00Z",
            "type": "Sign out",
            "ip_address": "2001:db8::1",
            "client_type": "Linux",
            "version": "6.2.5 (41233)",
        }
        malformed = {"email": "broken@example.com", "time": "yesterday", "type": "Sign in"}
        sim.add_records("activity_logs", [older, fresh, malformed])
        params = {**window(1, 2), "page_size": 300}
        records, _ = fetch_all(sim, session, ACTIVITIES, bearer, "activity_logs", **params)
        assert records == sim.ground_truth("activity_logs", *utc_span(
            TODAY - timedelta(days=1), TODAY, 0))  # fmt: skip
        assert records[0] == fresh  # the newest
        assert malformed in records  # served as given; placed at the time it was added
        position = records.index(older)
        assert records[position - 1]["time"] >= older["time"] >= records[position + 1]["time"]


def test_stats_count_calls(session):
    with Simulator(seed=1, days=1, activity_per_day=5, now=NOW) as sim:
        bearer = token(sim, session)
        call(sim, session, ACTIVITIES, bearer, **window(0))
        call(sim, session, OPERATIONS, bearer, **window(0), category_type="role")
        call(sim, session, OPERATIONS, None, **window(0))
        stats = sim.stats
        assert (stats.calls, stats.token_requests, stats.rate_limited) == (3, 1, 0)
        assert stats.calls_by_path == {"/v2/report/activities": 1, "/v2/report/operationlogs": 2}
        assert stats.requests[1] == (
            "/v2/report/operationlogs",
            {**window(0), "category_type": "role"},
            200,
        )
        assert stats.requests[2][2] == 401
        stats.reset()
        assert (stats.calls, stats.requests, stats.calls_by_path) == (0, [], {})


def test_stop_closes_keep_alive_connections(session):
    sim = Simulator(seed=1, days=1, activity_per_day=5, now=NOW).start()
    bearer = token(sim, session)
    assert call(sim, session, ACTIVITIES, bearer, **window(0)).status_code == 200
    url = sim.api_url
    sim.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url + ACTIVITIES, params=window(0), timeout=TIMEOUT)
    assert sim.client_secret not in repr(sim) and sim.account_id in repr(sim)


def test_command_line_prints_working_settings(session):
    source = Path(__file__).resolve().parents[1] / "src"
    with foreground(
        [sys.executable, "-m", "zoom_ingest.simulator", "--days", "1", "--seed", "3"],
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
    ) as process:
        settings: dict[str, str] = {}
        assert process.stdout is not None
        for _ in range(10):
            line = process.stdout.readline().strip()
            if "=" in line and line.startswith("export ZOOM_"):
                name, _, value = shlex.split(line)[1].partition("=")
                settings[name] = value
            if "ZOOM_CLIENT_SECRET" in settings:
                break
        assert set(settings) == {
            "ZOOM_API_URL", "ZOOM_OAUTH_URL", "ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID",
            "ZOOM_CLIENT_SECRET",
        }  # fmt: skip
        response = session.post(
            settings["ZOOM_OAUTH_URL"],
            auth=(settings["ZOOM_CLIENT_ID"], settings["ZOOM_CLIENT_SECRET"]),
            data={"grant_type": "account_credentials", "account_id": settings["ZOOM_ACCOUNT_ID"]},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200
        assert settings["ZOOM_API_URL"].endswith("/v2")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_printed_lines_are_shell_quoted_exports():
    secret = 'it\'s a $HOME `id` "secret" \\ ;|&'
    with Simulator(seed=3, days=1, activity_per_day=5, now=NOW, client_secret=secret) as sim:
        lines = env_lines(sim)
        shell = subprocess.run(
            ["bash", "-c", "\n".join(lines) + "\nenv"],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert shell.returncode == 0, shell.stderr
        assert all(line.startswith("export ZOOM_") for line in lines)
        arrived = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
        assert arrived["ZOOM_CLIENT_SECRET"] == secret
        assert arrived["ZOOM_API_URL"] == sim.api_url
        assert arrived["ZOOM_OAUTH_URL"] == sim.oauth_url
        assert arrived["ZOOM_ACCOUNT_ID"] == sim.account_id
        assert arrived["ZOOM_CLIENT_ID"] == sim.client_id


def test_a_simulator_started_later_serves_the_same_history_plus_what_happened_since():
    earlier = Simulator(seed=4, days=3, activity_per_day=500, operation_per_day=80, now=NOW)
    later_now = NOW + timedelta(hours=5)
    later = Simulator(seed=4, days=3, activity_per_day=500, operation_per_day=80, now=later_now)
    overlap_start = later_now - timedelta(days=3)
    for stream in ("activity_logs", "operation_logs"):
        before = earlier.ground_truth(stream, start=overlap_start, end=NOW)
        after = later.ground_truth(stream, start=overlap_start, end=NOW)
        assert before and before == after
        assert later.ground_truth(stream, start=NOW, end=later_now)  # the new hours
