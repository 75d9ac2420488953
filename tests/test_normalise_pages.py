"""The normaliser's page paths give exactly what the record-by-record path gives.

Pages are generated in flavours that steer them down each of `Batch.add`'s paths (the
joined plain texts, the per-value encoded texts, record by record), and the batch must
hold the rows, lw_ids, rejects and counts that `normalise_record` and `tables.lw_id`
give one record at a time, the first copy of a record winning.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from zoom_ingest import normalise
from zoom_ingest.normalise import Batch, RecordError, normalise_record, raw_json
from zoom_ingest.tables import ACTIVITY_LOGS, OPERATION_LOGS, TableSpec, lw_id

#: Strings that need no JSON escaping (the plain path takes them).
PLAIN = [
    "a@b.c",
    "",
    "Sign in",
    "-",
    "ünïcødé ✓",
    "𝄞 🧑\u200d💻",
    "\u2028 \u2029",
    "\x7f",
    "null",
    "None",
]
#: Strings that JSON escapes: a page holding one goes value by value.
ESCAPED = ['say "hi"', "back\\slash", "new\nline", "tab\t", "nul \x00", "\x1f", '"', "\\"]
LONE_SURROGATES = ["\ud800", "x\udfff"]
OTHER_TYPES: list[object] = [7, 2.5, True, False, {"x": 1}, ["a"], [], {}]
ODD_TIMES: list[object] = [
    "2025-02-30T10:00:00Z",  # canonical-looking, no such date
    "2025-08-11T10:00:00.5Z",
    "2025-08-11T12:00:00+02:00",
    "2025-08-11 10:00:00Z",
    "2025-08-11T10:00:00Z\n",
    "2025-08-11T10:00:00",
    "0999-08-11T10:00:00Z",
    "",
    None,
    1754906400,
]
FLAVOURS = ["plain", "plain with nulls", "escaped", "surrogate", "other type", "odd time", "mixed"]


def _time(rng: random.Random) -> str:
    # A few days and minutes only, so that equal times (and duplicates) are common.
    return f"2025-08-{rng.randint(10, 12)}T1{rng.randint(0, 2)}:0{rng.randint(0, 3)}:00Z"


def _value(rng: random.Random, strings: list[str]) -> str:
    return rng.choice([*strings, f"user{rng.randint(0, 3)}@example.com"])


def _record(
    rng: random.Random, spec: TableSpec, nulls: bool, strings: list[str]
) -> dict[str, object]:
    record: dict[str, object] = {"time": _time(rng)}
    for name in spec.record_fields[1:]:
        roll = rng.random()
        if nulls and roll < 0.1:
            continue  # missing
        record[name] = None if nulls and roll < 0.2 else _value(rng, strings)
    if rng.random() < 0.1:
        record["extra"] = {"not": "documented"}
    return record


def _page(rng: random.Random, spec: TableSpec, flavour: str, size: int) -> list[object]:
    nulls = flavour != "plain"
    strings = PLAIN + ESCAPED if flavour in ("escaped", "mixed") else PLAIN
    records = [_record(rng, spec, nulls, strings) for _ in range(size)]
    odd_fields = list(spec.record_fields[1:])
    spoil: dict[str, Callable[[], dict[str, object]]] = {
        "surrogate": lambda: {rng.choice(odd_fields): rng.choice(LONE_SURROGATES)},
        "other type": lambda: {rng.choice(odd_fields): rng.choice(OTHER_TYPES)},
        "odd time": lambda: {"time": rng.choice(ODD_TIMES)},
    }
    if flavour in spoil:
        for _ in range(rng.randint(1, 3)):
            index = rng.randrange(size)
            records[index] = {**records[index], **spoil[flavour]()}
    page: list[object] = list(records)
    if flavour == "mixed":
        for index in rng.sample(range(size), min(5, size)):
            page[index] = rng.choice(
                [
                    "not an object",
                    None,
                    [records[index]],
                    {**records[index], "time": rng.choice(ODD_TIMES)},
                    {**records[index], "email": rng.choice([*LONE_SURROGATES, *OTHER_TYPES])},
                ]
            )
    # Copies within the page, as-is and rebuilt (an equal dict, not the same object).
    for _ in range(rng.randint(0, 4)):
        copy = rng.choice(page)
        page.insert(rng.randrange(len(page) + 1), dict(copy) if isinstance(copy, dict) else copy)
    return page


def _record_by_record(spec: TableSpec, records: list[object]) -> tuple[dict, list[tuple[str, str]]]:
    """lw_id → row (first copy wins, in first-met order) and (reason, raw JSON) of rejects."""
    rows: dict[str, dict[str, object]] = {}
    rejects: list[tuple[str, str]] = []
    for record in records:
        try:
            row = normalise_record(spec, record)
        except RecordError as exc:
            rejects.append((str(exc), raw_json(record)))
            continue
        assert isinstance(record, dict) and isinstance(row["time"], datetime)
        assert row["lw_id"] == lw_id(spec, row["time"], record)
        rows.setdefault(str(row["lw_id"]), row)
    return rows, rejects


@pytest.fixture
def path_counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many pages took the joined plain texts, the encoded texts, or neither."""
    counts = {"plain": 0, "encoded": 0, "pages": 0, "page path": 0}
    plain, encoded, add_page = (
        normalise._plain_texts,
        normalise._encoded_texts,
        Batch._add_page,
    )

    def counting_plain(*args: Any) -> Any:
        result = plain(*args)
        counts["plain"] += result is not None
        return result

    def counting_encoded(*args: Any) -> Any:
        counts["encoded"] += 1
        return encoded(*args)

    def counting_add_page(self: Batch, records: list[object], *latest: str) -> bool:
        taken = add_page(self, records, *latest)
        counts["pages"] += 1
        counts["page path"] += taken
        return taken

    monkeypatch.setattr(normalise, "_plain_texts", counting_plain)
    monkeypatch.setattr(normalise, "_encoded_texts", counting_encoded)
    monkeypatch.setattr(Batch, "_add_page", counting_add_page)
    return counts


