"""The contract every engine obeys, run against each of `conftest.ENGINE_FACTORIES`.

The tests in the first part use only the Engine protocol. Those at the end check what
only the local engine promises (file layout, pruning, compaction, an OS file lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, TableFeatures
from deltalake.exceptions import DeltaError

import zoom_ingest
from zoom_ingest.engines import Engine, EngineBusy, LocalEngine, TableSchemaMismatch
from zoom_ingest.engines import local as local_engine
from zoom_ingest.engines.folder_lock import LOCK_FILE_NAME
from zoom_ingest.engines.local import MERGE_SLICE_DAYS, merge_predicate, time_slices
from zoom_ingest.normalise import Batch
from zoom_ingest.tables import (
    ACTIVITY_LOGS,
    ALL_TABLES,
    CHECKPOINTS,
    OPERATION_LOGS,
    REJECTS,
    RUNS,
    UTC,
    TableSpec,
    format_time,
)

START = datetime(2025, 8, 1, tzinfo=UTC)


def activity_records(times: list[datetime], email: str = "ada@example.com") -> list[dict]:
    """One Zoom record per instant; its content depends on the instant only."""
    return [
        {
            "email": email,
            "time": format_time(t),
            "type": "Sign in" if t.minute % 2 == 0 else "Sign out",
            "ip_address": f"203.0.113.{t.minute}",
            "client_type": "Browser",
            "version": "6.1.0",
        }
        for t in times
    ]


def batch_of(spec: TableSpec, records: list[dict]) -> pa.Table:
    batch = Batch(spec)
    batch.add(records)
    assert not batch.rejects, batch.rejects
    return batch.to_arrow()


def minutes(first: int, count: int, day: int = 0) -> list[datetime]:
    return [START + timedelta(days=day, minutes=first + i) for i in range(count)]


def rows_by_id(table: pa.Table) -> dict[str, dict]:
    return {row["lw_id"]: row for row in table.to_pylist()}


def merged_ids(engine: Engine, spec: TableSpec = ACTIVITY_LOGS) -> list[str]:
    return sorted(engine.read_table(spec).column("lw_id").to_pylist())


# -- tables ------------------------------------------------------------------------------


def test_ensure_tables_creates_every_table_empty_with_its_exact_schema(engine: Engine) -> None:
    engine.ensure_tables()  # a second time: nothing to do, nothing breaks
    for spec in ALL_TABLES.values():
        table = engine.read_table(spec)
        assert table.schema.equals(spec.schema), spec.name
        assert table.num_rows == 0


def test_ensure_tables_keeps_data(engine: Engine) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 5)))
    engine.merge_new(ACTIVITY_LOGS, batch)
    engine.ensure_tables()
    assert engine.read_table(ACTIVITY_LOGS).num_rows == 5


def test_a_table_with_another_schema_is_reported_and_left_alone(
    engine_factory: Callable[[], Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = pa.schema(
        [
            pa.field("lw_id", pa.string(), nullable=True),  # should be NOT NULL
            pa.field("time", ACTIVITY_LOGS.schema.field("time").type, nullable=False),
            pa.field("operator", pa.string()),
            pa.field("category_type", pa.string()),
            pa.field("action", pa.int64()),  # should be a string
            pa.field("detail", pa.string()),  # operation_detail under another name
        ]
    )
    # Create operation_logs as some other tool might have, through the engine itself.
    monkeypatch.setitem(
        ALL_TABLES, "operation_logs", dataclasses.replace(OPERATION_LOGS, schema=foreign)
    )
    engine_factory().ensure_tables()
    monkeypatch.undo()

    with pytest.raises(TableSchemaMismatch) as caught:
        engine_factory().ensure_tables()
    message = str(caught.value)
    assert caught.value.table == "operation_logs"
    assert "operation_logs" in message
    assert "action: expected string, found int64" in message
    assert "lw_id: expected NOT NULL, found nullable" in message
    assert "missing column operation_detail" in message
    assert "unexpected column detail" in message
    # Left unchanged: still the foreign schema.
    monkeypatch.setitem(
        ALL_TABLES, "operation_logs", dataclasses.replace(OPERATION_LOGS, schema=foreign)
    )
    engine_factory().ensure_tables()


# -- merge -------------------------------------------------------------------------------


def test_merge_inserts_every_new_row_and_returns_the_count(engine: Engine) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 50)))
    assert engine.merge_new(ACTIVITY_LOGS, batch) == 50
    stored = engine.read_table(ACTIVITY_LOGS)
    assert rows_by_id(stored) == rows_by_id(batch)


def test_merging_the_same_batch_again_inserts_nothing(engine: Engine) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 30)))
    assert engine.merge_new(ACTIVITY_LOGS, batch) == 30
    assert engine.merge_new(ACTIVITY_LOGS, batch) == 0
    assert engine.merge_new(ACTIVITY_LOGS, batch) == 0
    assert engine.read_table(ACTIVITY_LOGS).num_rows == 30


def test_overlapping_batches_insert_only_the_rows_not_seen_yet(engine: Engine) -> None:
    first = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 60)))
    second = batch_of(ACTIVITY_LOGS, activity_records(minutes(40, 60)))
    assert engine.merge_new(ACTIVITY_LOGS, first) == 60
    assert engine.merge_new(ACTIVITY_LOGS, second) == 40
    expected = rows_by_id(first) | rows_by_id(second)
    assert len(expected) == 100
    assert rows_by_id(engine.read_table(ACTIVITY_LOGS)) == expected


def test_rows_at_the_same_instant_with_different_content_are_all_kept(engine: Engine) -> None:
    instant = [START] * 4
    emails = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    records = [activity_records(instant[:1], email=e)[0] for e in emails]
    batch = batch_of(ACTIVITY_LOGS, records[:3])
    assert engine.merge_new(ACTIVITY_LOGS, batch) == 3
    # The same instant again, one new record among known ones.
    assert engine.merge_new(ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, records)) == 1
    stored = engine.read_table(ACTIVITY_LOGS)
    assert sorted(stored.column("email").to_pylist()) == emails
    assert set(stored.column("time").to_pylist()) == {START}


def test_rows_exactly_at_the_batch_edges_are_matched(engine: Engine) -> None:
    """The time-range predicate is inclusive at both ends, to the microsecond."""
    low = START + timedelta(hours=3, microseconds=123_456)
    high = START + timedelta(hours=5, microseconds=999_999)
    tick = timedelta(microseconds=1)
    known = activity_records([low - tick, low, high, high + tick])
    assert engine.merge_new(ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, known)) == 4

    middle = activity_records([low + tick, START + timedelta(hours=4), high - tick])
    batch = batch_of(ACTIVITY_LOGS, [known[1], *middle, known[2]])  # min == low, max == high
    assert batch.column("time")[0].as_py() == low
    assert batch.column("time")[-1].as_py() == high
    assert engine.merge_new(ACTIVITY_LOGS, batch) == 3

    stored = engine.read_table(ACTIVITY_LOGS)
    assert stored.num_rows == 7
    assert sorted(stored.column("time").to_pylist()) == sorted(
        [low - tick, low, low + tick, START + timedelta(hours=4), high - tick, high, high + tick]
    )


def test_an_empty_batch_inserts_nothing(engine: Engine) -> None:
    empty = ACTIVITY_LOGS.schema.empty_table()
    assert engine.merge_new(ACTIVITY_LOGS, empty) == 0
    assert engine.read_table(ACTIVITY_LOGS).num_rows == 0
    engine.append(RUNS, RUNS.schema.empty_table())
    assert engine.read_table(RUNS).num_rows == 0


def test_unicode_and_huge_strings_round_trip(engine: Engine) -> None:
    huge = "détail ✓ " * 120_000  # ~1.2 MB
    details = [
        huge,
        "emoji 🧑‍💻👩🏽‍🚀, CJK 会议记录, RTL שלום مرحبا",
        "quotes ' \" `; DROP TABLE operation_logs; --",
        "control \x00 \x01 \t \n \r\n chars",
        "",
    ]
    records = [
        {
            "time": format_time(START + timedelta(seconds=i)),
            "operator": "admin@example.com",
            "category_type": "User",
            "action": "Update",
            "operation_detail": detail,
        }
        for i, detail in enumerate(details)
    ]
    batch = batch_of(OPERATION_LOGS, records)
    assert engine.merge_new(OPERATION_LOGS, batch) == len(details)
    assert engine.merge_new(OPERATION_LOGS, batch) == 0
    stored = engine.read_table(OPERATION_LOGS)
    assert sorted(stored.column("operation_detail").to_pylist()) == sorted(details)
    assert rows_by_id(stored) == rows_by_id(batch)


# -- checkpoints, runs -------------------------------------------------------------------


def test_checkpoints_are_upserted_per_account_and_stream(engine: Engine) -> None:
    assert engine.read_checkpoints("acct-a") == {}
    t1, t2, t3, t4 = (START + timedelta(hours=h) for h in (1, 2, 3, 4))
    engine.save_checkpoint("acct-a", "activity_logs", t1, "run-1")
    engine.save_checkpoint("acct-a", "operation_logs", t2, "run-1")
    engine.save_checkpoint("acct-b", "activity_logs", t3, "run-1")
    assert engine.read_checkpoints("acct-a") == {"activity_logs": t1, "operation_logs": t2}
    assert engine.read_checkpoints("acct-b") == {"activity_logs": t3}

    # The same instant written in another zone; read back in UTC.
    t4_elsewhere = t4.astimezone(timezone(timedelta(hours=-7)))
    engine.save_checkpoint("acct-a", "activity_logs", t4_elsewhere, "run-2")
    cursors = engine.read_checkpoints("acct-a")
    assert cursors == {"activity_logs": t4, "operation_logs": t2}
    assert all(c.utcoffset() == timedelta(0) for c in cursors.values())

    rows = engine.read_table(CHECKPOINTS).to_pylist()
    assert len(rows) == 3
    by_key = {(r["account_id"], r["stream"]): r for r in rows}
    assert by_key["acct-a", "activity_logs"]["run_id"] == "run-2"
    assert by_key["acct-a", "operation_logs"]["run_id"] == "run-1"
    assert (
        by_key["acct-a", "activity_logs"]["updated_at"]
        >= by_key["acct-b", "activity_logs"]["updated_at"]
    )
    assert engine.read_checkpoints("acct-c") == {}


def test_a_checkpoint_never_moves_back(engine: Engine) -> None:
    """Two overlapping runs (hourly and reconcile) each save what they committed; the one
    that writes last must not take back the later cursor the other one saved."""
    later, earlier = START + timedelta(hours=5), START + timedelta(hours=2)
    engine.save_checkpoint("acct-a", "activity_logs", later, "run-hourly")
    engine.save_checkpoint("acct-a", "activity_logs", earlier, "run-reconcile")
    assert engine.read_checkpoints("acct-a") == {"activity_logs": later}
    (row,) = engine.read_table(CHECKPOINTS).to_pylist()
    assert row["run_id"] == "run-hourly"  # the row still names the run that claimed it
    engine.save_checkpoint("acct-a", "activity_logs", later + timedelta(seconds=1), "run-3")
    assert engine.read_checkpoints("acct-a") == {"activity_logs": later + timedelta(seconds=1)}


def test_append_adds_rows_every_time(engine: Engine) -> None:
    def runs(run_id: str) -> pa.Table:
        rows = [
            {
                "run_id": run_id,
                "account_id": "acct-a",
                "stream": stream,
                "mode": "incremental",
                "started_at": START,
                "records_inserted": 3,
                "status": "succeeded",
            }
            for stream in ("activity_logs", "operation_logs")
        ]
        return pa.Table.from_pylist(rows, schema=RUNS.schema)

    engine.append(RUNS, runs("run-1"))
    engine.append(RUNS, runs("run-2"))
    engine.append(RUNS, runs("run-2"))  # append does not de-duplicate
    stored = engine.read_table(RUNS)
    assert stored.num_rows == 6
    assert sorted(stored.column("run_id").to_pylist()) == ["run-1"] * 2 + ["run-2"] * 4
    assert stored.column("error").null_count == 6


def test_upsert_replaces_the_row_with_the_same_key_and_inserts_the_others(engine: Engine) -> None:
    """A run's `running` rows written at its start are replaced at its end."""

    def runs(run_id: str, status: str, error: str | None = None) -> pa.Table:
        rows = [
            {"run_id": run_id, "account_id": "acct-a", "stream": stream, "mode": "incremental",
             "started_at": START, "status": status, "error": error}
            for stream in ("activity_logs", "operation_logs")
        ]  # fmt: skip
        return pa.Table.from_pylist(rows, schema=RUNS.schema)

    engine.upsert(RUNS, runs("run-1", "running"))
    engine.upsert(RUNS, runs("run-2", "running"))
    engine.upsert(RUNS, runs("run-1", "failed", "HTTP 500"))
    stored = {(r["run_id"], r["stream"]): r for r in engine.read_table(RUNS).to_pylist()}
    assert len(stored) == 4
    assert {k: (r["status"], r["error"]) for k, r in stored.items()} == {
        ("run-1", "activity_logs"): ("failed", "HTTP 500"),
        ("run-1", "operation_logs"): ("failed", "HTTP 500"),
        ("run-2", "activity_logs"): ("running", None),
        ("run-2", "operation_logs"): ("running", None),
    }
    assert all(r["started_at"] == START for r in stored.values())


