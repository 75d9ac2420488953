"""The normaliser's fast path gives exactly what the record-by-record path gives."""

from __future__ import annotations

import random

import pytest

from zoom_ingest.normalise import Batch, RecordError, normalise_record
from zoom_ingest.tables import ACTIVITY_LOGS, OPERATION_LOGS

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
