"""The report streams, each declared once, and how one date window of a stream is paged.

`STREAMS_BY_NAME` is the registry: settings validation, planning, the job, the CLI and the
Databricks entry point all take the list of streams from it. Adding a Zoom report means
one `Stream` entry here plus its `TableSpec` (tables.py, listed in LOG_TABLES).

Zoom serves each `from`/`to` request newest first, 300 records a page, chained by
`next_page_token` until it is empty. Three things make the chain more than a loop:

- early stop: an incremental window only needs records at or after `stop_before`. Records
  come newest first, so once a page reaches below that instant every later page is older
  still: that page is the last one asked for;
- page tokens expire (15 minutes, code 300): the window restarts from its first page and
  the caller de-duplicates by `lw_id`;
- a broken server must not keep us paging forever: the chain is bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any, Protocol

from ..normalise import RecordError, all_canonical, parse_time
from ..tables import ACTIVITY_LOGS, OPERATION_LOGS, TableSpec
from .client import CallCounters, ZoomClient
from .errors import ZoomError, ZoomRequestError, ZoomScopeError
from .rules import PAGE_SIZE

log = logging.getLogger(__name__)

#: Zoom's code for "The next page token is invalid or expired" (also bad date ranges).
CODE_INVALID_REQUEST = 300
#: Restarts of one window after an expired page token before giving up.
MAX_RESTARTS_PER_WINDOW = 3
#: One window never takes more pages than this (30M records at 300 a page: far beyond
#: a month of any account's logs), so a server that keeps sending tokens cannot loop us.
MAX_PAGES_PER_WINDOW = 100_000
#: …and gives up sooner on empty pages that keep carrying a next_page_token: a few are
#: normal, a thousand in a row (300,000 records' worth of nothing) is a loop, and at
#: Zoom's 10 requests/s waiting for MAX_PAGES_PER_WINDOW of them would take hours.
MAX_EMPTY_PAGES_IN_A_ROW = 1_000


@dataclass(frozen=True)
class Stream:
    """One report endpoint, named after the table it fills."""

    name: str
    path: str
    #: The key of the records list in the response body.
    records_key: str
    spec: TableSpec
    #: OAuth scopes any one of which the endpoint accepts: granular first, then classic.
    scopes: tuple[str, ...]
    #: The endpoint takes the `category_type` filter (rules.CATEGORY_TYPES).
    takes_category_type: bool = False

    @property
    def cursor_field(self) -> str:
        """The record field the checkpoint cursor follows (records come newest first by
        it): the table's clustering column, `time` for every log table."""
        return self.spec.cluster_by or "time"

    def query_params(self, category_type: str) -> dict[str, str]:
        """Query parameters of this stream besides the window and the page."""
        return {"category_type": category_type} if self.takes_category_type else {}

    def check_body(self, body: dict[str, Any]) -> str | None:
        """What makes a 200 body unusable for this stream, or None."""
        records = body.get(self.records_key)
        if records is None and _REPORT_KEYS & body.keys():
            return None  # a report page with the list left out: no records (not garbage)
        if not isinstance(records, list):
            found = "missing" if records is None else type(records).__name__
            return f"{self.records_key!r} is {found}, expected a list"
        token = body.get("next_page_token")
        if token is not None and not isinstance(token, str):
            return f"next_page_token is {type(token).__name__}, expected a string"
        return None


#: Keys of a report response besides the records list; a body with any of them and no
#: records list is an empty page, not an HTML error page or a truncated body.
_REPORT_KEYS = frozenset({"from", "to", "page_size", "next_page_token", "total_records"})


#: The registry: every report the ingest fetches, by name, in the order runs list them.
#: Consumers look streams up here when they run (not at import), so a stream entered
#: here is known everywhere.
STREAMS_BY_NAME: dict[str, Stream] = {
    stream.name: stream
    for stream in (
        Stream(
            name="activity_logs",
            path="/report/activities",
            records_key="activity_logs",
            spec=ACTIVITY_LOGS,
            scopes=("report:read:user_activities:admin", "report:read:admin"),
        ),
        Stream(
            name="operation_logs",
            path="/report/operationlogs",
            records_key="operation_logs",
            spec=OPERATION_LOGS,
            scopes=("report:read:operation_logs:admin", "report:read:admin"),
            takes_category_type=True,
        ),
    )
}


def stream_names() -> tuple[str, ...]:
    """The registered streams' names, in registry order (e.g. for help texts and checks)."""
    return tuple(STREAMS_BY_NAME)


@dataclass(frozen=True)
class Page:
    """One page of a window: the raw records as parsed (possibly malformed) and the
    span of the times that could be parsed."""

    records: list[Any]
    next_page_token: str
    newest: datetime | None
    oldest: datetime | None
    #: The window's record count when Zoom says it (`total_records`; not documented for
    #: these endpoints, so usually None): lets the job put its longest chains first.
    total_records: int | None = None