# -- run lock, maintenance ---------------------------------------------------------------


def test_a_second_run_on_the_same_destination_is_refused(
    engine_factory: Callable[[], Engine],
) -> None:
    first, second = engine_factory(), engine_factory()
    with first.run_lock():
        with pytest.raises(EngineBusy) as caught, second.run_lock():
            pytest.fail("two runs held the same destination")
        assert str(caught.value)
        with pytest.raises(EngineBusy), first.run_lock():  # not re-entrant either
            pass
    with second.run_lock():  # released on exit
        pass
    with first.run_lock():
        pass


def test_the_lock_is_released_when_the_run_fails(engine_factory: Callable[[], Engine]) -> None:
    first = engine_factory()
    with pytest.raises(ZeroDivisionError), first.run_lock():
        1 / 0  # noqa: B018
    with engine_factory().run_lock():
        pass


def test_maintain_keeps_the_data_identical(engine: Engine) -> None:
    expected: dict[str, dict] = {}
    for day in range(12):
        batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 10, day=day)))
        engine.merge_new(ACTIVITY_LOGS, batch)
        expected |= rows_by_id(batch)
    engine.maintain()
    engine.maintain()
    assert rows_by_id(engine.read_table(ACTIVITY_LOGS)) == expected
    assert engine.merge_new(ACTIVITY_LOGS, batch) == 0


