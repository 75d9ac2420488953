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

from zoom_ingest.normalise import (
    FUTURE_SKEW,
    Batch,
    RecordError,
    normalise_record,
    parse_time,
    raw_json,
)
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    ALL_TABLES,
    CHECKPOINTS,
    LEASES,
    LOG_TABLES,
    OPERATION_LOGS,
    UTC,
    TableSpec,
    checkpoint_row,
    format_time,
    lease_row,
    lw_id,
    lw_id_json,
    reject_id,
)

HEX64 = re.compile(r"[0-9a-f]{64}")
#: Runs a test once per host time zone of conftest.HOST_TIME_ZONES (UTC, UTC+14, UTC−8):
#: `lw_id` and the times in the tables must not depend on the machine's zone.
HOST_TIME_ZONES = pytest.mark.usefixtures("host_time_zone")

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


@HOST_TIME_ZONES
@pytest.mark.parametrize(("spec", "record", "hashed_text", "golden"), GOLDEN)
def test_lw_id_golden_values(spec: TableSpec, record: dict, hashed_text: str, golden: str) -> None:
    assert hashlib.sha256(hashed_text.encode("utf-8")).hexdigest() == golden
    assert lw_id_json(spec, parse_time(record["time"]), record) == hashed_text.encode("utf-8")
    assert documented_recipe(spec, record) == golden
    assert id_of(spec, record) == golden


@HOST_TIME_ZONES
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


@HOST_TIME_ZONES
@settings(deadline=None)  # timing is benchmarks' business; a busy CI box is slow
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


# -- time: what Zoom sends → an instant → the text lw_id hashes ---------------------------


@HOST_TIME_ZONES
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-08-11T14:32:18Z", datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC)),
        ("2025-08-11t14:32:18z", datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC)),
        ("2025-08-11 14:32:18Z", datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC)),
        ("2025-08-11T20:02:18+05:30", datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC)),
        ("2025-08-11T02:32:18-12:00", datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC)),
        ("2025-08-11T14:32:18.5Z", datetime(2025, 8, 11, 14, 32, 18, 500000, tzinfo=UTC)),
        ("2025-08-11T14:32:18.123456Z", datetime(2025, 8, 11, 14, 32, 18, 123456, tzinfo=UTC)),
        # Beyond microseconds (Delta's precision) the digits are truncated, not rejected
        # and not rounded: a nanosecond timestamp is still a record.
        ("2025-08-11T14:32:18.1234567Z", datetime(2025, 8, 11, 14, 32, 18, 123456, tzinfo=UTC)),
        ("2025-08-11T14:32:18.999999999Z", datetime(2025, 8, 11, 14, 32, 18, 999999, tzinfo=UTC)),
        ("  2025-08-11T14:32:18Z\n", datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_rfc_3339_and_returns_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC  # the UTC instant, not the host's or the sender's zone
    assert (parsed.year, parsed.hour, parsed.microsecond) == (
        expected.year,
        expected.hour,
        expected.microsecond,
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2025-08-11T14:32:18", "time: no time zone in '2025-08-11T14:32:18'"),
        ("2025-02-30T14:32:18Z", "time: not an RFC 3339 timestamp: '2025-02-30T14:32:18Z'"),
        ("2025-08-11T24:00:00Z", "time: not an RFC 3339 timestamp: '2025-08-11T24:00:00Z'"),
        ("2025-08-11", "time: not an RFC 3339 timestamp: '2025-08-11'"),
        ("2025-08-11T14:32:18.Z", "time: not an RFC 3339 timestamp: '2025-08-11T14:32:18.Z'"),
        ("2025-08-11T14:32:18+0200", "time: not an RFC 3339 timestamp: '2025-08-11T14:32:18+0200'"),
        ("x2025-08-11T14:32:18Z", "time: not an RFC 3339 timestamp: 'x2025-08-11T14:32:18Z'"),
        ("２０２５-08-11T14:32:18Z", "time: not an RFC 3339 timestamp: '２０２５-08-11T14:32:18Z'"),
        ("", "time: expected an RFC 3339 string, got str ''"),
        ("   ", "time: expected an RFC 3339 string, got str '   '"),
        (None, "time: expected an RFC 3339 string, got null / missing"),
        (1754922738, "time: expected an RFC 3339 string, got int 1754922738"),
    ],
)
def test_parse_time_rejects_anything_else_saying_why(value: object, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_time(value)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not a time " + "x" * 100, "time: not an RFC 3339 timestamp: "),
        ("2025-08-11T14:32:18." + "1" * 100, "time: no time zone in "),  # no offset
        ("2025-02-30T14:32:18." + "1" * 100 + "Z", "time: not an RFC 3339 timestamp: "),
    ],
)
def test_a_long_bad_time_is_quoted_cut_to_64_characters(value: str, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_time(value)
    assert str(caught.value) == f"{reason}{value[:64]!r}"


@HOST_TIME_ZONES
@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC), "2025-08-11T14:32:18Z"),
        (datetime(2025, 8, 11, 14, 32, 18, 250000, tzinfo=UTC), "2025-08-11T14:32:18.250000Z"),
        (datetime(2025, 8, 11, 14, 32, 18, 1, tzinfo=UTC), "2025-08-11T14:32:18.000001Z"),
        (
            datetime(2025, 8, 12, 4, 2, 18, tzinfo=timezone(timedelta(hours=13, minutes=30))),
            "2025-08-11T14:32:18Z",
        ),
        (
            datetime(2025, 8, 11, 2, 32, 18, tzinfo=timezone(timedelta(hours=-12))),
            "2025-08-11T14:32:18Z",
        ),
    ],
)
def test_format_time_is_utc_with_a_z_whatever_the_zone(instant: datetime, text: str) -> None:
    assert format_time(instant) == text