@pytest.mark.parametrize("spec", [ACTIVITY_LOGS, OPERATION_LOGS], ids=lambda s: s.name)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pending_rows", [4096, 7], ids=["pending", "converted often"])
def test_pages_of_every_flavour_equal_record_by_record(
    spec: TableSpec,
    seed: int,
    pending_rows: int,
    path_counts: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rows buffered as Python lists are made Arrow every `_PENDING_ROWS`: a small figure
    # interleaves those conversions with the tables of pages taken record by record.
    monkeypatch.setattr(normalise, "_PENDING_ROWS", pending_rows)
    rng = random.Random(seed)
    pages = [_page(rng, spec, flavour, rng.randint(1, 60)) for flavour in FLAVOURS * 4]
    rng.shuffle(pages)
    seen: list[object] = []
    for page in rng.sample(pages, 6):  # pages fetched twice: every record a copy
        pages.append(list(page))
    batch = Batch(spec)
    for page in pages:
        batch.add(page)
        seen.extend(page)
        rows, rejects = _record_by_record(spec, seen)
        assert len(batch) == len(rows)  # after every page, as the job reads it
        assert batch.records_seen == len(seen)
        assert len(batch.rejects) == len(rejects)

    # A copy's row equals the first's (lw_id covers every stored field), so which copy
    # won shows in the counts above; a page taken record by record lists its rows in
    # another order than met (as before the page paths), so the rows compare as a map.
    assert batch.rows == rows
    assert sorted((r.reason, r.raw_json) for r in batch.rejects) == sorted(rejects)
    table = batch.to_arrow()
    assert table.schema.equals(spec.schema)
    assert sorted(table["lw_id"].to_pylist()) == sorted(rows)
    for row in table.to_pylist():
        assert row == rows[row["lw_id"]]
    # Every path was taken, so none is checked vacuously.
    assert path_counts["plain"] >= 8 and path_counts["encoded"] >= 4
    assert path_counts["pages"] - path_counts["page path"] >= 8


def test_the_plain_path_takes_nulls_missing_fields_and_any_unescaped_character(
    path_counts: dict[str, int],
) -> None:
    records: list[object] = [
        {"time": "2025-08-11T10:00:00Z", "email": text, "type": None, "version": ""}
        for text in PLAIN
    ]
    records.append({"time": "2025-08-11T10:00:00Z"})  # every field missing
    batch = Batch(ACTIVITY_LOGS)
    batch.add(records)
    assert path_counts == {"plain": 1, "encoded": 0, "pages": 1, "page path": 1}
    rows, rejects = _record_by_record(ACTIVITY_LOGS, records)
    assert batch.rows == rows and not rejects and len(rows) == len(records)


@pytest.mark.parametrize("text", ESCAPED)
def test_a_value_needing_escaping_sends_its_page_to_the_encoded_path(
    text: str, path_counts: dict[str, int]
) -> None:
    records: list[object] = [
        {"time": "2025-08-11T10:00:00Z", "email": "a@b.c", "type": None},
        {"time": "2025-08-11T10:00:01Z", "operator": "x", "email": text},
    ]
    batch = Batch(ACTIVITY_LOGS)
    batch.add(records)
    assert (path_counts["plain"], path_counts["encoded"], path_counts["page path"]) == (0, 1, 1)
    rows, _ = _record_by_record(ACTIVITY_LOGS, records)
    assert batch.rows == rows
    assert len(rows) == 2


def test_every_copy_of_a_record_with_no_such_date_is_rejected() -> None:
    """A page that goes record by record holds two copies of a canonical-looking time
    that is no date: both are rejects, as record by record (the second was once taken
    for a copy of the first and dropped)."""
    good = {"time": "2025-08-11T10:00:00Z", "email": "a@b.c", "type": "Sign in"}
    no_date = {"time": "2025-02-30T10:00:00Z", "email": "x@b.c", "type": "Sign in"}
    records: list[object] = [good, no_date, dict(no_date), "not an object", dict(good)]
    batch = Batch(ACTIVITY_LOGS)
    batch.add(records)
    rows, rejects = _record_by_record(ACTIVITY_LOGS, records)
    assert sorted((r.reason, r.raw_json) for r in batch.rejects) == sorted(rejects)
    assert len(rejects) == 3 and len(batch) == len(rows) == 1 and batch.records_seen == 5


@pytest.mark.parametrize(
    "day", ["2024-02-29", "2025-02-29", "2025-04-31", "2025-04-30", "2000-02-29", "1900-02-29"]
)
def test_the_page_path_takes_a_day_exactly_when_parse_time_does(day: str) -> None:
    records: list[object] = [{"time": f"{day}T10:00:00Z", "email": "a@b.c"}]
    rows, rejects = _record_by_record(ACTIVITY_LOGS, records)
    assert (normalise._canonical_times([f"{day}T10:00:00Z"]) is not None) == bool(rows)
    batch = Batch(ACTIVITY_LOGS)
    batch.add(records)
    assert batch.rows == rows and [(r.reason, r.raw_json) for r in batch.rejects] == rejects
    assert batch.to_arrow()["time"].to_pylist() == [row["time"] for row in rows.values()]


def _time_near_canonical(rng: random.Random) -> str:
    """A time in the canonical shape with each field drawn a little past its range
    (month 00-13, day 00-32, hour 00-25, ...), sometimes with a character changed,
    added or removed."""
    time = (
        f"{rng.choice([0, 999, 1000, 1900, 2000, 2023, 2024, 9999]):04d}"
        f"-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
        f"T{rng.randint(0, 25):02d}:{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}Z"
    )
    if rng.random() < 0.3:
        chars = list(time)
        place = rng.randrange(len(chars) + 1)
        char = rng.choice("0123456789-T:Z\nzt é")
        edit = rng.randrange(3)
        if edit == 0 and place < len(chars):
            chars[place] = char
        elif edit == 1:
            chars.insert(place, char)
        elif place < len(chars):
            del chars[place]
        time = "".join(chars)
    return time


def _canonical_date(time: str) -> bool:
    if normalise.CANONICAL_TIME(time) is None:
        return False
    try:
        normalise.parse_time(time)
    except RecordError:
        return False
    return True


@pytest.mark.parametrize("seed", range(4))
def test_the_page_time_check_agrees_with_each_time_checked_alone(seed: int) -> None:
    """`_canonical_times` checks a page's times with byte operations on them joined:
    it takes a page exactly when every time is canonical and a date for parse_time."""
    rng = random.Random(seed)
    taken = 0
    for _ in range(20_000):
        times = [_time_near_canonical(rng) for _ in range(rng.randint(1, 4))]
        expected = all(map(_canonical_date, times))
        assert (normalise._canonical_times(times) is not None) == expected, times
        taken += expected
    assert taken > 1_000  # pages of good times are checked too, not only bad ones