# -- the local engine only ---------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalEngine:
    made = LocalEngine(tmp_path / "warehouse", compact_after_files=8)
    made.ensure_tables()
    return made


def delta(local: LocalEngine, spec: TableSpec) -> DeltaTable:
    return DeltaTable(local.table_path(spec))


def test_local_tables_are_folders_named_after_them_with_name_and_description(
    local: LocalEngine,
) -> None:
    assert sorted(p.name for p in local.warehouse.iterdir() if p.is_dir()) == sorted(ALL_TABLES)
    for spec in ALL_TABLES.values():
        metadata = delta(local, spec).metadata()
        assert (metadata.name, metadata.description) == (spec.name, spec.comment)
        assert pa.schema(delta(local, spec).schema().to_arrow()).equals(spec.schema)


def test_local_merge_writes_files_of_one_slice_period_each(
    local: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch spanning months is written as files that each lie within one
    MERGE_SLICE_DAYS period (from the Delta log's per-file statistics), so a later
    merge over some days reads only those days' files; nothing is lost or doubled."""
    monkeypatch.setattr(local_engine, "MERGE_SLICE_MIN_ROWS", 1)  # every period its own
    days = 5 * MERGE_SLICE_DAYS
    times = [t for day in range(days) for t in minutes(0, 30, day)]
    batch = batch_of(ACTIVITY_LOGS, activity_records(times))
    assert local.merge_new(ACTIVITY_LOGS, batch) == len(times)

    files = pa.table(delta(local, ACTIVITY_LOGS).get_add_actions(flatten=True)).to_pylist()
    assert len(files) >= days // MERGE_SLICE_DAYS
    period = timedelta(days=MERGE_SLICE_DAYS)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for file in files:
        low, high = file["min.time"], file["max.time"]
        assert (low - epoch) // period == (high - epoch) // period, (low, high)

    # The same rows again, with new ones on some days: only the new ones go in.
    more = [t for day in range(3, days, 4) for t in minutes(40, 5, day)]
    again = batch_of(ACTIVITY_LOGS, activity_records(times + more))
    assert local.merge_new(ACTIVITY_LOGS, again) == len(more)
    assert local.merge_new(ACTIVITY_LOGS, again) == 0
    assert local.read_table(ACTIVITY_LOGS).num_rows == len(times) + len(more)


def test_local_time_slices_join_sparse_periods_and_keep_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_engine, "MERGE_SLICE_MIN_ROWS", 100)
    # Periods of 30, 150, 20, 150 and 10 rows, out of order in the batch.
    counts = [30, 150, 20, 150, 10]
    times = [
        t
        for period, count in enumerate(counts)
        for t in minutes(0, count, day=period * MERGE_SLICE_DAYS)
    ]
    batch = batch_of(ACTIVITY_LOGS, activity_records(times[::-1]))
    slices = time_slices(ACTIVITY_LOGS, batch)
    # 30 + 150 reach the minimum; 20 + 150 too; the last 10 join the slice before.
    assert [piece.num_rows for piece in slices] == [180, 180]
    assert pa.concat_tables(slices).equals(batch.sort_by("time"))
    assert time_slices(ACTIVITY_LOGS, batch.slice(0, 0)) == []
    # A batch in time order already (as the job's are) is cut as it is, not sorted again.
    in_order = batch.sort_by("time")
    cut = time_slices(ACTIVITY_LOGS, in_order)
    assert [piece.num_rows for piece in cut] == [180, 180]
    assert pa.concat_tables(cut).equals(in_order)
    assert cut[0].column("lw_id").chunk(0).buffers() == in_order.column("lw_id").chunk(0).buffers()


def twenty_days_but_the_batch_day_deleted(local: LocalEngine) -> pa.Table:
    """Twenty one-day files of activity_logs, then a batch within day 7, and every file
    outside the batch's time range deleted from the disk: a merge that opened one would
    fail. The batch."""
    for day in range(20):  # one file per day: disjoint time ranges
        local.merge_new(
            ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 50, day)))
        )
    files = pa.table(delta(local, ACTIVITY_LOGS).get_add_actions(flatten=True)).to_pylist()
    assert len(files) == 20

    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(30, 40, day=7)))
    low, high = batch.column("time")[0].as_py(), batch.column("time")[-1].as_py()
    # Proof that the other files are never opened: they are gone from the disk.
    for file in files:
        if file["max.time"] < low or file["min.time"] > high:
            (local.table_path(ACTIVITY_LOGS) / file["path"]).unlink()
    assert len(list(local.table_path(ACTIVITY_LOGS).glob("*.parquet"))) == 1
    return batch


