"""What the local engine keeps of its own appends under the run lock (`AppendedKeys`),
and that a merge which trusts it inserts exactly the rows a MERGE inserts.

The class of defect this guards against: a merge that answers "is this key in the
table?" from memory instead of the files can lose a record (a false match) or store one
twice (a key it forgot, a file it did not write). So the engine is run against a MERGE
over every way the memory can be wrong: keys whose first 64 bits collide, days
forgotten past the limit, files that were there before the lock, commits it did not
make (a compaction, an upsert), and batches that repeat, overlap and span many days.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoom_ingest.engines import LocalEngine
from zoom_ingest.engines import appended_keys as kept
from zoom_ingest.engines import local as local_engine
from zoom_ingest.engines.appended_keys import AppendedKeys, fingerprints
from zoom_ingest.normalise import Batch
from zoom_ingest.tables import ACTIVITY_LOGS, REJECTS, UTC, format_time

START = datetime(2025, 8, 1, tzinfo=UTC)
HEX = "0123456789abcdef"


def records(instants: list[tuple[int, int]], email: str = "ada@example.com") -> list[dict]:
    """One activity record per (day, minute); its content depends on them only."""
    return [
        {
            "email": email,
            "time": format_time(START + timedelta(days=day, minutes=minute)),
            "type": "Sign in" if minute % 2 == 0 else "Sign out",
            "ip_address": f"203.0.113.{minute % 250}",
            "client_type": "Browser",
            "version": "6.1.0",
        }
        for day, minute in instants
    ]


def batch_of(rows: list[dict]) -> pa.Table:
    batch = Batch(ACTIVITY_LOGS)
    batch.add(rows)
    assert not batch.rejects
    return batch.to_arrow()


def ids(engine: LocalEngine) -> list[str]:
    return sorted(engine.read_table(ACTIVITY_LOGS).column("lw_id").to_pylist())


# -- fingerprints -------------------------------------------------------------------------


def test_a_fingerprint_is_the_first_64_bits_of_the_lw_id() -> None:
    a, b, c = "0" * 63 + "1", "0" * 63 + "2", "f" + "0" * 63
    prints = fingerprints(pa.array([a, b, c, a.upper()]))
    assert prints is not None and prints.type == pa.uint64()
    values = prints.to_pylist()
    assert values[0] == values[1] == values[3]  # same first 16 digits, any case
    assert values[2] != values[0]
    assert int.from_bytes(bytes.fromhex("f" + "0" * 15), "little") == values[2]
    assert fingerprints(pa.array([], pa.string())) == pa.array([], pa.uint64())
    # A slice of a larger array reads its own values, not its neighbours'.
    sliced = fingerprints(pa.array([c, a, b]).slice(1, 2))
    assert sliced is not None and sliced.to_pylist() == values[:2]


@pytest.mark.parametrize(
    "values",
    [
        ["held"],  # not 64 digits
        ["g" * 64],  # not hex
        ["0" * 15 + " " + "0" * 48],  # fromhex would skip the space
        ["é" * 64],  # 64 characters, more bytes
        ["0" * 64, None],  # a null key
    ],
)
def test_what_is_not_64_hex_digits_has_no_fingerprint(values: list[str | None]) -> None:
    assert fingerprints(pa.array(values, pa.string())) is None


# -- what is kept, and forgotten ------------------------------------------------------------


def day_times(days: list[int]) -> pa.Array:
    return pa.array(
        [START + timedelta(days=day, hours=1) for day in days], pa.timestamp("us", tz="UTC")
    )


def lw_ids(count: int, first: int = 0) -> pa.Array:
    return pa.array([f"{n:016x}" + "a" * 48 for n in range(first, first + count)])


def test_the_oldest_days_are_forgotten_past_the_limit() -> None:
    keys = AppendedKeys(0, frozenset(), fingerprints=True, limit=40)
    assert keys.add(lw_ids(40), day_times([d for d in range(4) for _ in range(10)]))
    assert len(keys) == 40 and keys.covers(START)
    # One more day: over the limit, so days go, oldest first, down to 3/4 of it.
    assert keys.add(lw_ids(10, 40), day_times([4] * 10))
    assert len(keys) == 30
    assert keys.forgotten_before == START + timedelta(days=2)
    assert not keys.covers(START + timedelta(days=1, hours=23))
    assert keys.covers(START + timedelta(days=2))
    # What is still kept is found; what was forgotten is not (its files are read).
    found = keys.seen(lw_ids(50), day_times([d for d in range(5) for _ in range(10)]))
    assert found is not None and found.to_pylist() == lw_ids(30, 20).to_pylist()
    # A lagging day below what is kept is not kept again.
    assert keys.add(lw_ids(5, 100), day_times([0] * 5))
    assert len(keys) == 30


def test_a_table_without_a_time_forgets_all_at_once() -> None:
    keys = AppendedKeys(0, frozenset(), fingerprints=False, limit=4)
    assert keys.add(pa.array(["a", "b", None]), None)
    assert keys.seen(pa.array(["b", "c", None]), None).to_pylist() == ["b"]
    assert keys.covers(None)
    assert keys.add(pa.array(["c", "d", "e"]), None)
    assert len(keys) == 0 and not keys.covers(None)


def test_keys_that_cannot_be_fingerprinted_are_not_kept() -> None:
    keys = AppendedKeys(0, frozenset(), fingerprints=True)
    assert not keys.add(pa.array(["held"]), day_times([0]))
    assert keys.seen(pa.array(["held"]), day_times([0])) is None


# -- the merge that trusts them -------------------------------------------------------------

#: (day, minute) instants over six days: batches drawn from them span, repeat, overlap.
instants = st.tuples(st.integers(0, 5), st.integers(0, 59))
steps = st.one_of(
    st.tuples(
        st.just("merge"), st.lists(instants, max_size=40), st.sampled_from(["ada", "eve", "bob"])
    ),
    st.tuples(st.just("maintain"), st.just([]), st.just("")),
    st.tuples(st.just("upsert"), st.lists(instants, min_size=1, max_size=3), st.just("bob")),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    before=st.lists(instants, max_size=30),
    script=st.lists(steps, min_size=1, max_size=8),
    limit=st.sampled_from([10, 60, 10_000]),
    colliding=st.booleans(),
)
def test_a_merge_under_the_run_lock_inserts_what_a_merge_inserts(
    monkeypatch: pytest.MonkeyPatch,
    before: list[tuple[int, int]],
    script: list[tuple[str, list[tuple[int, int]], str]],
    limit: int,
    colliding: bool,
) -> None:
    """Into one warehouse under its run lock (appends that trust what they kept) and
    another without (delta-rs MERGEs): the same counts at every step, the same rows."""
    with monkeypatch.context() as patch:  # one example's patches: undone after it
        # Slices of a day and every day kept alone, so forgetting and slicing both happen.
        patch.setattr(local_engine, "MERGE_SLICE_MIN_ROWS", 1)
        if colliding:
            # Fingerprints of 4 bits: nearly every key seems held and must be read back.
            patch.setattr(kept, "fingerprints", _four_bits(kept.fingerprints))
        _compare(before, script, limit)


def _four_bits(real):  # type: ignore[no-untyped-def]
    def fingerprints(values: pa.Array) -> pa.Array | None:
        prints = real(values)
        return None if prints is None else pc.bit_wise_and(prints, pa.scalar(15, pa.uint64()))

    return fingerprints


def _compare(
    before: list[tuple[int, int]],
    script: list[tuple[str, list[tuple[int, int]], str]],
    limit: int,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        appended = LocalEngine(Path(folder) / "appended", kept_keys_per_table=limit)
        merged = LocalEngine(Path(folder) / "merged", compact_after_files=0)
        for engine in (appended, merged):
            engine.ensure_tables([ACTIVITY_LOGS])
            # Rows there before the lock: their files are read, not trusted.
            engine.merge_new(ACTIVITY_LOGS, batch_of(records(before)))
        appended.compact_after_files = 0
        with appended.run_lock():
            for action, chosen, email in script:
                rows = records(chosen, f"{email}@example.com")
                if action == "merge":
                    batch = batch_of(rows)
                    assert appended.merge_new(ACTIVITY_LOGS, batch) == merged.merge_new(
                        ACTIVITY_LOGS, batch
                    )
                    assert appended.last_merge_metrics.get("num_slices_appended", 0) == len(
                        local_engine.time_slices(ACTIVITY_LOGS, batch)
                    )
                elif action == "maintain":  # a commit this object's record did not make
                    appended.maintain()
                    merged.maintain()
                else:
                    batch = batch_of(rows)
                    appended.upsert(ACTIVITY_LOGS, batch)
                    merged.upsert(ACTIVITY_LOGS, batch)
        assert ids(appended) == ids(merged)
        assert len(set(ids(appended))) == len(ids(appended))


def test_a_backfill_reads_none_of_the_files_it_appended_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches that each span twenty days, as a backfill's do: after the first, every
    file in their range is one this object appended, and none is read; a batch sent
    again is found in memory and read back only at its own instants."""
    read: list[int] = []
    real_read = local_engine._keys_among

    def counted(fragments, *args, **kwargs):  # type: ignore[no-untyped-def]
        fragments = list(fragments)
        read.append(sum(f.count_rows(filter=args[2]) for f in fragments))
        return real_read(fragments, *args, **kwargs)

    monkeypatch.setattr(local_engine, "_keys_among", counted)
    engine = LocalEngine(tmp_path)
    engine.ensure_tables([ACTIVITY_LOGS])
    before = batch_of(records([(10, m) for m in range(30, 60)]))
    engine.merge_new(ACTIVITY_LOGS, before)  # there before the lock, in every range: read
    spans = [batch_of(records([(d, m) for d in range(20)], "x@y.org")) for m in range(6)]
    with engine.run_lock():
        for number, batch in enumerate(spans):
            read.clear()
            assert engine.merge_new(ACTIVITY_LOGS, batch) == 20
            metrics = engine.last_merge_metrics
            assert metrics["num_target_files_scanned"] == 1  # the one from before
            assert metrics["num_target_files_known"] == number  # its own: not read
            assert read == [30]  # the file from before, its rows in the batch's range
        read.clear()
        again = pa.concat_tables([spans[2], batch_of(records([(3, 59)], "new@y.org"))])
        assert engine.merge_new(ACTIVITY_LOGS, again) == 1
        # Read back from the files appended since: only the rows of its twenty instants.
        assert read == [30, 20]
    assert len(ids(engine)) == 30 + 6 * 20 + 1


