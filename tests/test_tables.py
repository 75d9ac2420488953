"""Table specs, the lw_id recipe (users join on it: it must never drift), and the normaliser."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoom_ingest.normalise import Batch, RecordError, normalise_record, parse_time, raw_json
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    ALL_TABLES,
    LOG_TABLES,
    OPERATION_LOGS,
    UTC,
    TableSpec,
    format_time,
    lw_id,
)

HEX64 = re.compile(r"[0-9a-f]{64}")

ADA_SIGN_IN = {
    "email": "ada@example.com",
    "time": "2025-08-11T14:32:18Z",
    "type": "Sign in",
    "ip_address": "203.0.113.7",
    "client_type": "Browser",
    "version": "6.1.0",
}
ADMIN_UPDATE = {
    "time": "2025-08-11T16:32:18+02:00",
    "operator": "admin@example.com",
    "category_type": "User",
    "action": "Update",
    "operation_detail": "Update User ada@example.com: Display name → Ada Lovelace",
}
ADA_SIGN_OUT_PARTIAL = {
    "time": "2025-08-11T14:32:18.250Z",
    "email": "ada@example.com",
    "type": "Sign out",
}

# (spec, record, the exact JSON text hashed, its SHA-256): pinned once, never to change.
GOLDEN = [
    (
        ACTIVITY_LOGS,
        ADA_SIGN_IN,
        '["activity_logs","2025-08-11T14:32:18Z","ada@example.com","Sign in","203.0.113.7",'
        '"Browser","6.1.0"]',
        "ea66e4f613ba4fac992b6835e1fbe3797bb73bb04095704c487a24562288fb91",
    ),
    (
        OPERATION_LOGS,
        ADMIN_UPDATE,
        '["operation_logs","2025-08-11T14:32:18Z","admin@example.com","User","Update",'
        '"Update User ada@example.com: Display name → Ada Lovelace"]',
        "19fd67af62c5b68b34c6f2bc1bcf642fa848acb19416b350b790ea8d74ac81a9",
    ),
    (
        ACTIVITY_LOGS,
        ADA_SIGN_OUT_PARTIAL,
        '["activity_logs","2025-08-11T14:32:18.250000Z","ada@example.com","Sign out",'
        "null,null,null]",
        "4f8e1a6665cdda8df7d06cc7e039c6154133e1ee5f30070681ec1ae0fed230f6",
    ),
]


def documented_recipe(spec: TableSpec, record: dict) -> str:
    """The README's recipe, written out again from its words, not from tables.py."""
    instant = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).astimezone(UTC)
    fraction = f".{instant.microsecond:06d}" if instant.microsecond else ""
    time_text = instant.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    others = [record.get(name) for name in spec.record_fields if name != "time"]
    text = json.dumps([spec.name, time_text, *others], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def id_of(spec: TableSpec, record: dict) -> str:
    return str(normalise_record(spec, record)["lw_id"])


# -- table specs -------------------------------------------------------------------------


def test_log_tables_have_exactly_the_connector_columns() -> None:
    assert ACTIVITY_LOGS.columns == [
        "lw_id", "time", "type", "email", "ip_address", "client_type", "version",
    ]  # fmt: skip
    assert OPERATION_LOGS.columns == [
        "lw_id", "time", "operator", "category_type", "action", "operation_detail",
    ]  # fmt: skip
    for spec in LOG_TABLES.values():
        assert spec.key == ("lw_id",)
        assert spec.cluster_by == "time"
        assert spec.schema.field("time").type == pa.timestamp("us", tz="UTC")
        assert not spec.schema.field("lw_id").nullable
        others = [f for f in spec.schema if f.name != "time"]
        assert all(f.type == pa.string() for f in others)
        assert set(spec.record_fields) == set(spec.columns) - {"lw_id"}
        assert spec.record_fields[0] == "time"


def test_every_key_column_is_not_null() -> None:
    for spec in ALL_TABLES.values():
        for name in spec.key:
            assert not spec.schema.field(name).nullable, (spec.name, name)


# -- lw_id -------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "record", "hashed_text", "golden"), GOLDEN)
def test_lw_id_golden_values(spec: TableSpec, record: dict, hashed_text: str, golden: str) -> None:
    assert hashlib.sha256(hashed_text.encode("utf-8")).hexdigest() == golden
    assert documented_recipe(spec, record) == golden
    assert id_of(spec, record) == golden


def test_lw_id_is_the_same_for_every_spelling_of_the_same_instant() -> None:
    spellings = [
        "2025-08-11T14:32:18Z",
        "2025-08-11T14:32:18z",
        "2025-08-11T14:32:18+00:00",
        "2025-08-11T16:32:18+02:00",
        "2025-08-11T07:32:18-07:00",
        "2025-08-11T14:32:18.000Z",
        " 2025-08-11T14:32:18Z ",
    ]
    ids = {id_of(ACTIVITY_LOGS, {**ADA_SIGN_IN, "time": text}) for text in spellings}
    assert ids == {GOLDEN[0][3]}
    assert id_of(ACTIVITY_LOGS, {**ADA_SIGN_IN, "time": "2025-08-11T14:32:19Z"}) not in ids


def test_missing_and_empty_fields_give_different_ids() -> None:
    missing = {k: v for k, v in ADA_SIGN_IN.items() if k != "version"}
    empty = {**ADA_SIGN_IN, "version": ""}
    null = {**ADA_SIGN_IN, "version": None}
    assert id_of(ACTIVITY_LOGS, missing) != id_of(ACTIVITY_LOGS, empty)
    assert id_of(ACTIVITY_LOGS, missing) == id_of(ACTIVITY_LOGS, null)  # missing is null
    assert id_of(ACTIVITY_LOGS, empty) != GOLDEN[0][3]


def test_lw_id_ignores_undocumented_fields_and_key_order() -> None:
    reordered = dict(reversed(list(ADA_SIGN_IN.items())))
    extended = {**ADA_SIGN_IN, "location": "Zürich", "new_zoom_field": 1}
    assert id_of(ACTIVITY_LOGS, reordered) == GOLDEN[0][3]
    assert id_of(ACTIVITY_LOGS, extended) == GOLDEN[0][3]


def test_lw_id_depends_on_every_documented_field() -> None:
    for name in ACTIVITY_LOGS.record_fields[1:]:
        changed = {**ADA_SIGN_IN, name: ADA_SIGN_IN[name] + "x"}
        assert id_of(ACTIVITY_LOGS, changed) != GOLDEN[0][3], name


def test_lw_id_separates_fields_that_concatenate_alike() -> None:
    a = {**ADA_SIGN_IN, "client_type": "Brow", "version": "ser6.1.0"}
    b = {**ADA_SIGN_IN, "client_type": "Browser", "version": "6.1.0"}
    assert id_of(ACTIVITY_LOGS, a) != id_of(ACTIVITY_LOGS, b)


@given(
    instant=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_lw_id_is_stable_across_time_zones(instant: datetime, offset_minutes: int) -> None:
    elsewhere = instant.astimezone(timezone(timedelta(minutes=offset_minutes)))
    record = {**ADA_SIGN_IN, "time": elsewhere.isoformat()}
    expected = lw_id(ACTIVITY_LOGS, instant, ADA_SIGN_IN)
    assert lw_id(ACTIVITY_LOGS, elsewhere, ADA_SIGN_IN) == expected
    assert id_of(ACTIVITY_LOGS, record) == expected
    assert parse_time(format_time(elsewhere)) == instant


# -- normaliser: examples ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ("not an object", "record"),
        ([ADA_SIGN_IN], "record"),
        (None, "record"),
        ({**ADA_SIGN_IN, "time": None}, "time"),
        ({k: v for k, v in ADA_SIGN_IN.items() if k != "time"}, "time"),
        ({**ADA_SIGN_IN, "time": 1754922738}, "time"),
        ({**ADA_SIGN_IN, "time": "yesterday"}, "time"),
        ({**ADA_SIGN_IN, "time": "2025-08-11T14:32:18"}, "time"),  # no zone: not an instant
        ({**ADA_SIGN_IN, "email": 42}, "email"),
        ({**ADA_SIGN_IN, "version": {"major": 6}}, "version"),
        ({**ADA_SIGN_IN, "ip_address": "\ud800"}, "ip_address"),
    ],
)
def test_a_bad_record_is_rejected_with_a_reason_naming_the_field(
    record: object, field: str
) -> None:
    with pytest.raises(RecordError, match=rf"^{field}: "):
        normalise_record(ACTIVITY_LOGS, record)
    batch = Batch(ACTIVITY_LOGS)
    batch.add([record, ADA_SIGN_IN])
    assert len(batch) == 1  # the good record still goes through
    assert [r.reason.split(":")[0] for r in batch.rejects] == [field]
    assert batch.rejects[0].raw_json == raw_json(record)
    raw = batch.rejects[0].raw_json
    raw.encode("utf-8")  # always storable
    assert json.loads(raw) == record