def test_local_merge_prunes_files_outside_the_batch_time_range(local: LocalEngine) -> None:
    batch = twenty_days_but_the_batch_day_deleted(local)
    assert local.merge_new(ACTIVITY_LOGS, batch) == 20
    metrics = local.last_merge_metrics
    assert metrics["num_target_files_scanned"] == 1
    assert metrics["num_target_files_skipped_during_scan"] == 19
    assert metrics["num_target_rows_inserted"] == 20
    # Without the time range the same MERGE has to read every file, and fails here.
    with pytest.raises(DeltaError, match=r"(?i)parquet"):
        delta(local, ACTIVITY_LOGS).merge(
            batch, 'target."lw_id" = source."lw_id"', source_alias="source", target_alias="target"
        ).when_not_matched_insert_all().execute()


def test_local_merge_with_nothing_new_makes_no_commit(local: LocalEngine) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 10)))
    local.merge_new(ACTIVITY_LOGS, batch)
    version = delta(local, ACTIVITY_LOGS).version()
    assert local.merge_new(ACTIVITY_LOGS, batch) == 0
    assert local.merge_new(ACTIVITY_LOGS, ACTIVITY_LOGS.schema.empty_table()) == 0
    assert delta(local, ACTIVITY_LOGS).version() == version


# -- the append that stands in for the MERGE under the run lock --------------------------


