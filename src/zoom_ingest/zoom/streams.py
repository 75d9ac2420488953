"""The report streams, each declared once, and how one date window of a stream is paged.

`STREAMS_BY_NAME` is the registry: planning, the job, the CLI and the Databricks entry
point take the list of streams from it (settings validation from LOG_TABLES, which
holds one table per stream: tests/test_stream_registry.py). Adding a Zoom report means
one `Stream` entry here plus its `TableSpec` (tables.py, listed in LOG_TABLES).

Zoom serves each `from`/`to` request newest first, 300 records a page, chained by
`next_page_token` until it is empty. Four things make the chain more than a loop:

- proof: a window counts as complete only when its pages prove it (`fetch_pages`): each
  page has its records list, its records lie inside the window (with the day-reading
  slack of rules.py), they come newest first within and across pages, and the chain ends
  with an empty token. A page that breaks any of these ends the window with
  `IncompleteAnswer` (its checkpoint stays; exit code 7); records outside the window
  become rejects and never drive the early stop;
- early stop: an incremental window only needs records at or after `stop_before`. Records
  come newest first (proven, above), so once a page reaches below that instant every
  later page is older still: that page is the last one asked for;
- page tokens expire (15 minutes, code 300): the window restarts from its first page and
  the caller de-duplicates by `lw_id`;
- a broken server must not keep us paging forever: the chain is bounded
  (`max_pages_per_window`), and a token seen before, or a fresh token that brings the
  very same records again, is a loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from operator import ge, itemgetter
from typing import Any, Protocol

from ..tables import ACTIVITY_LOGS, OPERATION_LOGS, UTC, TableSpec, format_time
from .client import CallCounters, ZoomClient
from .errors import IncompleteAnswer, ZoomRequestError, ZoomScopeError
from .rules import AHEAD_OF_UTC, BEHIND_UTC, PAGE_SIZE
from .times import RecordError, all_canonical, parse_time

log = logging.getLogger(__name__)

#: Zoom's code for "The next page token is invalid or expired" (also bad date ranges).
CODE_INVALID_REQUEST = 300
#: Restarts of one window after an expired page token before giving up.
MAX_RESTARTS_PER_WINDOW = 3
#: How far a record's instant may lie outside its window's dates: Zoom reads the dates
#: in a zone from UTC−12 to UTC+14 (rules.py), which one is undocumented, so either side
#: gets the larger offset.
WINDOW_SLACK = max(BEHIND_UTC, AHEAD_OF_UTC)
#: …and gives up sooner on empty pages that keep carrying a next_page_token: a few are
#: normal, a thousand in a row (300,000 records' worth of nothing) is a loop, and at
#: Zoom's 10 requests/s waiting for the page cap (`max_pages`, the run's
#: max_pages_per_window setting) of them would take hours.
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
        """What makes a 200 body unusable for this stream, or None. A page without its
        records list (missing, null or another type) is never read as an empty page: an
        empty page says so with `[]`."""
        records = body.get(self.records_key)
        if type(records) is not list:
            found = "missing" if records is None else type(records).__name__
            return f"{self.records_key!r} is {found}, expected a list"
        token = body.get("next_page_token")
        if token is not None and not isinstance(token, str):
            return f"next_page_token is {type(token).__name__}, expected a string"
        return None


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
class Stray:
    """A record Zoom sent in a window's page from outside the window, and why it does not
    belong there: never one of the page's records; the job stores it as a reject."""

    reason: str
    record: Any


@dataclass(frozen=True)
class Page:
    """One page of a window: the raw records as parsed (possibly malformed) and the
    span of the times that could be parsed, of the records inside the window."""

    records: list[Any]
    next_page_token: str
    newest: datetime | None
    oldest: datetime | None
    #: The window's record count when Zoom says it (`total_records`; not documented for
    #: these endpoints, so usually None): lets the job put its longest chains first.
    total_records: int | None = None
    #: Records of the page outside its window (never in `records`).
    strays: tuple[Stray, ...] = ()
    #: Why this page ends the window unproven (the last page `fetch_pages` yields), or
    #: None. Its records are still Zoom's and may be stored; the window is not complete.
    failure: IncompleteAnswer | None = None


class DateWindow(Protocol):
    """What paging needs of a window (plan.Window is one): its dates and where it may stop."""

    @property
    def from_date(self) -> date: ...
    @property
    def to_date(self) -> date: ...
    @property
    def stop_before(self) -> datetime | None: ...


def window_bounds(window: DateWindow) -> tuple[datetime, datetime]:
    """The instants [low, high) a window's records may have: its dates read in any zone."""
    low = datetime.combine(window.from_date, time(0), tzinfo=UTC) - WINDOW_SLACK
    high = datetime.combine(window.to_date + timedelta(days=1), time(0), tzinfo=UTC)
    return low, high + WINDOW_SLACK