def test_batch_deduplicates_on_lw_id_and_sorts_by_time() -> None:
    later = {**ADA_SIGN_IN, "time": "2025-08-11T15:00:00Z"}
    same_instant = {**ADA_SIGN_IN, "time": "2025-08-11T16:32:18+02:00"}
    batch = Batch(ACTIVITY_LOGS)
    batch.add([later, ADA_SIGN_IN, same_instant, later])
    assert (len(batch), len(batch.rejects), batch.records_seen) == (2, 0, 4)
    table = batch.to_arrow()
    assert table.schema.equals(ACTIVITY_LOGS.schema)
    assert table.column("time").to_pylist() == [
        datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC),
        datetime(2025, 8, 11, 15, 0, 0, tzinfo=UTC),
    ]
    assert table.column("lw_id")[0].as_py() == GOLDEN[0][3]


# -- normaliser: properties --------------------------------------------------------------

TRICKY_CHARACTERS = st.sampled_from(
    ["\x00", "\x1f", "\x7f", "\u2028", "\ud800", "\udfff", "é", "🧑", "\u200d"]
)
TEXT = st.text(st.one_of(st.characters(), TRICKY_CHARACTERS), max_size=20)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
TIME_TEXT = st.builds(
    lambda instant, minutes: instant.astimezone(timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)
# Times from a small pool, so that equal instants (and duplicates) are common.
POOLED_TIMES = st.sampled_from(
    ["2025-08-11T14:32:18Z", "2025-08-11T16:32:18+02:00", "2025-08-12T00:00:00Z"]
)


def zoom_like_records(spec: TableSpec) -> st.SearchStrategy[dict]:
    """Records shaped like Zoom's, any field possibly missing or of the wrong type."""
    field_values = st.one_of(st.none(), st.sampled_from(["", "a", "Sign in"]), TEXT, JSON_VALUES)
    return st.fixed_dictionaries(
        {},
        optional={
            "time": st.one_of(POOLED_TIMES, TIME_TEXT, JSON_VALUES),
            **{name: field_values for name in spec.record_fields[1:]},
            "extra": JSON_VALUES,
        },
    )


def plausible_records(spec: TableSpec) -> st.SearchStrategy[dict]:
    """Records that mostly normalise, from small pools so that duplicates are common."""
    field_values = st.one_of(st.sampled_from([None, "", "a", "Sign in"]), TEXT)
    return st.fixed_dictionaries(
        {
            "time": st.one_of(POOLED_TIMES, TIME_TEXT),
            **{name: field_values for name in spec.record_fields[1:]},
        }
    )


def records_for(spec: TableSpec) -> st.SearchStrategy[list[object]]:
    return st.lists(
        st.one_of(plausible_records(spec), zoom_like_records(spec), JSON_VALUES), max_size=25
    )


SPECS = st.sampled_from([ACTIVITY_LOGS, OPERATION_LOGS])


def outcome(spec: TableSpec, record: object) -> str | None:
    """The record's lw_id, or None if it must be rejected (computed one record at a time)."""
    try:
        return str(normalise_record(spec, record)["lw_id"])
    except RecordError:
        return None


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_batch_accounts_for_every_record(data: st.DataObject) -> None:
    spec = data.draw(SPECS)
    records = data.draw(records_for(spec))
    batch = Batch(spec)
    batch.add(records)
    batch.add(records)  # every good record a second time: all duplicates now

    ids = [outcome(spec, r) for r in records * 2]
    good = [i for i in ids if i is not None]
    duplicates = len(good) - len(set(good))
    assert batch.records_seen == 2 * len(records)
    assert len(batch.rejects) == ids.count(None)
    assert len(batch) == len(set(good))
    assert len(batch) + len(batch.rejects) + duplicates == batch.records_seen

    field_names = {"record", *spec.record_fields}
    for reject in batch.rejects:
        assert reject.reason.split(":")[0] in field_names, reject.reason
        reject.raw_json.encode("utf-8")  # storable as-is


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_batch_rows_are_deterministic_and_arrow_is_in_schema_and_sorted(
    data: st.DataObject,
) -> None:
    spec = data.draw(SPECS)
    records = data.draw(records_for(spec))
    first, second = Batch(spec), Batch(spec)
    first.add(records)
    second.add(records)
    assert first.rows.keys() == second.rows.keys()
    assert all(HEX64.fullmatch(key) for key in first.rows)

    table = first.to_arrow()
    assert table.schema.equals(spec.schema)
    assert table.num_rows == len(first)
    ids = table.column("lw_id").to_pylist()
    assert sorted(ids) == sorted(first.rows)
    times = table.column("time").to_pylist()
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert table.equals(second.to_arrow())


@settings(max_examples=100, deadline=None)
@given(spec=SPECS, record=zoom_like_records(ACTIVITY_LOGS) | zoom_like_records(OPERATION_LOGS))
def test_a_row_keeps_the_documented_fields_it_was_given(spec: TableSpec, record: dict) -> None:
    batch = Batch(spec)
    batch.add([record])
    if batch.rejects:
        assert len(batch) == 0
        assert json.loads(batch.rejects[0].raw_json) is not None
        return
    (row,) = batch.rows.values()
    for name in spec.record_fields[1:]:
        assert row[name] == record.get(name)
    assert row["time"] == parse_time(record["time"])
    assert row["lw_id"] == lw_id(spec, parse_time(record["time"]), record)