def rejects_of(raw: list[str]) -> pa.Table:
    """zoom_ingest_rejects rows (a table without `cluster_by`), one per raw record."""
    return pa.Table.from_pydict(
        {
            "reject_id": [f"reject-{value}" for value in raw],
            "run_id": ["run"] * len(raw),
            "account_id": ["acct"] * len(raw),
            "stream": ["activity_logs"] * len(raw),
            "rejected_at": [START] * len(raw),
            "reason": ["bad"] * len(raw),
            "raw_json": raw,
        },
        schema=REJECTS.schema,
    )


def with_ids(times: list[datetime], ids: list[str]) -> pa.Table:
    """activity_logs rows at `times` whose lw_ids are `ids` (not derived from the rows)."""
    batch = batch_of(ACTIVITY_LOGS, activity_records(times))
    return batch.set_column(batch.schema.get_field_index("lw_id"), "lw_id", pa.array(ids))


def merged_by_append(engine: LocalEngine) -> bool:
    """Whether the engine's last merge_new appended (rather than ran a MERGE)."""
    return engine.last_merge_metrics.get("num_slices_appended", 0) > 0


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the package chooses the allocators' settings on Linux only, where they were measured",
)
def test_deltalakes_allocator_gives_freed_memory_back_at_once_unless_the_user_says() -> None:
    """deltalake's own jemalloc kept what a merge freed for seconds, and the next merges
    allocated on top of it (issue 22): importing the package sets its decay to 0 before
    deltalake loads; a setting of the user's wins."""
    code = "import os, zoom_ingest; print(os.environ.get('_RJEM_MALLOC_CONF'))"
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}

    def chosen(env: dict[str, str]) -> str:
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return run.stdout.strip()

    assert chosen(env) == "dirty_decay_ms:0,muzzy_decay_ms:0"
    assert chosen({**env, "_RJEM_MALLOC_CONF": "narenas:2"}) == "narenas:2"


