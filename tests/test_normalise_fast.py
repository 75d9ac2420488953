"""The normaliser's fast path gives exactly what the record-by-record path gives."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta

import pytest

from zoom_ingest import normalise
from zoom_ingest.normalise import FUTURE_SKEW, Batch, RecordError, normalise_record
from zoom_ingest.tables import ACTIVITY_LOGS, OPERATION_LOGS, UTC, format_time
from zoom_ingest.zoom import streams

ODD_STRINGS = [
    "plain",
    "",
    'quote " inside',
    "back\\slash",
    "new\nline\ttab\r\x08\x0c",
    "control \x01\x1f",
    "ünïcødé ✓ 𝄞",
    "\u2028 line separator",
    "lone \ud800 surrogate",
    "-",
]
TIMES = [
    "2025-08-11T14:32:18Z",
    "2025-08-11T14:32:18.250Z",
    "2025-08-11T16:32:18+02:00",
    "2025-08-11 14:32:18Z",
    "2025-02-30T14:32:18Z",  # canonical-looking, no such date
    "2025-08-11T24:00:00Z",
    "2025-08-11T14:32:18",
    "yesterday",
    None,
    42,
]


def _records(rng: random.Random, spec, n: int) -> list[object]:
    fields = spec.record_fields[1:]
    out: list[object] = []
    for _ in range(n):
        if rng.random() < 0.02:
            out.append(rng.choice(["a string", 7, None, ["list"]]))
            continue
        record: dict[str, object] = {}
        month, day, hour = rng.randint(1, 9), rng.randint(10, 28), rng.randint(10, 19)
        canonical = f"2025-0{month}-{day}T{hour}:0{rng.randint(0, 9)}:00Z"
        record["time"] = canonical if rng.random() < 0.7 else rng.choice(TIMES)
        for name in fields:
            roll = rng.random()
            if roll < 0.1:
                continue  # missing
            if roll < 0.15:
                record[name] = None
            elif roll < 0.17:
                record[name] = rng.choice([1, True, 2.5, {"x": 1}])
            else:
                record[name] = rng.choice([*ODD_STRINGS, f"v{rng.randint(0, 5)}"])
        out.append(record)
    return out


def _reference(spec, records: list[object]) -> tuple[dict[str, dict], list[str]]:
    rows: dict[str, dict] = {}
    reasons: list[str] = []
    for record in records:
        try:
            row = normalise_record(spec, record)
        except RecordError as exc:
            reasons.append(str(exc))
            continue
        rows.setdefault(row["lw_id"], row)  # type: ignore[arg-type]
    return rows, reasons


@pytest.mark.parametrize("spec", [ACTIVITY_LOGS, OPERATION_LOGS], ids=lambda s: s.name)
@pytest.mark.parametrize("seed", range(4))
def test_batch_equals_record_by_record(spec, seed):
    rng = random.Random(seed)
    records = _records(rng, spec, 900)
    records += records[:50]  # duplicates across pages
    batch = Batch(spec)
    for start in range(0, len(records), 300):
        batch.add(records[start : start + 300])
    rows, reasons = _reference(spec, records)
    assert batch.records_seen == len(records)
    assert set(batch.rows) == set(rows)
    for key, row in rows.items():
        assert batch.rows[key] == row
    assert sorted(r.reason for r in batch.rejects) == sorted(reasons)
    assert len(batch) == len(rows)
    # The fast path was exercised and so was the slow one.
    assert len(rows) > 400 and len(reasons) > 20


def test_a_page_with_an_impossible_date_rejects_only_that_record():
    good = {"time": "2025-08-11T14:32:18Z", "email": "a@b.c", "type": "Sign in"}
    bad = {"time": "2025-02-30T14:32:18Z", "email": "x@b.c", "type": "Sign in"}
    batch = Batch(ACTIVITY_LOGS)
    batch.add([good, bad])
    assert len(batch) == 1
    assert [r.reason.split(":")[0] for r in batch.rejects] == ["time"]


def _common_page(rng: random.Random, spec, n: int) -> list[object]:
    """Records that all take the page path: canonical times, strings (no lone
    surrogate), null or missing fields; some repeated within the page."""
    strings = [s for s in ODD_STRINGS if "\ud800" not in s]
    page: list[object] = []
    for _ in range(n):
        record: dict[str, object] = {
            "time": f"2025-0{rng.randint(1, 9)}-{rng.randint(10, 28)}T1{rng.randint(0, 9)}:00:00Z"
        }
        for name in spec.record_fields[1:]:
            roll = rng.random()
            if roll < 0.1:
                continue
            record[name] = None if roll < 0.2 else rng.choice([*strings, f"v{rng.randint(0, 3)}"])
        page.append(record)
    return page + page[:5]


def _assert_same_as_record_by_record(spec, pages: list[list[object]]) -> Batch:
    batch = Batch(spec)
    for page in pages:
        batch.add(page)
    rows, reasons = _reference(spec, [r for page in pages for r in page])
    assert batch.rows == rows and list(batch.rows) == list(rows)  # the first copy wins
    assert sorted(r.reason for r in batch.rejects) == sorted(reasons)
    assert batch.records_seen == sum(map(len, pages))
    return batch


@pytest.mark.parametrize("spec", [ACTIVITY_LOGS, OPERATION_LOGS], ids=lambda s: s.name)
def test_a_page_of_common_records_is_added_in_columns_as_record_by_record(spec):
    rng = random.Random(3)
    pages = [_common_page(rng, spec, 300) for _ in range(3)]
    pages.append(pages[0][:40])  # repeated across pages
    assert Batch(spec)._add_page(pages[0])  # the page path takes it whole
    batch = _assert_same_as_record_by_record(spec, pages)
    assert len(batch) > 800 and not batch.rejects


@pytest.mark.parametrize(
    "odd",
    [
        {"time": "2025-02-30T10:00:00Z", "email": "x"},  # no such date
        {"time": "2025-08-11T10:00:00.5Z", "email": "x"},  # valid, not canonical
        {"time": "2025-08-11T10:00:00Z\n", "email": "x"},
        {"time": "2025-08-11T10:00:00Z", "email": 7},
        {"time": "2025-08-11T10:00:00Z", "email": {"x": 1}},
        {"time": "2025-08-11T10:00:00Z", "email": "lone \ud800 surrogate"},
        {"time": None},
        "not an object",
    ],
)
def test_one_odd_record_sends_its_page_record_by_record(odd):
    rng = random.Random(5)
    page = [*_common_page(rng, ACTIVITY_LOGS, 50), odd]
    assert not Batch(ACTIVITY_LOGS)._add_page(page)
    _assert_same_as_record_by_record(ACTIVITY_LOGS, [page])


@pytest.mark.parametrize("seed", range(6))
def test_page_time_span_equals_parsing_every_time(seed):
    """A page's newest and oldest time (the fetch's chain estimate and early stop), taken
    from the two ends of the canonical strings, equal the max and min of every parsed
    time; pages with other forms, impossible dates or non-objects give the same too."""
    rng = random.Random(seed)
    page = _common_page(rng, ACTIVITY_LOGS, 300)
    if seed % 3 == 1:
        page[rng.randrange(len(page))] = {"time": rng.choice(TIMES)}
    if seed % 3 == 2:
        page.append("not an object")

    def parsed(record):
        try:
            return normalise.parse_time(record.get("time"))
        except (RecordError, AttributeError):
            return None

    times = [t for t in map(parsed, page) if t is not None]
    newest_first = all(a >= b for a, b in itertools.pairwise(times))
    assert streams._time_span(page, "time") == (max(times), min(times), newest_first)
    assert streams._time_span([], "time") == (None, None, True)
    impossible = [{"time": "2025-02-30T10:00:00Z"}, {"time": "2025-02-27T10:00:00Z"}]
    assert streams._time_span(impossible, "time") == (*(parsed(impossible[1]),) * 2, True)
    # A record without a time, and one whose time holds two canonical times and a newline
    # (it would sort above every other): each is skipped, as parsing every time skips it.
    without = [{"time": "2025-02-27T10:00:00Z"}, {"type": "Sign in"}]
    assert streams._time_span(without, "time") == (*(parsed(without[0]),) * 2, True)
    newline = [
        {"time": "2025-02-28T10:00:00Z\n2025-02-01T10:00:00Z"},
        {"time": "2025-02-27T10:00:00Z"},
        {"time": "2025-02-26T10:00:00Z"},
    ]
    assert streams._time_span(newline, "time") == (parsed(newline[1]), parsed(newline[2]), True)


def test_a_time_holding_a_newline_is_rejected_as_the_record_path_does():
    """The page path checks a page's times joined by newlines: a time that holds one
    (two canonical times in one string) must not pass as two."""
    joined = "2025-08-11T14:32:18Z\n2025-08-11T14:32:19Z"
    page = [
        {"time": "2025-08-11T14:32:17Z", "email": "a@b.c", "type": "Sign in"},
        {"time": joined, "email": "x@b.c", "type": "Sign in"},
    ]
    batch = Batch(ACTIVITY_LOGS)
    batch.add(page)
    rows, reasons = _reference(ACTIVITY_LOGS, page)
    assert set(batch.rows) == set(rows) and len(rows) == 1
    assert [r.reason for r in batch.rejects] == reasons and len(reasons) == 1
    assert normalise._canonical_times([page[0]["time"], joined]) is None


@pytest.mark.parametrize("spec", [ACTIVITY_LOGS, OPERATION_LOGS], ids=lambda s: s.name)
def test_future_dated_records_are_rejects_with_their_reason(spec):
    """Beyond now plus the clock skew: a reject, on the page path and record by record;
    within the skew: stored."""
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    batch = Batch(spec, clock=lambda: now)
    skew_edge = format_time(now + FUTURE_SKEW)
    fine = {"time": "2026-11-20T11:00:00Z", "email": "a@example.com"}
    page = [
        fine,
        {"time": "2099-01-01T00:00:00Z", "email": "b@example.com"},  # canonical
        {"time": "2099-01-01T00:00:00.5+00:00", "email": "c@example.com"},  # not canonical
        {"time": skew_edge, "email": "d@example.com"},  # just within the skew
        {"time": format_time(now + FUTURE_SKEW + timedelta(seconds=1)), "email": "e@x.org"},
    ]
    batch.add(page)
    batch.add([{"time": "2099-06-01T00:00:00Z"}])  # a page of future records alone
    assert sorted(format_time(t) for t in batch.to_arrow()["time"].to_pylist()) == [
        "2026-11-20T11:00:00Z",
        skew_edge,
    ]
    assert len(batch.rejects) == 4
    assert all("is in the future" in r.reason for r in batch.rejects), batch.rejects
    assert any("2099-01-01T00:00:00Z" in r.reason for r in batch.rejects)
    # The default clock is the real one: 2099 is the future today too.
    default = Batch(spec)
    default.add([{"time": "2099-01-01T00:00:00Z"}, fine])
    assert len(default) == 1 and len(default.rejects) == 1