def fetch_pages(
    client: ZoomClient,
    stream: Stream,
    window: DateWindow,
    category_type: str,
    counters: CallCounters,
    *,
    max_pages: int,
) -> Iterator[Page]:
    """The pages of one window, newest first. Raises a `ZoomError` subclass on failure.

    The window is complete when this ends without raising and without a page whose
    `failure` is set (that page is the last one). After a restart (expired page token)
    pages already yielded come again; the caller de-duplicates by `lw_id`. `max_pages`:
    the pages the window may take before it counts as a loop (the run's
    max_pages_per_window setting).
    """
    base_params: dict[str, Any] = {
        "from": window.from_date.isoformat(),
        "to": window.to_date.isoformat(),
        "page_size": PAGE_SIZE,
        **stream.query_params(category_type),
    }
    low, high = window_bounds(window)
    restarts = 0
    pages = 0
    empty_in_a_row = 0
    token = ""
    proof = _Proof()
    while True:
        if pages >= max_pages:
            raise IncompleteAnswer(
                f"{window}: more than {max_pages:,} pages (max_pages_per_window); Zoom "
                "kept sending next_page_token",
                reason=f"more than {max_pages:,} pages (max_pages_per_window)",
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
            proof = _Proof()  # the chain starts again: so does its proof
            continue
        except ZoomScopeError as exc:
            raise _with_stream_scopes(exc, stream) from exc

        pages += 1
        counters.add("pages")
        records: list[Any] = body[stream.records_key]  # a list: `check_body`
        token = body.get("next_page_token") or ""
        empty_in_a_row = 0 if records or not token else empty_in_a_row + 1
        if empty_in_a_row >= MAX_EMPTY_PAGES_IN_A_ROW:
            raise IncompleteAnswer(
                f"{window}: gave up after {empty_in_a_row} empty pages in a row, each with "
                "a next_page_token",
                reason=f"{empty_in_a_row} empty pages in a row with a next_page_token",
            )
        newest, oldest, ordered = _time_span(records, stream.cursor_field)
        strays: tuple[Stray, ...] = ()
        if newest is not None and oldest is not None and (newest >= high or oldest < low):
            records, strays = _split_strays(records, stream.cursor_field, low, high, window)
            newest, oldest, ordered = _time_span(records, stream.cursor_field)
        problem = proof.check(records, token, newest, oldest, ordered=ordered)
        if problem is None and strays:
            problem = f"{len(strays)} records outside the window"
        total = body.get("total_records")
        yield Page(
            records=records,
            next_page_token=token,
            newest=newest,
            oldest=oldest,
            total_records=total if type(total) is int and total >= 0 else None,
            strays=strays,
            failure=None
            if problem is None
            else IncompleteAnswer(f"{window}: {problem}", reason=problem),
        )
        if problem is not None or not token:
            return
        if window.stop_before is not None and oldest is not None and oldest < window.stop_before:
            log.debug("%s: page reaches below %s; stopping early", window, window.stop_before)
            return


class _Proof:
    """What the pages of one chain so far prove: checks each next page against them."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.previous_records: list[Any] | None = None
        self.previous_oldest: datetime | None = None

    def check(
        self,
        records: list[Any],
        token: str,
        newest: datetime | None,
        oldest: datetime | None,
        *,
        ordered: bool,
    ) -> str | None:
        """Why this page (in-window records) breaks the chain's proof, or None."""
        problem = None
        if token and token in self.tokens:
            problem = "page-token loop: a next_page_token came again"
        elif token and records and records == self.previous_records:
            problem = "page-token loop: a fresh next_page_token brought the same records"
        elif not ordered:
            problem = "records out of order (not newest first) within a page"
        elif (
            newest is not None
            and self.previous_oldest is not None
            and newest > self.previous_oldest
        ):
            problem = "records out of order (not newest first) across pages"
        if token:
            self.tokens.add(token)
        if records:
            self.previous_records = records
        if oldest is not None:
            self.previous_oldest = oldest
        return problem


def _split_strays(
    records: list[Any], cursor_field: str, low: datetime, high: datetime, window: DateWindow
) -> tuple[list[Any], tuple[Stray, ...]]:
    """The records inside [low, high) (or with no readable time: the normaliser rejects
    those with their reason), and the others, each with its reason."""
    inside: list[Any] = []
    strays: list[Stray] = []
    span = f"{window.from_date}..{window.to_date}"
    for record in records:
        try:
            instant = parse_time(record.get(cursor_field)) if isinstance(record, dict) else None
        except RecordError:
            instant = None
        if instant is None or low <= instant < high:
            inside.append(record)
        else:
            reason = f"{cursor_field}: {format_time(instant)} is outside the window {span}"
            strays.append(Stray(reason=reason, record=record))
    return inside, tuple(strays)


def _time_span(
    records: list[Any], cursor_field: str
) -> tuple[datetime | None, datetime | None, bool]:
    """The newest and oldest parseable time of a page (None, None when it has none), and
    whether those times come newest first (ties allowed)."""
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
        return None, None, True
    return max(times), min(times), _newest_first(times)


def _newest_first(values: list[Any]) -> bool:
    """Each value at or before the one above it (C loops: cheap on every page)."""
    return all(map(ge, values, islice(values, 1, None)))


def _canonical_span(
    records: list[Any], cursor_field: str
) -> tuple[datetime, datetime, bool] | None:
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
    if _newest_first(times):
        return parse_time(times[0]), parse_time(times[-1]), True
    return parse_time(max(times)), parse_time(min(times)), False


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
