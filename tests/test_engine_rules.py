"""The rules both engines write by (`engines/rules.py`), and each engine's spelling of them.

Fast: nothing here starts Spark or writes a table; `engines.spark` imports without pyspark.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from zoom_ingest.engines import local, rules, spark
from zoom_ingest.tables import ACTIVITY_LOGS, CHECKPOINTS, RUNS, UTC

START = datetime(2025, 8, 1, 2, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2)))


def times_batch(times: list[datetime | None]) -> pa.Table:
    """A batch with only the columns the merge condition reads."""
    return pa.table(
        {
            "lw_id": [f"id{i}" for i in range(len(times))],
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )


def test_both_engines_limit_a_merge_to_the_same_range() -> None:
    batch = times_batch([START + timedelta(minutes=2), START, START + timedelta(minutes=1)])
    assert rules.batch_range(ACTIVITY_LOGS, batch) == (
        "time",
        START.astimezone(UTC),
        (START + timedelta(minutes=2)).astimezone(UTC),
    )
    assert local.merge_predicate(ACTIVITY_LOGS, batch) == (
        'target."lw_id" = source."lw_id"'
        """ AND target."time" >= '2025-08-01T00:00:00.500000Z'"""
        """ AND target."time" <= '2025-08-01T00:02:00.500000Z'"""
    )
    assert spark.merge_condition(ACTIVITY_LOGS, batch) == (
        "tgt.`lw_id` = src.`lw_id`"
        " AND tgt.`time` >= TIMESTAMP_LTZ'2025-08-01T00:00:00.500000Z'"
        " AND tgt.`time` <= TIMESTAMP_LTZ'2025-08-01T00:02:00.500000Z'"
    )


@pytest.mark.parametrize(
    "batch",
    [times_batch([]), times_batch([START, None])],
    ids=["empty", "a null time"],
)
def test_a_batch_without_a_usable_range_matches_on_the_key_alone(batch: pa.Table) -> None:
    # A null in the range would never match it, and the row would be inserted again.
    assert rules.batch_range(ACTIVITY_LOGS, batch) is None
    assert local.merge_predicate(ACTIVITY_LOGS, batch) == 'target."lw_id" = source."lw_id"'
    assert spark.merge_condition(ACTIVITY_LOGS, batch) == "tgt.`lw_id` = src.`lw_id`"


def test_a_checkpoint_update_needs_a_later_cursor_on_both_engines() -> None:
    assert rules.moves_forward(rules.CHECKPOINT_CURSOR, local.DELTA_RS) == (
        'source."cursor" > target."cursor"'
    )
    statement = spark.upsert_sql(CHECKPOINTS, "t", "v", only_if_later=rules.CHECKPOINT_CURSOR)
    assert "WHEN MATCHED AND src.`cursor` > tgt.`cursor` THEN UPDATE" in statement
    assert "ON tgt.`account_id` = src.`account_id` AND tgt.`stream` = src.`stream`" in statement


def test_timestamps_are_utc_instants_to_the_microsecond() -> None:
    assert rules.utc_timestamp_text(START) == "2025-08-01T00:00:00.500000Z"
    assert rules.timestamp_literal(START) == "TIMESTAMP_LTZ'2025-08-01T00:00:00.500000Z'"
    with pytest.raises(ValueError, match="aware datetime"):
        rules.utc_timestamp_text(datetime(2025, 8, 1))


def test_a_table_gains_only_the_columns_added_since_and_only_at_the_end() -> None:
    added = rules.columns_to_add
    new = ("rate_limit", "calls_per_second", "failed_window")
    old = [name for name in RUNS.columns if name not in new]
    assert added(RUNS, old) == list(new)
    assert added(RUNS, RUNS.columns) == []
    # Anything else differs: the table is left as it is, for the mismatch to name.
    assert added(RUNS, old[1:]) == []
    assert added(RUNS, [*old[:-2], old[-1], old[-2]]) == []
    assert added(ACTIVITY_LOGS, ACTIVITY_LOGS.columns[:-1]) == []


def test_both_engines_keep_a_warehouse_table_in_the_folder_named_after_it(tmp_path: Path) -> None:
    expected = tmp_path / ACTIVITY_LOGS.name
    assert local.LocalEngine(tmp_path).table_path(ACTIVITY_LOGS) == expected
    engine = spark.SparkEngine(object(), warehouse=tmp_path)  # no session is used here
    assert engine.table_path(ACTIVITY_LOGS) == expected


def _runs_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=RUNS.schema)


def test_abandoned_runs_are_the_other_running_rows_of_the_account() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)

    def row(run_id: str, status: str, hours_ago: float, account: str = "acct-a") -> dict:
        return {"run_id": run_id, "account_id": account, "stream": "activity_logs",
                "status": status, "started_at": now - timedelta(hours=hours_ago)}  # fmt: skip

    runs = _runs_table(
        [
            row("old-killed", "running", 30),
            row("recent-killed", "running", 1),
            row("done", "succeeded", 2),
            row("current", "running", 0),
            row("other-account", "running", 30, account="acct-b"),
        ]
    )
    # Under an exclusive lock, every other running row of the account is abandoned…
    marked = rules.abandoned_runs(runs, "acct-a", "current", now, exclusive=True)
    assert sorted(marked["run_id"].to_pylist()) == ["old-killed", "recent-killed"]
    assert set(marked["status"].to_pylist()) == {rules.ABANDONED}
    assert all("found by run current" in e for e in marked["error"].to_pylist())
    # …without one, only those older than the stale threshold (another job may be running).
    marked = rules.abandoned_runs(runs, "acct-a", "current", now, exclusive=False)
    assert marked["run_id"].to_pylist() == ["old-killed"]