@HOST_TIME_ZONES
def test_lw_id_of_an_instant_in_another_zone_is_the_golden_one() -> None:
    """The host's zone (conftest runs this in UTC, UTC+14 and UTC−8) never enters lw_id."""
    instant = datetime(2025, 8, 11, 7, 32, 18, tzinfo=timezone(timedelta(hours=-7)))
    assert lw_id(ACTIVITY_LOGS, instant, ADA_SIGN_IN) == GOLDEN[0][3]


# -- bookkeeping rows and ids ---------------------------------------------------------------


@HOST_TIME_ZONES
def test_a_checkpoint_row_holds_the_cursor_in_utc() -> None:
    cursor = datetime(2026, 11, 22, 21, 30, tzinfo=timezone(timedelta(hours=11)))
    before = datetime.now(UTC)
    table = checkpoint_row("acct", "activity_logs", cursor, "run-1")
    assert table.schema.equals(CHECKPOINTS.schema)
    (row,) = table.to_pylist()
    assert row["cursor"] == datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    assert row["cursor"].utcoffset() == timedelta(0)
    assert (row["account_id"], row["stream"], row["run_id"]) == ("acct", "activity_logs", "run-1")
    assert before <= row["updated_at"] <= datetime.now(UTC)


def test_a_checkpoint_cursor_must_be_an_instant() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        checkpoint_row("acct", "activity_logs", datetime(2026, 11, 22, 10, 30), "run-1")


def test_reject_id_is_the_documented_hash_per_stream() -> None:
    raw = '{"email":"no-time@example.com"}'
    expected = hashlib.sha256(
        json.dumps(["reject", "activity_logs", raw], separators=(",", ":")).encode()
    ).hexdigest()
    assert reject_id("activity_logs", raw) == expected
    assert reject_id("operation_logs", raw) != expected


def test_lw_id_of_a_lone_surrogate_is_a_hash_not_a_crash() -> None:
    record = {**ADA_SIGN_IN, "version": "\ud800"}
    text = (
        '["activity_logs","2025-08-11T14:32:18Z","ada@example.com","Sign in",'
        '"203.0.113.7","Browser","\ud800"]'
    )
    time = parse_time(ADA_SIGN_IN["time"])
    assert (
        lw_id(ACTIVITY_LOGS, time, record)
        == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    )


def test_raw_json_keeps_text_readable_and_sorts_keys() -> None:
    assert raw_json({"b": "Zürich", "a": 1}) == '{"a": 1, "b": "Zürich"}'
    # A lone surrogate cannot be UTF-8: escaped instead, still valid JSON.
    assert raw_json({"b": "\ud800", "a": 1}) == '{"a": 1, "b": "\\ud800"}'
    # Not JSON at all (a set): its repr, escaped.
    assert raw_json({"z": {1}, "a": "é"}) == '{"a": "\\u00e9", "z": "{1}"}'


def test_a_reason_quotes_a_long_value_cut_to_40_characters() -> None:
    with pytest.raises(RecordError) as caught:
        normalise_record(ACTIVITY_LOGS, {**ADA_SIGN_IN, "email": list(range(30))})
    shown = repr(list(range(30)))[:40]
    assert str(caught.value) == f"email: expected a string or null, got list {shown}…"
    with pytest.raises(RecordError) as caught:
        normalise_record(ACTIVITY_LOGS, {**ADA_SIGN_IN, "email": 42})
    assert str(caught.value) == "email: expected a string or null, got int 42"
    with pytest.raises(RecordError) as caught:
        normalise_record(ACTIVITY_LOGS, ["x" * 37])  # a repr of 41 characters: cut
    assert str(caught.value) == f"record: expected a JSON object, got list {['x' * 37]!r:.40}…"
    with pytest.raises(RecordError) as caught:
        normalise_record(ACTIVITY_LOGS, ["x" * 36])  # 40 characters: whole
    assert str(caught.value) == f"record: expected a JSON object, got list {['x' * 36]!r}"


