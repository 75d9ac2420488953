"""The normaliser's page path gives exactly what the single-record path gives.

The page path makes each record's lw_id text from the page's columns at once
(`normalise._lw_id_texts`); the single-record path makes it with `tables.lw_id_json`,
which defines the key's bytes. A property test draws arbitrary records (any JSON value
in any field, any Unicode, escapes, nulls, missing fields) and finds the page path's
bytes equal to `lw_id_json`'s for every record it takes, and that it takes no record
the single-record path rejects.

Pages are also generated in flavours that steer them down each way through `Batch.add`
(joined plain, some values escaped, common records beside others, record by record),
and the batch must hold the rows, lw_ids, rejects and counts that `normalise_record`
and `tables.lw_id` give one record at a time, the first copy of a record winning.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from zoom_ingest import normalise
from zoom_ingest.normalise import FUTURE_SKEW, Batch, RecordError, normalise_record, raw_json
from zoom_ingest.tables import ACTIVITY_LOGS, OPERATION_LOGS, TableSpec, lw_id, lw_id_json
from zoom_ingest.zoom.times import all_canonical

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


def _record_by_record(
    spec: TableSpec, records: list[object], not_after: datetime | None = None
) -> tuple[dict, list[tuple[str, str]]]:
    """lw_id → row (first copy wins, in first-met order) and (reason, raw JSON) of rejects
    (records after `not_after` among them, when given)."""
    rows: dict[str, dict[str, object]] = {}
    rejects: list[tuple[str, str]] = []
    for record in records:
        try:
            row = normalise_record(spec, record, not_after)
        except RecordError as exc:
            rejects.append((str(exc), raw_json(record)))
            continue
        assert isinstance(record, dict) and isinstance(row["time"], datetime)
        assert row["lw_id"] == lw_id(spec, row["time"], record)
        rows.setdefault(str(row["lw_id"]), row)
    return rows, rejects


@pytest.fixture
def path_counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many pages' lw_id texts were joined plain and how many with some values
    escaped first ("encoded"); how many pages were offered the page path and taken."""
    counts = {"plain": 0, "encoded": 0, "pages": 0, "page path": 0}
    escapes = {"columns": 0}
    texts_of, json_insides, add_page = (
        normalise._lw_id_texts,
        normalise._json_insides,
        Batch._add_page,
    )

    def counting_json_insides(*args: Any) -> Any:
        escapes["columns"] += 1
        return json_insides(*args)

    def counting_texts_of(*args: Any) -> Any:
        before = escapes["columns"]
        result = texts_of(*args)
        counts["encoded" if escapes["columns"] > before else "plain"] += 1
        return result

    def counting_add_page(self: Batch, records: list[object], *latest: str) -> bool:
        taken = add_page(self, records, *latest)
        counts["pages"] += 1
        counts["page path"] += taken
        return taken

    monkeypatch.setattr(normalise, "_lw_id_texts", counting_texts_of)
    monkeypatch.setattr(normalise, "_json_insides", counting_json_insides)
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


# -- the page path's lw_id bytes are the recipe's: a property over arbitrary records ----

#: Characters JSON escapes or that are easy to get wrong: drawn often.
TRICKY = st.sampled_from(
    ['"', "\\", "\x00", "\n", "\t", "\x1f", "\x7f", "\u2028", "é", "𝄞", "\ud800", "\udfff"]
)
ANY_TEXT = st.text(st.one_of(st.characters(), TRICKY), max_size=12)
#: The characters JSON escapes, one of which `ESCAPED_TEXT` always holds.
ESCAPING = ['"', "\\", "\n", "\x00", "\x1f"]
ESCAPED_TEXT = st.builds(lambda a, b, c: a + b + c, ANY_TEXT, st.sampled_from(ESCAPING), ANY_TEXT)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),  # beyond 64 bits
    st.floats(allow_nan=True, allow_infinity=True),
    ANY_TEXT,
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(ANY_TEXT, children, max_size=3)
    ),
    max_leaves=8,
)
#: Canonical times of real dates (the only times the page path takes), from a small
#: pool or anywhere in the years canonical times allow.
CANONICAL_TIMES = st.one_of(
    st.sampled_from(["2025-08-11T14:32:18Z", "2025-08-12T00:00:00Z"]),
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
        lambda instant: instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
)


def arbitrary_records(spec: TableSpec, times: st.SearchStrategy[object]) -> st.SearchStrategy[dict]:
    """Records with each documented field missing, null, a string (any, or a common
    one) or any other JSON value, and undocumented fields beside them."""
    common = st.sampled_from(["", "a@b.c", "Sign in", "-"])
    field = st.one_of(st.none(), common, ANY_TEXT, ESCAPED_TEXT, ANY_JSON)
    return st.fixed_dictionaries(
        {"time": times},
        optional={
            **{name: field for name in spec.record_fields[1:]},
            "extra": ANY_JSON,
        },
    )


