"""Batch.add gives exactly what the record-by-record path gives, for pages that mix odd
records with common ones."""

from __future__ import annotations

from zoom_ingest.normalise import Batch, RecordError, normalise_record, raw_json
from zoom_ingest.tables import ACTIVITY_LOGS, TableSpec


def _record_by_record(spec: TableSpec, records: list[object]) -> tuple[dict, list[tuple[str, str]]]:
    """lw_id → row (first copy wins) and (reason, raw JSON) of rejects."""
    rows: dict[str, dict[str, object]] = {}
    rejects: list[tuple[str, str]] = []
    for record in records:
        try:
            row = normalise_record(spec, record)
        except RecordError as exc:
            rejects.append((str(exc), raw_json(record)))
            continue
        rows.setdefault(str(row["lw_id"]), row)
    return rows, rejects


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