def test_a_merge_under_the_run_lock_writes_row_groups_of_a_bounded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later merges read a file's keys a row group at a time, and the writer encodes a
    row group at a time: with row groups of at most `APPEND_ROW_GROUP_ROWS` rows, what
    either holds follows that bound, not the size of the batch or the file (issue 22)."""
    monkeypatch.setattr(local_engine, "APPEND_ROW_GROUP_ROWS", 10)
    engine = LocalEngine(tmp_path)
    engine.ensure_tables()
    with engine.run_lock():
        engine.merge_new(ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 35))))
    assert merged_by_append(engine)
    (uri,) = DeltaTable(str(engine.table_path(ACTIVITY_LOGS))).file_uris()
    metadata = pq.ParquetFile(uri.removeprefix("file://")).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        10,
        10,
        10,
        5,
    ]


def test_local_append_under_the_run_lock_gives_exactly_the_rows_of_a_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlapping, repeated and many-period batches, into one warehouse under its run
    lock (appends) and into another without (MERGEs): the same counts, the same rows."""
    monkeypatch.setattr(local_engine, "MERGE_SLICE_MIN_ROWS", 1)  # many slices a batch
    # The table's keys read a few at a time: matches met in every piece of every file.
    monkeypatch.setattr(local_engine, "KEY_READ_BATCH_ROWS", 7)
    appended = LocalEngine(tmp_path / "appended")
    merged = LocalEngine(tmp_path / "merged")
    for engine in (appended, merged):
        engine.ensure_tables()
    spread = [t for day in range(0, 4 * MERGE_SLICE_DAYS, 5) for t in minutes(0, 20, day)]
    batches = [
        (ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 60)))),
        (ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(30, 60)))),  # half
        (ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(30, 60)))),  # again
        (ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(spread))),
        (ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(spread + minutes(55, 40)))),
        # The same instants with other content: new lw_ids at times already held.
        (ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 90), "eve@x.org"))),
        # A key held at an instant outside the batch's range, in a file that overlaps it,
        # is not matched (a MERGE's ON clause holds the range): both insert it again.
        (ACTIVITY_LOGS, with_ids(minutes(200, 3)[::2], ["held", "other"])),
        (ACTIVITY_LOGS, with_ids(minutes(201, 1), ["held"])),
        (OPERATION_LOGS, OPERATION_LOGS.schema.empty_table()),
        (REJECTS, rejects_of(["a", "b", "c"])),
        (REJECTS, rejects_of(["b", "c", "d"])),  # no cluster_by: the whole key column
    ]
    with appended.run_lock():
        counts = []
        for spec, batch in batches:
            counts.append(appended.merge_new(spec, batch))
            assert merged_by_append(appended) == (batch.num_rows > 0)
    expected = []
    for spec, batch in batches:
        expected.append(merged.merge_new(spec, batch))
        assert not merged_by_append(merged)
    assert counts == expected
    assert counts[:3] == [60, 30, 0] and counts[6:8] == [2, 1] and counts[-2:] == [3, 1]
    for spec in (ACTIVITY_LOGS, OPERATION_LOGS, REJECTS):
        order = [(spec.key[0], "ascending"), (spec.columns[1], "ascending")]
        assert (
            appended.read_table(spec).sort_by(order).equals(merged.read_table(spec).sort_by(order))
        )


def test_local_append_under_the_run_lock_of_nothing_new_inserts_nothing_without_commit(
    local: LocalEngine,
) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 30)))
    with local.run_lock():
        assert local.merge_new(ACTIVITY_LOGS, batch) == 30
        version = delta(local, ACTIVITY_LOGS).version()
        assert local.merge_new(ACTIVITY_LOGS, batch) == 0
        assert local.merge_new(ACTIVITY_LOGS, batch.slice(5, 10)) == 0
        assert merged_by_append(local)
        assert local.last_merge_metrics["num_target_rows_inserted"] == 0
    assert delta(local, ACTIVITY_LOGS).version() == version
    assert [c["operation"] for c in delta(local, ACTIVITY_LOGS).history()][:1] == ["WRITE"]
    # Written Snappy-compressed like a MERGE's files, the (unique) key without a dictionary.
    (file,) = delta(local, ACTIVITY_LOGS).file_uris()
    chunks = pq.ParquetFile(file).metadata.row_group(0)
    columns = {chunks.column(i).path_in_schema: chunks.column(i) for i in range(chunks.num_columns)}
    assert {column.compression for column in columns.values()} == {"SNAPPY"}
    assert not columns["lw_id"].has_dictionary_page
    assert columns["email"].has_dictionary_page


def test_local_append_under_the_run_lock_prunes_files_outside_the_batch_time_range(
    local: LocalEngine,
) -> None:
    batch = twenty_days_but_the_batch_day_deleted(local)
    with local.run_lock():
        assert local.merge_new(ACTIVITY_LOGS, batch) == 20
        metrics = local.last_merge_metrics
        assert metrics["num_slices_appended"] == 1
        assert metrics["num_target_files_scanned"] == 1
        assert metrics["num_target_files_skipped_during_scan"] == 19
        assert metrics["num_target_rows_inserted"] == 20
        # Without the time range the same read has to open every file, and fails here.
        table = delta(local, ACTIVITY_LOGS)
        with pytest.raises(OSError, match="parquet"):
            table.to_pyarrow_dataset(filesystem=local_engine._native_filesystem(table)).to_table(
                columns=["lw_id"]
            )