SPECS = st.sampled_from([ACTIVITY_LOGS, OPERATION_LOGS])


def _accepted(spec: TableSpec, record: object) -> bool:
    try:
        normalise_record(spec, record)
    except RecordError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_page_paths_lw_id_bytes_are_the_recipes_for_arbitrary_records(
    data: st.DataObject,
) -> None:
    """`_lw_id_texts` (the page path) gives `tables.lw_id_json`'s bytes for every record
    the single-record path takes, on any page of them; on a page holding a record it
    rejects, it raises (the page then goes another way) instead of giving a text."""
    spec = data.draw(SPECS)
    page = data.draw(st.lists(arbitrary_records(spec, CANONICAL_TIMES), min_size=1, max_size=8))
    fields = spec.record_fields[1:]
    good = [record for record in page if _accepted(spec, record)]
    if good:
        times = [record["time"] for record in good]
        texts = normalise._lw_id_texts(times, normalise._columns(good, fields), spec.name)
        instants = map(normalise.parse_time, times)
        expected = [lw_id_json(spec, t, r) for t, r in zip(instants, good, strict=True)]
        assert texts == expected
    if len(good) < len(page):
        times = [record["time"] for record in page]
        with pytest.raises((TypeError, UnicodeEncodeError)):
            normalise._lw_id_texts(times, normalise._columns(page, fields), spec.name)


