"""A window is complete only when its pages prove it (zoom/streams.py `fetch_pages`):
each page has its records list, its records lie inside the window, they come newest
first within and across pages, and the last token ends the paging. Scripted pages, one
rule a test; tests/test_hostile_zoom.py runs whole jobs against a hostile server."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from test_zoom_client import day_window, page_body, response, scripted_client, token_ok
from zoom_ingest.settings import Settings
from zoom_ingest.tables import UTC
from zoom_ingest.zoom import STREAMS_BY_NAME, CallCounters, fetch_pages
from zoom_ingest.zoom.errors import IncompleteAnswer
from zoom_ingest.zoom.streams import Page, window_bounds

KEY = "operation_logs"
#: The run's page cap (max_pages_per_window), what every window gets by default.
MAX_PAGES = Settings.max_pages_per_window
DAY = date(2025, 1, 2)


def pages_of(bodies: list[dict[str, Any]], **window: Any) -> list[Page]:
    client, _ = scripted_client([token_ok()], [response(200, body) for body in bodies])
    span = day_window(KEY, window.pop("first", DAY), window.pop("last", DAY), **window)
    return list(
        fetch_pages(client, STREAMS_BY_NAME[KEY], span, "all", CallCounters(), max_pages=MAX_PAGES)
    )


def failure(pages: list[Page]) -> str | None:
    """The reason the last page ends the window unproven (None: proven complete)."""
    assert all(page.failure is None for page in pages[:-1])
    return pages[-1].failure.reason if pages[-1].failure else None


def test_newest_first_pages_with_ties_across_them_prove_the_window() -> None:
    pages = pages_of(
        [
            page_body(KEY, ["2025-01-02T12:00:00Z", "2025-01-02T10:00:00Z"], "p2"),
            page_body(KEY, ["2025-01-02T10:00:00Z", "2025-01-02T10:00:00Z"], "p3"),
            page_body(KEY, ["2025-01-02T09:00:00+01:00", "not a time"]),
        ]
    )
    assert failure(pages) is None and [len(p.records) for p in pages] == [2, 2, 2]


@pytest.mark.parametrize(
    ("bodies", "reason"),
    [
        (
            [page_body(KEY, ["2025-01-02T10:00:00Z", "2025-01-02T12:00:00Z"])],
            "records out of order (not newest first) within a page",
        ),
        (  # the same, on the record-by-record path (a time with an offset)
            [page_body(KEY, ["2025-01-02T10:00:00Z", "2025-01-02T13:00:00+01:00"])],
            "records out of order (not newest first) within a page",
        ),
        (
            [
                page_body(KEY, ["2025-01-02T10:00:00Z"], "p2"),
                page_body(KEY, ["2025-01-02T10:00:01Z"]),
            ],
            "records out of order (not newest first) across pages",
        ),
        (
            [
                page_body(KEY, ["2025-01-02T10:00:00Z"], "p2"),
                page_body(KEY, ["2025-01-02T09:00:00Z"], "p2"),
            ],
            "page-token loop: a next_page_token came again",
        ),
        (
            [
                page_body(KEY, ["2025-01-02T10:00:00Z"], "p2"),
                page_body(KEY, ["2025-01-02T10:00:00Z"], "p3"),
            ],
            "page-token loop: a fresh next_page_token brought the same records",
        ),
    ],
)
def test_a_page_that_breaks_the_proof_ends_its_window_with_the_reason(
    bodies: list[dict[str, Any]], reason: str
) -> None:
    pages = pages_of(bodies)
    assert len(pages) == len(bodies)  # nothing asked after the failing page
    assert failure(pages) == reason
    assert str(pages[-1].failure).startswith(f"{KEY} {DAY}: {reason}")


def test_records_outside_the_window_are_rejects_and_never_stop_the_paging_early() -> None:
    """Issue 21: one record far older than the window on the first page of an
    incremental window ended its paging, and the checkpoint moved past 378 records."""
    stop_before = datetime(2025, 1, 2, 11, tzinfo=UTC)
    first = page_body(KEY, ["2025-01-02T12:00:00Z", "2024-11-01T00:00:00Z"], "p2")
    client, session = scripted_client(
        [token_ok()],
        [response(200, first), response(200, page_body(KEY, ["2025-01-02T10:00:00Z"]))],
    )
    window = day_window(KEY, DAY, DAY, stop_before=stop_before)
    pages = list(
        fetch_pages(
            client, STREAMS_BY_NAME[KEY], window, "all", CallCounters(), max_pages=MAX_PAGES
        )
    )
    (page,) = pages
    assert [r["time"] for r in page.records] == ["2025-01-02T12:00:00Z"]
    assert page.oldest == datetime(2025, 1, 2, 12, tzinfo=UTC)  # the stray is not its span
    (stray,) = page.strays
    assert stray.record["time"] == "2024-11-01T00:00:00Z"
    assert stray.reason == "time: 2024-11-01T00:00:00Z is outside the window 2025-01-02..2025-01-02"
    assert page.failure is not None and page.failure.reason == "1 records outside the window"
    assert len(session.gets) == 1


def test_the_window_reaches_as_far_as_zoom_may_read_its_dates() -> None:
    """A date read in UTC+14 starts 14 hours before its UTC midnight, one read in
    UTC−12 ends 12 hours after the next: records there are inside, a second beyond not."""
    low, high = window_bounds(day_window(KEY, DAY, DAY))
    assert low == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert high == datetime(2025, 1, 3, 14, tzinfo=UTC)
    inside = ["2025-01-03T13:59:59Z", "2025-01-01T10:00:00Z"]
    assert failure(pages_of([page_body(KEY, inside)])) is None
    outside = pages_of([page_body(KEY, ["2025-01-03T14:00:00Z", "2025-01-01T10:00:00Z"])])
    assert failure(outside) == "1 records outside the window"


def test_a_window_past_its_page_limit_fails_naming_the_setting() -> None:
    bodies = [page_body(KEY, [f"2025-01-02T1{9 - n}:00:00Z"], f"p{n}") for n in range(5)]
    client, session = scripted_client([token_ok()], [response(200, b) for b in bodies])
    window = day_window(KEY, DAY, DAY)
    pages = fetch_pages(client, STREAMS_BY_NAME[KEY], window, "all", CallCounters(), max_pages=3)
    with pytest.raises(IncompleteAnswer) as caught:
        list(pages)
    assert caught.value.reason == "more than 3 pages (max_pages_per_window)"
    assert len(session.gets) == 3


def test_an_expired_token_restarts_the_window_and_its_proof() -> None:
    """After a restart the first page comes again: neither a loop nor out of order."""
    expired = {"code": 300, "message": "The next page token is invalid or expired."}
    client, session = scripted_client(
        [token_ok()],
        [
            response(200, page_body(KEY, ["2025-01-02T12:00:00Z"], "p2")),
            response(400, expired),
            response(200, page_body(KEY, ["2025-01-02T12:00:00Z"], "p2")),
            response(200, page_body(KEY, ["2025-01-02T11:00:00Z"])),
        ],
    )
    window = day_window(KEY, DAY, DAY)
    pages = list(
        fetch_pages(
            client, STREAMS_BY_NAME[KEY], window, "all", CallCounters(), max_pages=MAX_PAGES
        )
    )
    assert failure(pages) is None and len(pages) == 3 and len(session.gets) == 4
