"""Zoom's time format: the RFC 3339 times its records carry, read into aware UTC instants,
and the canonical form it sends (`2025-08-11T14:32:18Z`) checked a page at a time.

The source reads records' times to prove a window's pages (streams.py); the normaliser
reads them to store them. Both take the same rules from here, so a time the source
accepts is one the normaliser stores, and a `RecordError` says why one is not.
"""

from __future__ import annotations

import operator
import re
from datetime import date, datetime
from functools import lru_cache

from ..masking import mask
from ..tables import UTC


class RecordError(ValueError):
    """Why one record cannot be stored."""


#: RFC 3339 `date-time` (a space for the `T` is allowed, as RFC 3339 notes). Parsed by
#: hand rather than with datetime.fromisoformat, whose accepted forms differ between
#: Python 3.10 and 3.11+: every interpreter must take or reject the same records.
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def parse_time(value: object) -> datetime:
    """An RFC 3339 timestamp (Zoom sends `2025-08-11T14:32:18Z`) → aware UTC datetime.

    Fractions beyond microseconds (Delta's precision) are truncated."""
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"time: expected an RFC 3339 string, got {describe_value(value)}")
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise RecordError(f"time: not an RFC 3339 timestamp: {_shown(value)}")
    day, clock, fraction, offset = match.groups()
    if offset is None:
        raise RecordError(f"time: no time zone in {_shown(value)}")
    offset = "+00:00" if offset in ("Z", "z") else offset
    micros = (fraction or "")[:6].ljust(6, "0")
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}.{micros}{offset}")
    except ValueError:
        raise RecordError(f"time: not an RFC 3339 timestamp: {_shown(value)}") from None
    return parsed.astimezone(UTC)


#: The form Zoom sends (`2025-08-11T14:32:18Z`), which `format_time` gives back unchanged:
#: records in it skip the per-record parse. Anything else (offsets, fractions, a space
#: for the T, out-of-range fields) takes `parse_time`.
_CANONICAL_TIME_REGEX = (
    r"[1-9]\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ"
)
CANONICAL_TIME = re.compile(_CANONICAL_TIME_REGEX, re.ASCII).fullmatch


def all_canonical(values: list[str]) -> bool:
    """Every one of these strings (at least one) is a time in the canonical form
    (`CANONICAL_TIME`) and a date: `canonical_times`' check."""
    return canonical_times(values) is not None


def canonical_times(values: list[str]) -> bytes | None:
    """A page's times (all strings) joined by newlines, as ASCII; None unless every one
    is canonical and a date (not 2025-02-30, which `parse_time` rejects). Checked without
    Arrow (see normalise's `Batch._convert_pending`) and without a regular-expression step
    a character: the page's times joined are checked at once by byte operations, a few C
    passes.

    Same verdict as `CANONICAL_TIME` and `_is_date` on each time (tested)."""
    joined = "\n".join(values)
    if not joined.isascii():
        return None
    data = joined.encode("ascii")
    # The shape: every time 20 characters, digits where the form has digits (this
    # length also means no time holds a newline, so the lines are exactly the times).
    if len(data) != _TIME_LINE * len(values) - 1:
        return None
    if data.translate(_DIGITS_TO_ZERO) != (_TIME_SHAPE * len(values))[:-1]:
        return None
    # Digits out of range alone: the year's first (0), and the tens of the month (2+),
    # the day (4+), the hour (3+), the minute and the second (6+).
    if b"0" in data[0::_TIME_LINE]:
        return None
    for start, allowed in _TENS_ALLOWED:
        if data[start::_TIME_LINE].translate(None, allowed):
            return None
    # Pairs out of range: month or day 00, month 13+, hour 24+ (each pattern can only
    # match at its own place in a time; searches for a literal, not a step a character).
    if b"-00" in data or _MONTH_13_TO_19(data) or _HOUR_24_TO_29(data):
        return None
    # Days 30 and more (a month of 30 days has no 31st, February no 30th) and February
    # 29, which only a leap year has: a page that has one has each of its days checked.
    if (b"-3" in data or b"-02-29" in data) and not all(map(_is_date, set(map(_DAY_OF, values)))):
        return None
    return data


#: The canonical form with each digit written as 0, and its newline.
_TIME_SHAPE = b"0000-00-00T00:00:00Z\n"
#: A canonical time and its newline, in the page's joined times.
_TIME_LINE = len(_TIME_SHAPE)
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
#: (offset in a time, the digits allowed there): the tens of the month, day, hour,
#: minute and second.
_TENS_ALLOWED = ((5, b"01"), (8, b"0123"), (11, b"012"), (14, b"012345"), (17, b"012345"))
_MONTH_13_TO_19 = re.compile(rb"-1[3-9]-").search
_HOUR_24_TO_29 = re.compile(rb"T2[4-9]").search
#: `_DAY_OF(time)`: the `YYYY-MM-DD` of a canonical time.
_DAY_OF = operator.itemgetter(slice(0, 10))


@lru_cache(maxsize=4096)
def _is_date(day: str) -> bool:
    """Whether a `YYYY-MM-DD` (the canonical pattern's digits) is a day of the calendar."""
    try:
        date(int(day[0:4]), int(day[5:7]), int(day[8:10]))
    except ValueError:
        return False
    return True


def describe_value(value: object) -> str:
    """A value named in a reason: its type and its start, masked."""
    if value is None:
        return "null / missing"
    text = mask(repr(value))  # masked before it is cut: no head of a secret is left
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _shown(value: str) -> str:
    """A value quoted in a reason: masked, then cut to 64 characters."""
    return repr(mask(value)[:64])