def test_a_row_has_every_column_and_null_for_a_missing_field() -> None:
    row = normalise_record(ACTIVITY_LOGS, {"time": "2025-08-11T14:32:18Z", "email": None})
    assert row == {
        "time": datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC),
        "email": None,
        "type": None,
        "ip_address": None,
        "client_type": None,
        "version": None,
        "lw_id": row["lw_id"],
    }
    assert list(row)[:2] == ["time", "email"]


def test_the_first_copy_of_a_record_wins_and_rows_keep_first_met_order() -> None:
    late = {**ADA_SIGN_IN, "time": "2025-08-11T15:00:00Z"}
    batch = Batch(ACTIVITY_LOGS)
    batch.add([late])
    batch.add([ADA_SIGN_IN, {**late, "time": "2025-08-11T17:00:00+02:00"}])
    assert [row["time"].hour for row in batch.rows.values()] == [15, 14]
    assert batch.records_seen == 3 and len(batch) == 2
    empty = Batch(ACTIVITY_LOGS)
    empty.add([{"time": "nope"}])
    assert empty.to_arrow().num_rows == 0 and empty.to_arrow().schema.equals(ACTIVITY_LOGS.schema)
    assert empty.rows == {}


def test_equal_times_are_ordered_by_lw_id() -> None:
    records = [{**ADA_SIGN_IN, "email": f"user{i}@example.com"} for i in range(6)]
    batch = Batch(ACTIVITY_LOGS)
    batch.add(records)
    ids = batch.to_arrow()["lw_id"].to_pylist()
    assert ids == sorted(ids) and len(ids) == 6


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


@HOST_TIME_ZONES
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


def outcome(spec: TableSpec, record: object, not_after: datetime) -> str | None:
    """The record's lw_id, or None if it must be rejected (computed one record at a time;
    records dated after `not_after` are rejects)."""
    try:
        return str(normalise_record(spec, record, not_after)["lw_id"])
    except RecordError:
        return None


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_batch_accounts_for_every_record(data: st.DataObject) -> None:
    spec = data.draw(SPECS)
    records = data.draw(records_for(spec))
    now = datetime.now(UTC)
    batch = Batch(spec, clock=lambda: now)
    batch.add(records)
    batch.add(records)  # every good record a second time: all duplicates now

    ids = [outcome(spec, r, now + FUTURE_SKEW) for r in records * 2]
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


# -- what the mutation run found untested (docs/mutation.md) ---------------------------------


@HOST_TIME_ZONES
def test_a_lease_row_holds_the_run_and_its_times_in_utc() -> None:
    acquired = datetime(2026, 11, 22, 21, 0, tzinfo=timezone(timedelta(hours=11)))
    table = lease_row(
        "acct", "run-1", acquired, acquired + timedelta(minutes=1), acquired + timedelta(minutes=6)
    )
    assert table.schema.equals(LEASES.schema)
    (row,) = table.to_pylist()
    assert row == {
        "account_id": "acct",
        "run_id": "run-1",
        "acquired_at": datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        "renewed_at": datetime(2026, 11, 22, 10, 1, tzinfo=UTC),
        "expires_at": datetime(2026, 11, 22, 10, 6, tzinfo=UTC),
    }


@pytest.mark.parametrize("naive", ["acquired_at", "renewed_at", "expires_at"])
def test_a_lease_time_must_be_an_instant(naive: str) -> None:
    times = dict.fromkeys(("acquired_at", "renewed_at", "expires_at"), datetime.now(UTC))
    times[naive] = times[naive].replace(tzinfo=None)
    with pytest.raises(ValueError, match=f"^lease {naive} must be an aware datetime, got "):
        lease_row("acct", "run-1", **times)


def test_a_columns_comment_is_its_tables_or_empty() -> None:
    assert LEASES.column_comment("run_id") == "The run holding the lease (zoom_ingest_runs.run_id)"
    assert LEASES.column_comment("no_such_column") == ""


@pytest.mark.parametrize("raw", ['{"city":"Zürich"}', '{"version":"\ud800"}'])
def test_reject_id_hashes_the_text_as_utf_8_even_a_lone_surrogate(raw: str) -> None:
    text = json.dumps(["reject", "activity_logs", raw], ensure_ascii=False, separators=(",", ":"))
    expected = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    assert reject_id("activity_logs", raw) == expected


def test_a_batchs_own_clock_is_the_utc_clock() -> None:
    """The future-dated check compares with now in UTC (an aware instant)."""
    before = datetime.now(UTC)
    now = Batch(ACTIVITY_LOGS).clock()
    assert now.utcoffset() == timedelta(0) and before <= now <= datetime.now(UTC)
