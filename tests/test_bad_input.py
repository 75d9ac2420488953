"""Bad input: malformed records, odd strings and wrong settings never crash a run.

- Records Zoom might send malformed go to `zoom_ingest_rejects` with the raw JSON and the
  reason, the run summary and the runs table count them, and the rest of the batch is
  stored. (Bad *bodies* – an HTML page with 200, truncated JSON, an empty page with a
  next_page_token – are in the fault matrix, tests/test_faults.py.)
- Properties of `lw_id` and of the normaliser, down to the Delta tables and back.
- Every setting of `zoom-ingest run` refused with a wrong value: exit 2, one line naming
  the setting and what is allowed, no call to Zoom. A backfill start older than Zoom's
  retention is not an error: it is clamped, with a warning.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import soak  # the soak harness: ground-truth comparison, bad-settings catalogue
from support.sim_settings import simulator_settings
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import run
from zoom_ingest.normalise import Batch, RecordError, normalise_record, raw_json
from zoom_ingest.settings import Settings
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    OPERATION_LOGS,
    REJECTS,
    RUNS,
    UTC,
    TableSpec,
    format_time,
    lw_id,
)
from zoom_ingest.zoom.rules import retention_start

# -- malformed records through a whole run ---------------------------------------------------

STAMP = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
MEBIBYTE = 1024 * 1024


def sign_in(n: int, **fields: Any) -> dict[str, Any]:
    return {"email": f"odd{n}@example.com", "time": STAMP, "type": "Sign in", **fields}


#: (record as Zoom serves it, the field the reject reason names; None: stored as given)
RECORDS: list[tuple[Any, str | None]] = [
    ({"email": "no-time@example.com", "type": "Sign in"}, "time"),
    (sign_in(1, time="yesterday"), "time"),
    (sign_in(2, time="2025-13-45T99:00:00Z"), "time"),
    (sign_in(3, time=""), "time"),
    (sign_in(4, time=STAMP[:-1]), "time"),  # no zone: not an instant
    (sign_in(5, time=1754922738), "time"),
    (sign_in(6, time=None), "time"),
    (sign_in(7, time="9" * 100_000), "time"),
    (sign_in(8, email=42), "email"),
    (sign_in(9, type=["Sign in"]), "type"),
    (sign_in(10, version={"major": 6}), "version"),
    (sign_in(11, ip_address=True), "ip_address"),
    (sign_in(12, ip_address="\ud800"), "ip_address"),  # a lone surrogate
    ("Sign in", "record"),
    ([STAMP, "odd@example.com"], "record"),
    (None, "record"),
    (3.5, "record"),
    (sign_in(20, device_id=7, extra={"nested": [1, None]}), None),
    (sign_in(21, version="v" * MEBIBYTE), None),
    (sign_in(22, email="big" + "x" * MEBIBYTE + "@example.com"), None),
    (sign_in(23, email="nul\x00bel\x07@example.com"), None),
    (sign_in(24, client_type="esc\x1b[31mred\u2028sep\u202eevil"), None),
    (sign_in(25, email="王伟@example.com", ip_address="2001:db8::1"), None),
    (sign_in(26, ip_address=None, client_type=None, version=None), None),
]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=61, days=3, activity_per_day=150, operation_per_day=30) as s:
        yield s


def test_bad_records_go_to_rejects_are_counted_and_the_rest_is_stored(sim, tmp_path):
    sim.add_records("activity_logs", [record for record, _ in RECORDS])
    start = datetime.now(UTC).date() - timedelta(days=1)
    settings = simulator_settings(sim, backfill_start=start, requests_per_second=500)
    bad = [(record, field) for record, field in RECORDS if field is not None]
    engine = LocalEngine(tmp_path)

    summary = run(settings, engine, progress=False)
    assert summary.exit_code == exit_codes.OK, summary.lines()
    activity = summary.streams[0]
    assert activity.rejected == len(bad)
    assert f"rejected {len(bad)}" in "\n".join(summary.lines())
    runs = {r["stream"]: r for r in engine.read_table(RUNS).to_pylist()}
    assert runs["activity_logs"]["records_rejected"] == len(bad)
    assert runs["activity_logs"]["status"] == "succeeded"

    rejects = engine.read_table(REJECTS).to_pylist()
    assert len(rejects) == len(bad)
    by_raw = {r["raw_json"]: r for r in rejects}
    for record, field in bad:
        row = by_raw[raw_json(record)]  # the raw JSON, exactly as the normaliser wrote it
        assert row["reason"].split(":")[0] == field, row["reason"]
        assert len(row["reason"]) < 300  # a reason, not the record again
        assert row["run_id"] == summary.run_id and row["stream"] == "activity_logs"
        assert row["account_id"] == sim.account_id
        assert json.loads(row["raw_json"]) == record

    # The good ones, odd strings included, are stored exactly as Zoom served them.
    state = soak.compare(tmp_path, sim, soak.floor_of(start))
    assert state.equal, state.describe()
    assert state.rejects == state.rejects_expected == len(bad)

    # Fetched again by a reconcile run, the same bad records are counted again but
    # stored once.
    again = run(settings.with_changes(mode="reconcile", reconcile_days=1), engine, progress=False)
    assert again.exit_code == exit_codes.OK
    assert again.streams[0].rejected == len(bad)
    assert engine.read_table(REJECTS).num_rows == len(bad)


# -- properties: lw_id and the normaliser ----------------------------------------------------

POOL = st.sampled_from([None, "", "a", "Sign in", "x@example.com", "é", "\x00"])
INSTANTS = st.sampled_from(
    [datetime(2025, 8, 11, 14, 32, 18, tzinfo=UTC), datetime(2025, 8, 11, 14, 32, 19, tzinfo=UTC)]
)
OFFSETS = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
SPECS = st.sampled_from([ACTIVITY_LOGS, OPERATION_LOGS])
DOCUMENTED = set(ACTIVITY_LOGS.record_fields + OPERATION_LOGS.record_fields)
UNDOCUMENTED = st.dictionaries(
    st.text(max_size=8).filter(lambda key: key not in DOCUMENTED),
    st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=3)),
    max_size=4,
)


def spelled(instant: datetime, zone: timezone, fraction: bool) -> str:
    """The same instant as Zoom or a proxy might spell it."""
    local = instant.astimezone(zone)
    text = local.isoformat(timespec="microseconds" if fraction else "seconds")
    return text.replace("+00:00", "Z") if zone.utcoffset(None) == timedelta(0) else text


@st.composite
def documented(draw: st.DrawFn, spec: TableSpec) -> tuple[datetime, dict[str, Any]]:
    """An instant and values for the record's documented fields (small pools: equal
    records are common)."""
    return draw(INSTANTS), {name: draw(POOL) for name in spec.record_fields[1:]}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_lw_id_is_equal_exactly_when_the_stored_rows_are(data: st.DataObject) -> None:
    spec = data.draw(SPECS)
    rows = []
    for _ in range(2):
        instant, fields = data.draw(documented(spec))
        record = {"time": spelled(instant, data.draw(OFFSETS), data.draw(st.booleans())),
                  **fields, **data.draw(UNDOCUMENTED)}  # fmt: skip
        rows.append(normalise_record(spec, record))
    first, second = ({k: v for k, v in row.items() if k != "lw_id"} for row in rows)
    assert (rows[0]["lw_id"] == rows[1]["lw_id"]) == (first == second)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_lw_id_ignores_spelling_key_order_and_undocumented_fields(data: st.DataObject) -> None:
    spec = data.draw(SPECS)
    instant, fields = data.draw(documented(spec))
    plain = {"time": format_time(instant), **fields}
    items = [*plain.items(), *data.draw(UNDOCUMENTED).items()]
    items[0] = ("time", spelled(instant, data.draw(OFFSETS), data.draw(st.booleans())))
    shuffled = dict(data.draw(st.permutations(items)))
    expected = lw_id(spec, instant, plain)
    assert normalise_record(spec, shuffled)["lw_id"] == expected
    assert normalise_record(spec, plain)["lw_id"] == expected


HUGE_OR_ODD = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(["x", "\x00", "é", "🧑", "\u2028"]),
        st.integers(min_value=0, max_value=200_000),
    ),
    st.sampled_from(["\x1b[2J", "\u202e", "\ufeff", "a\r\nb", "\\u0000", "'; DROP TABLE x;--"]),
)
MAYBE_BAD = st.one_of(HUGE_OR_ODD, st.none(), st.integers(), st.booleans(), st.just(["x"]))


@st.composite
def zoom_records(draw: st.DrawFn, spec: TableSpec) -> Any:
    """Mostly well-formed records with huge, odd or wrong-typed values; sometimes not an
    object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.none(), HUGE_OR_ODD, st.lists(st.integers(), max_size=2)))
    record: dict[str, Any] = {
        name: draw(HUGE_OR_ODD if draw(st.integers(0, 4)) else MAYBE_BAD)
        for name in spec.record_fields[1:]
    }
    time_ = spelled(draw(INSTANTS), draw(OFFSETS), draw(st.booleans()))
    record["time"] = time_ if draw(st.integers(0, 5)) else draw(MAYBE_BAD)
    return record


