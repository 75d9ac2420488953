"""Zoom's report-API rules that the ingest plans around: page size, the operation-log
category filter, how far a report date may lie from UTC, and how long Zoom keeps data.

Zoom's report endpoints take `from`/`to` *dates* (at most one month apart, within the
last six months) and the time zone they are read in is undocumented: UTC or the
account's, anywhere from UTC−12 to UTC+14. plan.py turns these rules into windows; the
streams (streams.py) send PAGE_SIZE and the category filter. The simulator keeps its own
copy of Zoom's side of these rules on purpose (see simulator/paging.py).
"""

from __future__ import annotations

from datetime import date, timedelta

#: Records per page asked for: the documented maximum (fewer calls per record).
PAGE_SIZE = 300

#: The documented `category_type` filter values of GET /report/operationlogs.
CATEGORY_TYPES = (
    "all",
    "user",
    "user_settings",
    "account",
    "billing",
    "im",
    "recording",
    "phone_contacts",
    "webinar",
    "sub_account",
    "role",
    "zoom_rooms",
)

#: How far a Zoom account's local date can lag / lead UTC.
BEHIND_UTC = timedelta(hours=12)
AHEAD_OF_UTC = timedelta(hours=14)

#: Zoom keeps report data for six months.
RETENTION_MONTHS = 6


def retention_start(today: date) -> date:
    """The oldest date Zoom still serves (6 calendar months back), plus a day of margin
    because Zoom may count from the account's local date."""
    return add_months(today, -RETENTION_MONTHS) + timedelta(days=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")
