"""Routes: the endpoint table and the dispatch of each request, checks in Zoom's order.

A request to ``/oauth/token`` goes to the token endpoint; anything else is an API call:
arrival faults first, then the bearer token (401 code 124), the path (404), the
method (405), the scope (400 code 4711), the rate limits (429), the query (400 code
300), the next_page_token, and finally a page. Every API answer but a reset carries
``x-zm-trackingid`` and the rate-limit headers; every request is counted in `Stats`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from . import oauth
from .data import ACTIVITY_LOGS, OPERATION_LOGS
from .faults import (
    ARRIVAL_KINDS,
    HTTP_ERROR_KINDS,
    PAGE_KINDS,
    PAGE_TOKEN_KINDS,
    TOKEN_PATH,
    Fault,
    FaultSet,
)
from .http import (
    RESET,
    ApiError,
    Reply,
    json_reply,
    single_values,
    tracking_id,
    truncated,
    with_headers,
)
from .oauth import ACTIVITY_SCOPE, OPERATION_SCOPE, AccessTokens, Credentials
from .paging import Pager, read_query
from .ratelimits import RateLimits, Stats, too_many


@dataclass(frozen=True)
class Endpoint:
    stream: str
    scope: str
    records_key: str


ENDPOINTS: Mapping[str, Endpoint] = {
    "/v2/report/activities": Endpoint(ACTIVITY_LOGS, ACTIVITY_SCOPE, "activity_logs"),
    "/v2/report/operationlogs": Endpoint(OPERATION_LOGS, OPERATION_SCOPE, "operation_logs"),
}


class Host(Protocol):
    """What the routes read from the simulator at each call (it may change between calls)."""

    account_id: str
    client_id: str
    client_secret: str
    scopes: frozenset[str]
    token_ttl: float
    latency: float
    duplicate_across_pages: bool
    faults: FaultSet
    stats: Stats

    @property
    def base_url(self) -> str: ...

    def clock(self) -> datetime: ...


class Routes:
    """Answers the requests of one simulator."""

    def __init__(self, host: Host, tokens: AccessTokens, limits: RateLimits, pager: Pager) -> None:
        self._host = host
        self._tokens = tokens
        self._limits = limits
        self._pager = pager

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Reply:
        """Answer one HTTP request (the server's threads call this)."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = single_values(parts.query)
        if path == TOKEN_PATH:
            reply = self._token_request(method, query, body, authorization)
            self._host.stats.record_token_request(reply.status)
            return reply
        reply = self._api_call(method, path, query, authorization)
        self._host.stats.record_call(path, query, reply.status)
        return reply

    def _token_request(
        self, method: str, query: dict[str, str], body: bytes, authorization: str | None
    ) -> Reply:
        host = self._host
        headers = [("x-zm-trackingid", tracking_id())]
        fault = host.faults.take(ARRIVAL_KINDS, TOKEN_PATH)
        if fault is not None:
            early = self._arrival_fault(fault)
            if early is not None:
                return early if early is RESET else with_headers(early, headers)
        answer = oauth.grant(
            method,
            query,
            body,
            authorization,
            credentials=Credentials(host.account_id, host.client_id, host.client_secret),
            scopes=host.scopes,
            ttl=host.token_ttl,
            tokens=self._tokens,
            api_url=host.base_url,
        )
        reply = with_headers(answer, headers)
        if reply.status == 200 and host.faults.take(PAGE_KINDS, TOKEN_PATH) is not None:
            reply = truncated(reply)
        return reply

    def _api_call(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> Reply:
        if self._host.latency:
            time.sleep(self._host.latency)
        try:
            fault = self._host.faults.take(ARRIVAL_KINDS, path)
            reply = self._arrival_fault(fault) if fault is not None else None
            if reply is None:
                reply = self._report(method, path, query, authorization)
        except ApiError as error:
            reply = error.reply
        if reply is RESET:
            return reply
        return with_headers(reply, [("x-zm-trackingid", tracking_id()), *self._limits.headers()])

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
            return too_many("qps", self._host.clock())
        elif kind == "daily_429":
            return too_many("daily", self._host.clock())
        elif kind == "token_revoked":
            self._tokens.revoke_all()
        elif kind == "html_200":
            page = b"<!DOCTYPE html><html><head><title>Zoom</title></head><body>"
            page += b"<h1>We'll be right back</h1></body></html>"
            return Reply(200, page, [("Content-Type", "text/html;charset=UTF-8")])
        return None

    def _report(
        self, method: str, path: str, params: dict[str, str], authorization: str | None
    ) -> Reply:
        host = self._host
        scopes = self._tokens.authorise(authorization)
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            raise ApiError(404, 404, "Not Found.")
        if method != "GET":
            raise ApiError(405, 405, f"Method {method} is not allowed.")
        oauth.require_scope(scopes, endpoint.scope)
        refused = self._limits.admit()
        if refused is not None:
            return too_many(refused, host.clock())
        query = read_query(
            params, host.clock().date(), categories=endpoint.stream == OPERATION_LOGS
        )
        chain = self._pager.tokens.resolve(path, query)
        if query.page_token and host.faults.take(PAGE_TOKEN_KINDS, path) is not None:
            self._pager.tokens.expire(query.page_token)
        fault = host.faults.take(PAGE_KINDS, path)
        kind = fault.kind if fault is not None else None
        reply = self._pager.page(
            endpoint.stream,
            endpoint.records_key,
            path,
            query,
            chain,
            empty=kind == "empty_page_with_token",
            repeat_last=host.duplicate_across_pages,
        )
        return truncated(reply) if kind == "truncated_json" else reply