@pytest.fixture(scope="module")
def shared_warehouse(tmp_path_factory: pytest.TempPathFactory) -> LocalEngine:
    engine = LocalEngine(tmp_path_factory.mktemp("property-warehouse"))
    engine.ensure_tables()
    return engine


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whatever_the_records_the_tables_give_back_exactly_what_was_stored(
    shared_warehouse: LocalEngine, data: st.DataObject
) -> None:
    spec = data.draw(SPECS)
    records = data.draw(st.lists(zoom_records(spec), min_size=1, max_size=6))
    batch = Batch(spec)
    batch.add(records)  # never raises: every record is a row or a reject
    assert len(batch) + len(batch.rejects) <= len(records)
    for reject in batch.rejects:
        with pytest.raises(RecordError):
            normalise_record(spec, json.loads(reject.raw_json))

    if len(batch):
        shared_warehouse.merge_new(spec, batch.to_arrow())
        stored = {
            row["lw_id"]: row
            for row in shared_warehouse.read_table(spec).to_pylist()
            if row["lw_id"] in batch.rows
        }
        assert stored == batch.rows  # every column, huge and odd strings included


# -- bad settings ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setting_checks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, soak.SettingCheck]:
    """Every wrong setting tried at once, each in its own process and simulator."""
    checks = soak.check_bad_settings(soak.BAD_SETTINGS, tmp_path_factory.mktemp("settings"))
    return {check.bad.label: check for check in checks}