def test_what_was_kept_is_dropped_with_the_run_lock(tmp_path: Path) -> None:
    engine = LocalEngine(tmp_path)
    engine.ensure_tables([ACTIVITY_LOGS, REJECTS])
    with engine.run_lock():
        engine.merge_new(ACTIVITY_LOGS, batch_of(records([(0, 1), (1, 2)])))
        assert engine._appended
    assert not engine._appended
    # Another writer between two locks: the next lock's record starts from its files.
    other = LocalEngine(tmp_path)
    other.merge_new(ACTIVITY_LOGS, batch_of(records([(0, 3)])))
    with engine.run_lock():
        assert engine.merge_new(ACTIVITY_LOGS, batch_of(records([(0, 1), (0, 3), (0, 4)]))) == 1
        assert engine.last_merge_metrics["num_target_files_scanned"] == 2


@pytest.mark.parametrize("commit", ["compaction", "upsert"])
def test_a_commit_it_did_not_make_itself_starts_what_it_keeps_anew(
    tmp_path: Path, commit: str
) -> None:
    """Rows there before the lock, then moved by a compaction (into files it did not
    append) or added by an upsert: a merge after that reads them from the files."""
    engine = LocalEngine(tmp_path, compact_after_files=0)
    engine.ensure_tables([ACTIVITY_LOGS])
    before = batch_of(records([(0, m) for m in range(10)]))
    engine.merge_new(ACTIVITY_LOGS, before)
    with engine.run_lock():
        engine.merge_new(ACTIVITY_LOGS, batch_of(records([(0, m) for m in range(10, 20)])))
        if commit == "compaction":
            engine.maintain()
            again = before
        else:
            again = batch_of(records([(0, 30)], "bob@example.com"))
            engine.upsert(ACTIVITY_LOGS, again)
        assert engine.merge_new(ACTIVITY_LOGS, again) == 0
        assert engine.last_merge_metrics["num_target_files_known"] == 0
    assert len(ids(engine)) == len(set(ids(engine))) == 20 + (commit == "upsert")
