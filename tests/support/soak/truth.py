"""The soak's ground truth: Delta tables compared row by row with what the simulator
serves, checkpoints against the data they claim, and secrets searched for everywhere."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.normalise import Batch
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import ALL_TABLES, CHECKPOINTS, LOG_TABLES, REJECTS, RUNS, UTC


def floor_of(backfill_start: date) -> datetime:
    return datetime.combine(backfill_start, datetime.min.time(), tzinfo=UTC)


@dataclass(frozen=True)
class Comparison:
    """The local warehouse against the simulator's ground truth (records at or after the
    backfill floor), row by row and column by column."""

    rows: int  # rows in the two log tables
    expected: int  # valid ground-truth records
    duplicates: int  # rows whose lw_id another row has too
    missing: int  # valid ground-truth records not in the tables
    extra: int  # rows Zoom does not serve, or that differ from what it serves
    gap: int  # missing records older than their stream's checkpoint cursor (see below)
    rejects: int  # rows in zoom_ingest_rejects
    rejects_expected: int  # distinct unparseable ground-truth records
    rejects_missing: int  # unparseable records not in zoom_ingest_rejects
    checkpoint_rows: int  # rows in zoom_ingest_checkpoints
    cursors: dict[str, datetime | None] = field(default_factory=dict)
    #: The missing records older than their stream's cursor: lw_id → (stream, time).
    below_cursor: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        """Exactly the ground truth: every record once, nothing else, rejects complete."""
        return not (self.duplicates or self.missing or self.extra or self.rejects_missing)

    @property
    def consistent(self) -> bool:
        """What any stop or crash must leave: no duplicate, nothing Zoom lacks, no gap
        below a cursor, at most one checkpoint row per stream."""
        return not (self.duplicates or self.extra or self.gap) and self.checkpoint_rows <= len(
            LOG_TABLES
        )

    def describe(self) -> str:
        return (
            f"{self.rows:,}/{self.expected:,} rows, {self.duplicates} duplicate, "
            f"{self.missing} missing, {self.extra} extra, {self.gap} below the cursor, "
            f"rejects {self.rejects}/{self.rejects_expected}"
        )


def compare(warehouse: Path, sim: Simulator, floor: datetime) -> Comparison:
    """Read the warehouse back and hold it against what the simulator serves now."""
    if not DeltaTable.is_deltatable(str(warehouse / CHECKPOINTS.name)):
        truth = sum(len(_expected(sim, name, floor)[0]) for name in LOG_TABLES)
        return Comparison(0, truth, 0, truth, 0, 0, 0, 0, 0, 0)
    engine = LocalEngine(warehouse)
    cursors = engine.read_checkpoints(sim.account_id)
    rows = expected_total = duplicates = missing = extra = 0
    below_cursor: dict[str, tuple[str, datetime]] = {}
    reject_texts = {(r["stream"], r["raw_json"]) for r in engine.read_table(REJECTS).to_pylist()}
    rejects_expected = rejects_missing = 0
    for name, spec in LOG_TABLES.items():
        wanted, bad = _expected(sim, name, floor)
        table = engine.read_table(spec).to_pylist()
        held = {row["lw_id"]: row for row in table}
        cursor = cursors.get(name)
        rows += len(table)
        expected_total += len(wanted)
        duplicates += len(table) - len(held)
        extra += sum(1 for key, row in held.items() if wanted.get(key) != row)
        for key, row in wanted.items():
            if key not in held:
                missing += 1
                if cursor is not None and row["time"] < cursor:  # type: ignore[operator]
                    below_cursor[key] = (name, row["time"])  # type: ignore[assignment]
        rejects_expected += len(bad)
        rejects_missing += len({(name, raw) for raw in bad} - reject_texts)
    return Comparison(
        rows=rows,
        expected=expected_total,
        duplicates=duplicates,
        missing=missing,
        extra=extra,
        gap=len(below_cursor),
        rejects=len(reject_texts),
        rejects_expected=rejects_expected,
        rejects_missing=rejects_missing,
        checkpoint_rows=engine.read_table(CHECKPOINTS).num_rows,
        cursors={name: cursors.get(name) for name in LOG_TABLES},
        below_cursor=below_cursor,
    )


def _expected(
    sim: Simulator, stream: str, floor: datetime
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The rows the documented normaliser makes of the ground truth, and the raw JSON of
    the records it rejects. Unparseable records sit at the time they were added."""
    batch = Batch(LOG_TABLES[stream])
    batch.add(sim.ground_truth(stream, start=floor))
    rows = {key: row for key, row in batch.rows.items() if row["time"] >= floor}  # type: ignore[operator]
    return rows, {reject.raw_json for reject in batch.rejects}


def leaks(sim: Simulator, texts: Iterable[str], warehouse: Path | None) -> list[str]:
    """Where the client secret or any access token the simulator issued shows up: in
    `texts` (process output) or in any row of any table of `warehouse`."""
    secrets = [sim.client_secret, *sim.issued_tokens()]
    found: list[str] = []
    for index, text in enumerate(texts):
        found += [f"output {index}" for s in secrets if s in text]
    if warehouse is not None and DeltaTable.is_deltatable(str(warehouse / CHECKPOINTS.name)):
        engine = LocalEngine(warehouse)
        for spec in ALL_TABLES.values():
            dump = repr(engine.read_table(spec).to_pylist())
            found += [f"table {spec.name}" for s in secrets if s in dump]
    return found


def runs_rejected(warehouse: Path) -> int:
    """records_rejected summed over every row of zoom_ingest_runs."""
    runs = LocalEngine(warehouse).read_table(RUNS).to_pylist()
    return sum(r["records_rejected"] or 0 for r in runs)