def test_local_merge_appends_only_while_this_engine_holds_the_run_lock(
    local: LocalEngine,
) -> None:
    other = LocalEngine(local.warehouse)

    def merge(engine: LocalEngine, first_minute: int) -> bool:
        batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(first_minute, 5)))
        assert engine.merge_new(ACTIVITY_LOGS, batch) == 5
        return merged_by_append(engine)

    assert not merge(local, 0)  # no lock: a MERGE
    with local.run_lock():
        assert merge(local, 10)
        # Another engine object on the warehouse does not hold the lock: it MERGEs.
        assert not merge(other, 20)
        # A refused second acquisition leaves the held lock (and the appends) alone.
        with pytest.raises(EngineBusy), local.run_lock():
            pass
        assert merge(local, 30)
    assert not merge(local, 40)  # released: MERGEs again
    with pytest.raises(ZeroDivisionError), local.run_lock():
        raise ZeroDivisionError
    assert not merge(local, 50)
    assert len(merged_ids(local)) == 30


@pytest.mark.parametrize("feature", [TableFeatures.DeletionVectors, TableFeatures.V2Checkpoint])
def test_local_merge_under_the_run_lock_keeps_the_merge_for_tables_arrow_cannot_read(
    local: LocalEngine, feature: TableFeatures
) -> None:
    """deltalake's pyarrow datasets refuse a reader feature they do not support (deletion
    vectors; v2 checkpoints, which a MERGE handles): such a table keeps the MERGE."""
    table = delta(local, ACTIVITY_LOGS)
    table.alter.add_feature(feature, allow_protocol_versions_increase=True)
    local.ensure_tables()  # the engine accepts the table: it can write it
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 10)))
    with local.run_lock():
        assert local.merge_new(ACTIVITY_LOGS, batch) == 10
        assert not merged_by_append(local)
        assert local.merge_new(ACTIVITY_LOGS, batch) == 0
        assert local.merge_new(OPERATION_LOGS, OPERATION_LOGS.schema.empty_table()) == 0
        assert local.merge_new(REJECTS, rejects_of(["a"])) == 1
        assert merged_by_append(local)  # the other tables still append


def test_local_merge_predicate_holds_only_formatted_literals() -> None:
    hostile = "x' OR 1=1; --"
    records = activity_records(minutes(0, 3), email=hostile)
    records[1]["time"] = "2025-08-01T02:00:00.5+02:00"
    predicate = merge_predicate(ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, records))
    assert predicate == (
        'target."lw_id" = source."lw_id"'
        """ AND target."time" >= '2025-08-01T00:00:00.000000Z'"""
        """ AND target."time" <= '2025-08-01T00:02:00.000000Z'"""
    )
    assert merge_predicate(CHECKPOINTS, CHECKPOINTS.schema.empty_table()) == (
        'target."account_id" = source."account_id" AND target."stream" = source."stream"'
    )


def test_local_merge_refuses_a_batch_in_another_schema(local: LocalEngine) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 2)))
    wrong = batch.set_column(2, "type", pa.array([1, 2]))
    with pytest.raises(ValueError, match="type: expected string, found int64"):
        local.merge_new(ACTIVITY_LOGS, wrong)
    with pytest.raises(ValueError, match="missing column version"):
        local.merge_new(ACTIVITY_LOGS, batch.drop_columns(["version"]))
    nullable = pa.schema([field.with_nullable(True) for field in ACTIVITY_LOGS.schema])
    with_null_id = pa.Table.from_pylist([{**batch.to_pylist()[0], "lw_id": None}], nullable)
    with pytest.raises(ValueError, match=r"nulls in NOT NULL columns: \['lw_id'\]"):
        local.merge_new(ACTIVITY_LOGS, with_null_id)
    assert local.read_table(ACTIVITY_LOGS).num_rows == 0


def test_local_merge_accepts_nullable_columns_in_any_order(local: LocalEngine) -> None:
    batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 3)))
    loose = pa.Table.from_pylist(
        batch.to_pylist(),
        pa.schema([field.with_nullable(True) for field in reversed(ACTIVITY_LOGS.schema)]),
    )
    assert local.merge_new(ACTIVITY_LOGS, loose) == 3
    assert local.merge_new(ACTIVITY_LOGS, batch) == 0
    assert local.read_table(ACTIVITY_LOGS).schema.equals(ACTIVITY_LOGS.schema)


def test_local_maintain_compacts_many_small_files_sorted_by_time(local: LocalEngine) -> None:
    days = [5, 1, 9, 3, 0, 7, 2, 8, 4, 6]  # merged out of order, as parallel windows finish
    for day in days[:8]:
        local.merge_new(
            ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 30, day)))
        )
    before = local.read_table(ACTIVITY_LOGS)
    version = delta(local, ACTIVITY_LOGS).version()
    local.maintain()  # 8 small files: not more than compact_after_files, nothing to do
    assert delta(local, ACTIVITY_LOGS).version() == version

    for day in days[8:]:
        local.merge_new(
            ACTIVITY_LOGS, batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 30, day)))
        )
    expected = rows_by_id(before) | rows_by_id(local.read_table(ACTIVITY_LOGS))
    local.maintain()

    table = delta(local, ACTIVITY_LOGS)
    files = table.file_uris()
    assert len(files) == 1
    times = pq.read_table(files[0]).column("time").to_pylist()
    assert times == sorted(times)
    assert rows_by_id(local.read_table(ACTIVITY_LOGS)) == expected
    assert len(expected) == 300
    assert table.history(1)[0]["operation"] == "OPTIMIZE"
    # The other tables had nothing to compact.
    assert delta(local, OPERATION_LOGS).version() == 0


