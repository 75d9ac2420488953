"""Paging: a report call's date window and page size checked, then one newest-first page served.

`read_query` applies Zoom's rules to ``from``/``to`` (dates, at most one month apart,
within the last six months), ``page_size`` (1–300, default 30) and
``category_type`` (400 code 300 otherwise). A ``next_page_token`` stands for a `Chain`
(the query and where its next page starts); it lives a while, may be sent again
meanwhile, and is refused when the query around it changed. `Pager` serves a page of
the account's records between the window's local-date bounds, newest first.
"""

from __future__ import annotations

import calendar
import json
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import date

from .data import CATEGORY_FILTERS, Dataset, category_codes, day_bounds
from .http import JSON_TYPE, ApiError, Reply

#: Zoom's server-side rules as the simulator models them: kept apart from the client's
#: (zoom/rules.py) on purpose, so the stand-in catches a client that misreads them.
MAX_PAGE_SIZE = 300
DEFAULT_PAGE_SIZE = 30
RETENTION_MONTHS = 6
PAGE_TOKEN_MESSAGE = "The next page token is invalid or expired."

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Query:
    from_date: date
    to_date: date
    page_size: int
    category: str
    page_token: str | None


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


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later, clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def read_query(params: dict[str, str], today: date, *, categories: bool) -> Query:
    """The call's query, or 400 code 300 naming what Zoom refuses. `categories`: the
    endpoint takes ``category_type``."""
    from_date = _date_param(params, "from")
    to_date = _date_param(params, "to")
    if to_date < from_date:
        raise ApiError(400, 300, "The to date cannot be earlier than the from date.")
    if to_date > add_months(from_date, 1):
        raise ApiError(400, 300, "The date range cannot exceed one month.")
    oldest = add_months(today, -RETENTION_MONTHS)
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
    if categories:
        category = params.get("category_type") or "all"
        if category not in CATEGORY_FILTERS:
            raise ApiError(
                400, 300, f"Invalid field: category_type, one of {', '.join(CATEGORY_FILTERS)}."
            )
    token = params.get("next_page_token") or None
    return Query(from_date, to_date, page_size, category, token)


def _date_param(params: dict[str, str], name: str) -> date:
    text = params.get(name, "")
    if _DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ApiError(400, 300, f"Invalid field: {name} is required, a date in yyyy-mm-dd format.")


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

    def resolve(self, path: str, query: Query) -> Chain | None:
        """The chain a next_page_token continues (None: the first page)."""
        if query.page_token is None:
            return None
        chain = self.get(query.page_token)
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

    def expire(self, token: str) -> None:
        """Forget `token` and refuse the call that sent it."""
        self.drop(token)
        raise ApiError(400, 300, PAGE_TOKEN_MESSAGE)


class Pager:
    """Newest-first pages of one account's records, with next_page_tokens to go on."""

    def __init__(self, data: Dataset, tokens: PageTokens, offset_hours: float) -> None:
        self._data = data
        self.tokens = tokens
        self._offset_hours = offset_hours

    def page(
        self,
        stream: str,
        records_key: str,
        path: str,
        query: Query,
        chain: Chain | None,
        *,
        empty: bool = False,
        repeat_last: bool = False,
    ) -> Reply:
        """One page. `empty`: no records but a token to go on (a fault); `repeat_last`:
        the page opens with the previous page's last record (duplicates across pages)."""
        lo = day_bounds(query.from_date, self._offset_hours)[0]
        hi = day_bounds(query.to_date, self._offset_hours)[1]
        after_key = chain.after_key if chain else None
        previous_last = chain.last_record if chain else None
        if empty:
            records = b""
            token = self._next(path, query, after_key, previous_last)
        else:
            page = self._data.page(
                stream, lo, hi, category_codes(query.category), after_key, query.page_size
            )
            records = page.body
            if repeat_last and previous_last is not None:
                records = previous_last + (b"," + records if records else b"")
            token = self._next(path, query, page.last_key, page.last_record) if page.more else ""
        head = json.dumps(
            {
                "from": query.from_date.isoformat(),
                "to": query.to_date.isoformat(),
                "page_size": query.page_size,
                "next_page_token": token,
            },
            separators=(",", ":"),
        )
        body = b"".join((head[:-1].encode(), b',"', records_key.encode(), b'":[', records, b"]}"))
        return Reply(200, body, [("Content-Type", JSON_TYPE)])

    def _next(
        self, path: str, query: Query, after_key: int | None, last_record: bytes | None
    ) -> str:
        return self.tokens.issue(
            Chain(path, query.from_date, query.to_date, query.category, query.page_size,
                  after_key, last_record)
        )  # fmt: skip