def test_the_property_draws_records_the_page_path_takes_with_escapes_and_nulls() -> None:
    """The property above is not vacuous: its records include ones the page path takes
    that hold a value JSON escapes beside a null (NoSuchExample otherwise)."""
    fields = ACTIVITY_LOGS.record_fields[1:]

    def taken_with_an_escape_and_a_null(record: dict) -> bool:
        values = [record.get(name) for name in fields]
        escaped = any(isinstance(value, str) and set(value) & set(ESCAPING) for value in values)
        return escaped and None in values and _accepted(ACTIVITY_LOGS, record)

    find(
        arbitrary_records(ACTIVITY_LOGS, CANONICAL_TIMES),
        taken_with_an_escape_and_a_null,
        settings=settings(max_examples=2000, database=None),
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_batch_equals_the_single_record_path_for_arbitrary_pages(data: st.DataObject) -> None:
    """Pages of arbitrary records (most of them common, some of any JSON, with any time,
    copies among them) give the rows, lw_ids, rejects and counts record by record gives."""
    spec = data.draw(SPECS)
    # Now is 2100: canonical times before it are common; after it, future-dated rejects.
    now = datetime(2100, 1, 1, tzinfo=UTC)
    times = st.one_of(CANONICAL_TIMES, st.sampled_from(ODD_TIMES), ANY_JSON)
    common_times = st.one_of(
        CANONICAL_TIMES.filter(lambda time: time < "2100"),
        st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(2099, 12, 31)).map(
            lambda instant: instant.strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    )
    records = st.one_of(
        arbitrary_records(spec, common_times), arbitrary_records(spec, times), ANY_JSON
    )
    pages = data.draw(st.lists(st.lists(records, max_size=12), min_size=1, max_size=4))
    copies = data.draw(st.lists(st.sampled_from(pages), max_size=2))  # fetched again
    pages += [list(page) for page in copies]
    batch = Batch(spec, clock=lambda: now)
    for page in pages:
        batch.add(page)
    seen = [record for page in pages for record in page]
    rows, rejects = _record_by_record(spec, seen, now + FUTURE_SKEW)
    assert batch.records_seen == len(seen)
    assert batch.rows == rows
    assert sorted((r.reason, r.raw_json) for r in batch.rejects) == sorted(rejects)
    table = batch.to_arrow()
    assert table.schema.equals(spec.schema)
    assert sorted(table["lw_id"].to_pylist()) == sorted(rows)


@pytest.mark.parametrize(
    "odd",
    [
        "not an object",
        {"time": "2025-08-11T12:00:00+02:00", "email": "x"},  # valid, not canonical
        {"time": 1754906400, "email": "x"},
        {"time": "2025-08-11T10:00:00Z", "email": 7},  # a field of another JSON type
        {"time": "2025-08-11T10:00:00Z", "version": {"x": 1}},
        {"time": "2025-08-12T13:00:05Z", "email": "x"},  # in the future (the clock below)
    ],
    ids=["not an object", "offset", "number", "int field", "object field", "future"],
)
def test_a_pages_common_records_take_the_page_path_beside_an_odd_one(
    odd: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One odd record does not send its page's common records one by one: they go the
    page path together (in columns, the cheap way), the odd one alone; the same rows
    and rejects as record by record. A record dated exactly now plus the skew is common."""
    now = datetime(2025, 8, 12, 12, 55, tzinfo=UTC)  # now + FUTURE_SKEW: 13:00:00Z
    rng = random.Random(11)
    common = [_record(rng, ACTIVITY_LOGS, True, PLAIN + ESCAPED) for _ in range(40)]
    common.append({"time": "2025-08-12T13:00:00Z", "email": "at the skew's edge"})
    page: list[object] = [*common[:20], odd, *common[20:]]
    offered: list[tuple[int, bool]] = []
    add_page = Batch._add_page

    def recording_add_page(self: Batch, records: list[object], *latest: str) -> bool:
        taken = add_page(self, records, *latest)
        offered.append((len(records), taken))
        return taken

    monkeypatch.setattr(Batch, "_add_page", recording_add_page)
    batch = Batch(ACTIVITY_LOGS, clock=lambda: now)
    batch.add(page)
    assert offered == [(len(page), False), (len(common), True)]
    rows, rejects = _record_by_record(ACTIVITY_LOGS, page, now + FUTURE_SKEW)
    assert batch.rows == rows and batch.records_seen == len(page)
    assert sorted((r.reason, r.raw_json) for r in batch.rejects) == sorted(rejects)


# -- what the mutation run found untested (docs/mutation.md) ---------------------------------


@pytest.mark.usefixtures("host_time_zone")
def test_the_page_paths_future_check_is_in_utc_in_every_host_zone() -> None:
    """`latest` is now + FUTURE_SKEW written in UTC: in a zone ahead of UTC, a local
    "now" would let records hours in the future through the page path."""
    now = datetime(2025, 8, 12, 12, 55, tzinfo=UTC)  # now + FUTURE_SKEW: 13:00:00Z
    edge = {"time": "2025-08-12T13:00:00Z", "email": "at the skew's edge"}
    ahead = {"time": "2025-08-12T14:00:00Z", "email": "an hour ahead"}
    batch = Batch(ACTIVITY_LOGS, clock=lambda: now)
    batch.add([edge, ahead])
    rows, rejects = _record_by_record(ACTIVITY_LOGS, [edge, ahead], now + FUTURE_SKEW)
    assert batch.rows == rows and len(rows) == 1
    assert [(r.reason, r.raw_json) for r in batch.rejects] == rejects and len(rejects) == 1


def test_a_page_given_as_any_iterable_is_normalised_as_its_list() -> None:
    rng = random.Random(5)
    page = [_record(rng, ACTIVITY_LOGS, True, PLAIN) for _ in range(20)]
    listed, iterated = Batch(ACTIVITY_LOGS), Batch(ACTIVITY_LOGS)
    listed.add(page)
    iterated.add(record for record in page)
    assert iterated.rows == listed.rows and iterated.records_seen == len(page)


def test_the_offsets_of_fixed_width_strings_are_made_once_for_the_most_rows_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Offsets 0, width, 2 × width, … (int32): made once a width, for at least
    2 × _PENDING_ROWS rows, then sliced; made again, larger, when more rows are asked."""
    monkeypatch.setattr(normalise, "_offsets_made", {})

    def offsets(rows: int, width: int) -> bytes:
        return array("i", range(0, (rows + 1) * width, width)).tobytes()

    few = normalise._fixed_offsets(3, 20)
    assert few.to_pybytes() == offsets(3, 20)
    most = 2 * normalise._PENDING_ROWS
    full = normalise._fixed_offsets(most, 20)  # exactly the buffer made for `few`
    assert full.address == few.address and full.to_pybytes() == offsets(most, 20)
    more = normalise._fixed_offsets(most + 1, 20)
    assert more.to_pybytes() == offsets(most + 1, 20)
    assert normalise._fixed_offsets(2, 64).to_pybytes() == offsets(2, 64)  # a width of its own
    again = normalise._fixed_offsets(most + 1, 20)
    assert again.address == more.address  # kept: not made anew for every call


def test_all_canonical_is_the_page_check_of_every_time() -> None:
    assert all_canonical(["2025-08-11T14:32:18Z", "2024-02-29T00:00:00Z"])
    assert not all_canonical(["2025-08-11T14:32:18Z", "2025-02-29T00:00:00Z"])  # no such day
    assert not all_canonical(["2025-08-11T14:32:18+00:00"])


def test_the_columns_of_a_single_field_are_its_values() -> None:
    """`_columns` with one name: itemgetter of one name gives the value, not a tuple."""
    page = [{"email": "ada@example.com"}, {"email": "bob@example.com", "type": "Sign in"}]
    assert normalise._columns(page, ("email",)) == [["ada@example.com", "bob@example.com"]]
    assert normalise._columns(page, ("type",)) == [[None, "Sign in"]]


def test_a_future_dated_record_is_rejected_saying_when_and_the_skew_allowed() -> None:
    now = datetime(2025, 8, 12, 12, 55, tzinfo=UTC)
    batch = Batch(ACTIVITY_LOGS, clock=lambda: now)
    batch.add([{"time": "2025-08-12T14:00:00Z", "email": "an hour ahead"}])
    (reject,) = batch.rejects
    assert reject.reason == (
        "time: 2025-08-12T14:00:00Z is in the future (after 2025-08-12T13:00:00Z, "
        "now plus 5 minutes of clock skew)"
    )