class DateWindow(Protocol):
    """What paging needs of a window (plan.Window is one): its dates and where it may stop."""

    @property
    def from_date(self) -> date: ...
    @property
    def to_date(self) -> date: ...
    @property
    def stop_before(self) -> datetime | None: ...


def fetch_pages(
    client: ZoomClient,
    stream: Stream,
    window: DateWindow,
    category_type: str,
    counters: CallCounters,
) -> Iterator[Page]:
    """The pages of one window, newest first. Raises a `ZoomError` subclass on failure.

    After a restart (expired page token) pages already yielded come again; the caller
    de-duplicates by `lw_id`.
    """
    base_params: dict[str, Any] = {
        "from": window.from_date.isoformat(),
        "to": window.to_date.isoformat(),
        "page_size": PAGE_SIZE,
        **stream.query_params(category_type),
    }
    restarts = 0
    pages = 0
    empty_in_a_row = 0
    token = ""
    while True:
        if pages >= MAX_PAGES_PER_WINDOW:
            raise ZoomError(
                f"{window}: gave up after {pages} pages; Zoom keeps sending next_page_token",
                hint="the API seems to be looping; try again later",
            )
        params = dict(base_params)
        if token:
            params["next_page_token"] = token
        try:
            body = client.get(stream.path, params, counters, check=stream.check_body)
        except ZoomRequestError as exc:
            if not token or exc.code not in (CODE_INVALID_REQUEST, str(CODE_INVALID_REQUEST)):
                raise
            if restarts >= MAX_RESTARTS_PER_WINDOW:
                raise ZoomRequestError(
                    f"{window}: the next page token expired {restarts + 1} times",
                    status=exc.status,
                    code=exc.code,
                    message=exc.message,
                    tracking_id=exc.tracking_id,
                    hint="paging is too slow for Zoom's 15-minute page tokens; "
                    "lower the concurrency or use smaller windows",
                ) from exc
            restarts += 1
            log.warning(
                "%s: next page token rejected (%s); restarting the window from its first "
                "page (%d/%d)",
                window,
                exc.message or f"code {exc.code}",
                restarts,
                MAX_RESTARTS_PER_WINDOW,
            )
            token = ""
            continue
        except ZoomScopeError as exc:
            raise _with_stream_scopes(exc, stream) from exc

        pages += 1
        counters.add("pages")
        records: list[Any] = body.get(stream.records_key) or []
        token = body.get("next_page_token") or ""
        empty_in_a_row = 0 if records or not token else empty_in_a_row + 1
        if empty_in_a_row >= MAX_EMPTY_PAGES_IN_A_ROW:
            raise ZoomError(
                f"{window}: gave up after {empty_in_a_row} empty pages in a row, each with "
                "a next_page_token",
                hint="the API seems to be looping; try again later",
            )
        newest, oldest = _time_span(records, stream.cursor_field)
        total = body.get("total_records")
        yield Page(
            records=records,
            next_page_token=token,
            newest=newest,
            oldest=oldest,
            total_records=total if type(total) is int and total >= 0 else None,
        )
        if not token:
            return
        if window.stop_before is not None and oldest is not None and oldest < window.stop_before:
            log.debug("%s: page reaches below %s; stopping early", window, window.stop_before)
            return


def _time_span(records: list[Any], cursor_field: str) -> tuple[datetime | None, datetime | None]:
    """The newest and oldest parseable time of a page (None, None when it has none)."""
    canonical = _canonical_span(records, cursor_field)
    if canonical is not None:
        return canonical
    times = []
    for record in records:
        if isinstance(record, dict):
            try:
                times.append(parse_time(record.get(cursor_field)))
            except RecordError:
                continue  # the normaliser rejects it with the reason
    if not times:
        return None, None
    return max(times), min(times)


def _canonical_span(records: list[Any], cursor_field: str) -> tuple[datetime, datetime] | None:
    """`_time_span` of a page whose every record is an object with its time in Zoom's
    canonical form (`2025-08-11T14:32:18Z`), else None. Such times sort as text as they
    do as times, so only the newest and the oldest are parsed, not the 300 (the parse
    was a tenth of the job's CPU per record)."""
    if not records or set(map(type, records)) != {dict}:
        return None
    try:
        # map and itemgetter run in C: a Python loop over 300 records cost as much as
        # the rest of this function.
        times = list(map(itemgetter(cursor_field), records))
    except KeyError:  # a record without a time: the loop below rejects it
        return None
    # A canonical-looking time that is no date (02-30) is not canonical here: the loop
    # of `_time_span` skips it.
    if set(map(type, times)) != {str} or not all_canonical(times):
        return None
    return parse_time(max(times)), parse_time(min(times))


def _with_stream_scopes(exc: ZoomScopeError, stream: Stream) -> ZoomScopeError:
    return ZoomScopeError(
        f"{stream.name}: the app lacks a required OAuth scope for GET {stream.path}",
        scopes=exc.scopes or stream.scopes[:1],
        accepted_scopes=stream.scopes,
        status=exc.status,
        code=exc.code,
        message=exc.message,
        tracking_id=exc.tracking_id,
    )
