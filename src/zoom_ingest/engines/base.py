"""The one interface both engines implement (local delta-rs, Spark on Databricks).

The job hands every engine the same Arrow batches in the schemas of `tables.py`; an
engine only knows how to store them. The contract tests in tests/test_engine_contract.py
run against every engine available on the machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from ..tables import TableSpec


class EngineBusy(RuntimeError):
    """Another run holds the destination (warehouse folder / schema)."""


class AccountBusy(EngineBusy):
    """Another run holds the Zoom account's lease (zoom_ingest_leases): a second Zoom
    client on the account would share its rate limit and daily quota."""


@dataclass(frozen=True)
class LeaseHolder:
    """A row of zoom_ingest_leases as read back after a lease write."""

    run_id: str
    expires_at: datetime


class TableSchemaMismatch(RuntimeError):
    """A table already exists with a schema other than the one in `tables.py`.

    Engines never alter such a table on their own: the message names the table and
    every difference so that a person can decide (migrate, rename, or point elsewhere).
    """

    def __init__(self, table: str, location: str, differences: list[str]) -> None:
        self.table = table
        self.differences = differences
        super().__init__(
            f"table {table} ({location}) exists with a different schema than zoom_ingest "
            f"expects: {'; '.join(differences)}. It was left unchanged: migrate or move "
            "it, or choose another destination."
        )


class UnsupportedTable(RuntimeError):
    """A table uses a Delta feature this engine cannot write (e.g. delta-rs and liquid
    clustering). Raised before anything is written; the message names the feature."""

    def __init__(self, table: str, location: str, features: list[str], engine: str) -> None:
        self.table = table
        self.features = features
        super().__init__(
            f"table {table} ({location}) uses the Delta table feature(s) "
            f"{', '.join(features)}, which the {engine} engine cannot write; nothing was "
            "written. Write this warehouse with the engine that created it (e.g. "
            "--engine spark), or choose another warehouse."
        )


class Engine(Protocol):
    """Where the tables live. Thread use: the job calls an engine from one thread only."""

    #: "local" or "spark"
    name: str
    #: Rows a batch holds before it is merged, unless the settings say (`batch_rows`).
    batch_rows: int

    def describe(self) -> str:
        """Where the tables are, for log lines (e.g. the folder, or catalog.schema)."""
        ...

    def ensure_tables(self, specs: Iterable[TableSpec] | None = None) -> None:
        """Create every table in `tables.ALL_TABLES` (or of `specs`: outputs beside log
        tables that live elsewhere) that does not exist yet (DDL only here)."""
        ...

    def merge_new(self, spec: TableSpec, batch: pa.Table) -> int:
        """Insert the rows of `batch` whose key is not in the table yet; return how many.

        Insert-only MERGE on `spec.key`. When `spec.cluster_by` is set the match is also
        limited to the batch's min/max of that column, so the target scan is pruned.
        `batch` has exactly `spec.schema`, no duplicate keys, and is sorted by
        `spec.cluster_by`. Idempotent: merging the same batch twice inserts nothing.
        """
        ...

    #: Whether `run_lock()` excludes every other run on the destination (a folder's
    #: lock file); when False, runs of other jobs may be writing at the same time.
    exclusive_runs: bool

    def append(self, spec: TableSpec, batch: pa.Table) -> None:
        """Append rows as they are."""
        ...

    def upsert(self, spec: TableSpec, batch: pa.Table) -> None:
        """Insert each row of `batch`, or replace the row with the same `spec.key` (the
        runs table: a run's `running` row written at its start, replaced at its end).
        `batch` has exactly `spec.schema` and no duplicate keys."""
        ...

    def read_checkpoints(self, account_id: str) -> dict[str, datetime]:
        """stream name → committed cursor (aware UTC) for one Zoom account."""
        ...

    def save_checkpoint(self, account_id: str, stream: str, cursor: datetime, run_id: str) -> None:
        """Upsert the (account_id, stream) row of zoom_ingest_checkpoints."""
        ...

    def write_lease(self, lease: pa.Table) -> list[LeaseHolder]:
        """Take, renew or release a Zoom account's lease; return the account's lease rows.

        `lease` is one zoom_ingest_leases row (`tables.lease_row`). One conditional MERGE
        on account_id (`rules.lease_claim_condition`): inserted when the account has no
        row, written over the row when that is the writer's own or has expired, else
        left alone. A commit that loses to a concurrent writer is re-run against the
        newer version. The rows read back say who holds the lease (normally one). The
        table is created here when missing (a lease location may hold nothing else).
        """
        ...

    def read_table(self, spec: TableSpec) -> pa.Table:
        """The whole table (status, tests; small tables or local use only)."""
        ...

    def run_lock(self) -> AbstractContextManager[None]:
        """Held for a whole run: a second run on the same destination raises EngineBusy."""
        ...

    def maintain(self) -> None:
        """Housekeeping the job calls at the end of a run, under the run lock.

        Compacts tables that have piled up many small files (one per merge), keeping
        files sorted by `spec.cluster_by` where the engine has to do that itself. Cheap
        when there is nothing to do. Never deletes table history (no VACUUM).
        """
        ...