def test_local_concurrent_merges_neither_lose_nor_duplicate_rows(tmp_path: Path) -> None:
    """Optimistic commits that collide are re-run; the MERGE is idempotent."""
    LocalEngine(tmp_path).ensure_tables()
    batches = [batch_of(ACTIVITY_LOGS, activity_records(minutes(i * 5, 20))) for i in range(6)]
    inserted: list[int] = []
    errors: list[BaseException] = []

    def merge_all(order: list[pa.Table]) -> None:
        engine = LocalEngine(tmp_path)
        try:
            inserted.extend(engine.merge_new(ACTIVITY_LOGS, b) for b in order)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=merge_all, args=(batches,)),
        threading.Thread(target=merge_all, args=(batches[::-1],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    ids = merged_ids(LocalEngine(tmp_path))
    assert len(ids) == len(set(ids)) == 45  # minutes 0 … 44
    assert sum(inserted) == 45


# The lock across processes: a fresh interpreter, so no state is shared with this one.
LOCK_CHILD = """
import sys
from zoom_ingest.engines import EngineBusy, LocalEngine

engine = LocalEngine(sys.argv[1])
if sys.argv[2] == "try":
    try:
        with engine.run_lock():
            print("acquired", flush=True)
    except EngineBusy as exc:
        print(f"busy: {exc}", flush=True)
else:
    with engine.run_lock():
        print("holding", flush=True)
        sys.stdin.read()
"""


@pytest.fixture
def child_env() -> dict[str, str]:
    source = str(Path(zoom_ingest.__file__).resolve().parents[1])
    paths = [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture
def holder(tmp_path: Path, child_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the run lock on tmp_path/warehouse."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_CHILD, str(tmp_path / "warehouse"), "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready and proc.stdout is not None, "the lock holder did not start"
        assert proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_local_lock_refuses_a_run_from_another_process(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    engine = LocalEngine(tmp_path / "warehouse")
    with engine.run_lock():
        assert (engine.warehouse / LOCK_FILE_NAME).read_text().strip() == str(os.getpid())
        child = subprocess.run(
            [sys.executable, "-c", LOCK_CHILD, str(engine.warehouse), "try"],
            capture_output=True,
            text=True,
            env=child_env,
            timeout=60,
        )
        assert child.stdout.startswith("busy: "), child.stderr
        assert str(engine.warehouse) in child.stdout
        assert f"pid {os.getpid()}" in child.stdout
    child = subprocess.run(
        [sys.executable, "-c", LOCK_CHILD, str(engine.warehouse), "try"],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
    )
    assert child.stdout.strip() == "acquired", child.stderr


def test_local_lock_is_released_when_its_holder_dies(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    engine = LocalEngine(tmp_path / "warehouse")
    with pytest.raises(EngineBusy, match=f"held by pid {holder.pid}"), engine.run_lock():
        pass
    holder.kill()  # no clean exit: the kernel drops the flock with the process
    holder.wait(timeout=30)
    with engine.run_lock():
        pass


#: Every Delta table feature deltalake can add to a table (it refuses timestamp nanos).
ADDABLE_FEATURES = [
    feature
    for name, feature in vars(TableFeatures).items()
    if name[:1].isupper() and feature is not TableFeatures.TimestampNanos
]


@pytest.mark.parametrize("feature", ADDABLE_FEATURES, ids=str)
def test_local_merge_under_the_run_lock_succeeds_wherever_the_merge_does(
    tmp_path: Path, feature: TableFeatures
) -> None:
    """Every Delta table feature deltalake can add: a merge under the run lock (the job's)
    gives what the MERGE without it gives, or fails where the MERGE fails too."""
    outcomes = []
    for locked in (False, True):
        engine = LocalEngine(tmp_path / ("locked" if locked else "merge"))
        engine.ensure_tables()
        delta(engine, ACTIVITY_LOGS).alter.add_feature(
            feature, allow_protocol_versions_increase=True
        )
        batch = batch_of(ACTIVITY_LOGS, activity_records(minutes(0, 10)))
        try:
            with engine.run_lock() if locked else contextlib.nullcontext():
                outcomes.append(
                    (engine.merge_new(ACTIVITY_LOGS, batch), engine.merge_new(ACTIVITY_LOGS, batch))
                )
        except DeltaError as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes[1] == outcomes[0], outcomes