def test_every_setting_has_a_wrong_value_tried():
    tried = {bad.setting for bad in soak.BAD_SETTINGS}
    assert {f.name for f in dataclasses.fields(Settings)} | {"warehouse"} <= tried


@pytest.mark.parametrize("bad", soak.BAD_SETTINGS, ids=lambda bad: bad.label)
def test_a_wrong_setting_exits_2_with_one_line_and_no_call_to_zoom(setting_checks, bad):
    check = setting_checks[bad.label]
    assert check.returncode == 2, check.lines
    assert len(check.lines) == 1, check.lines
    line = check.lines[0]
    assert line.startswith("error: invalid setting ") and bad.setting in line, line
    assert bad.allowed.lower() in line.lower(), line
    assert check.calls == 0


def test_a_backfill_start_older_than_the_retention_is_clamped_with_a_warning(tmp_path):
    with Simulator(seed=63, days=200, activity_per_day=4, operation_per_day=1) as sim:
        asked = datetime.now(UTC).date() - timedelta(days=250)
        runner = soak.Runner(sim, tmp_path)
        args = soak.run_args(tmp_path / "wh", asked, "--window-days", "14",
                             "--requests-per-second", "300")  # fmt: skip
        done = runner.run(args, soak.cli_env(sim))

        assert done.returncode == soak.EXIT_OK, done.output[-2000:]
        warnings = [line for line in done.stderr.splitlines() if "retention" in line]
        assert len(warnings) == 2  # one per stream
        assert all(str(asked) in line and "WARNING" in line for line in warnings)
        oldest = retention_start(datetime.now(UTC).date())
        state = soak.compare(tmp_path / "wh", sim, soak.floor_of(oldest))
        assert state.equal, state.describe()
        assert state.rows > 0
