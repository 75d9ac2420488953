"""What the local engine appended to a table while it held the run lock: the keys it
need not read back from its own files at its next insert-only merge (engines/local.py).

A backfill opens the windows of many days at once, so every batch spans all of them,
and every merge of a batch had to read every key of those days stored so far: its cost
grew with the backfill, and so did its memory (a read of a million keys per merge by
the end of a 20-day backfill). Under the run lock this engine object is the table's only
writer, so the files it appended hold exactly the keys it appended. Those keys are kept
here, and a merge reads only the files that were there before (`files_before`: the
lookback of an hourly run, rows of an earlier run) plus, for a key kept here, the one
row group of its time in the files appended since: the same answer as reading them all.

The record is valid for one version of the table: the one its last append made
(`version`). Any other commit (a compaction, a MERGE, a failed or doubtful write) makes
the caller start a new record, whose `files_before` is then every file: nothing is
missed, a merge only reads more.

Memory stays flat however long the backfill: a `lw_id` (the hex SHA-256 of the record)
is kept as its first 64 bits, 8 bytes a key (a key seen here is then checked against the
files for its exact value); other keys are kept whole (zoom_ip_countries' addresses,
already unique per run). At most `KEPT_KEYS_LIMIT` keys per table, grouped by the UTC
day of their `cluster_by`: past it, the oldest days are forgotten (a backfill opens its
windows oldest first, so those days are done), and a merge reaching below what is kept
reads every file of its range, as without this record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from ..tables import UTC
from .rules import epoch_periods

#: Keys kept per table: 8 bytes each for lw_ids, so at most ~16 MiB a table. More than
#: the days a large account's backfill has open at once (about 26 of 50,000 sign-ins).
KEPT_KEYS_LIMIT = 2_000_000
#: Forgetting goes down to this share of the limit, so it happens seldom.
KEPT_AFTER_FORGETTING = 0.75
#: Hex digits of a lw_id kept: its first 64 bits.
FINGERPRINT_DIGITS = 16
LW_ID_DIGITS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The bucket of a table without `cluster_by` (all its keys in one).
_NO_DAY = -1


@dataclass
class AppendedKeys:
    """The keys one engine object appended to one table since `version` was current."""

    #: The table's version after this record's last append (or when it began).
    version: int
    #: The data files (paths as the table's pyarrow dataset names them) the table had
    #: when this record began: their keys are not here, and are read.
    files_before: frozenset[str]
    #: Whether keys are lw_ids kept as fingerprints (a match is then checked against the
    #: files) or kept whole (a match is certain).
    fingerprints: bool
    limit: int = KEPT_KEYS_LIMIT
    #: Keys of rows whose `cluster_by` is before this were forgotten; a table without
    #: `cluster_by` forgets all at once (`_EPOCH` then means: nothing is kept).
    forgotten_before: datetime | None = None
    _days: dict[int, list[pa.Array]] = field(default_factory=dict, repr=False)
    _count: int = 0

    def __len__(self) -> int:
        return self._count

    def covers(self, low: datetime | None) -> bool:
        """Whether every key appended here at `low` or later (any key, for a table
        without `cluster_by`: `low` None) is still kept."""
        if self.forgotten_before is None:
            return True
        return low is not None and low >= self.forgotten_before

    def seen(self, keys: pa.Array, times: pa.Array | None) -> pa.Array | None:
        """The values of `keys` that may have been appended here: for whole keys those
        that were, for fingerprints those whose first 64 bits were (to be checked against
        the files). None when `keys` cannot be fingerprinted (not all 64 hex digits):
        then the files must be read for all of them."""
        kept = self._kept(keys, times)
        if kept is None:
            return None
        if times is None:
            wanted: Iterable[int] = [_NO_DAY]
        elif len(times):
            days = pc.min_max(epoch_periods(times, 1))
            wanted = range(days["min"].as_py(), days["max"].as_py() + 1)
        else:
            return keys
        held = [chunk for day in wanted for chunk in self._days.get(day, ())]
        if not held:
            return keys.slice(0, 0)
        # The few matches are found by hashing the slice's keys and probing what is
        # held, not the other way round: no hash table of everything held, per merge.
        present = pa.chunked_array(held, kept.type)
        hits = present.filter(pc.is_in(present, value_set=kept, skip_nulls=True))
        if not len(hits):
            return keys.slice(0, 0)
        return keys.filter(pc.is_in(kept, value_set=hits.combine_chunks(), skip_nulls=True))

    def add(self, keys: pa.Array, times: pa.Array | None) -> bool:
        """Keep the keys of rows just appended (at `times`, the rows' `cluster_by`).
        False when they cannot be kept (not fingerprints): the record is then no longer
        whole, and the caller drops it."""
        kept = self._kept(keys, times)
        if kept is None:
            return False
        if times is None:
            self._keep(_NO_DAY, kept.drop_null())
        else:  # fingerprints: no nulls
            days = epoch_periods(times, 1)
            for day in pc.unique(days).to_pylist():
                self._keep(day, kept.filter(pc.equal(days, day)))
        if self._count > self.limit:
            self._forget_oldest()
        return True

    def _keep(self, day: int, kept: pa.Array) -> None:
        if not len(kept):
            return
        if not self.covers(_day_start(day)):
            return  # a lagging day below what is kept: its files are read anyway
        self._days.setdefault(day, []).append(kept)
        self._count += len(kept)

    def _forget_oldest(self) -> None:
        """Forget whole days, oldest first, down to `KEPT_AFTER_FORGETTING` of the limit."""
        target = int(self.limit * KEPT_AFTER_FORGETTING)
        for day in sorted(self._days):
            if self._count <= target:
                break
            self._count -= sum(len(chunk) for chunk in self._days.pop(day))
            self.forgotten_before = _EPOCH if day == _NO_DAY else _day_start(day + 1)

    def _kept(self, keys: pa.Array, times: pa.Array | None) -> pa.Array | None:
        """What is kept of `keys` (at `times`): whole, or their fingerprints; None when
        they cannot be kept (not fingerprints, or a null time: no day to keep them by)."""
        if times is not None and times.null_count:
            return None
        return fingerprints(keys) if self.fingerprints else keys


def fingerprints(lw_ids: pa.Array) -> pa.Array | None:
    """The first 64 bits of each lw_id (64 hex digits, none null) as uint64, or None when
    any value is not 64 hex digits. Upper- and lower-case digits give the same value; a
    match is always checked against the files."""
    if lw_ids.null_count or not len(lw_ids):
        return None if lw_ids.null_count else pa.array([], pa.uint64())
    lw_ids = lw_ids.cast(pa.string())
    if not pc.all(pc.equal(pc.utf8_length(lw_ids), LW_ID_DIGITS)).as_py():
        return None
    heads = pc.utf8_slice_codeunits(lw_ids, 0, FINGERPRINT_DIGITS)
    _validity, offsets_buffer, data = heads.buffers()
    offsets = pa.Array.from_buffers(
        pa.int32(), len(heads) + 1, [None, offsets_buffer], offset=heads.offset
    )
    first, last = offsets[0].as_py(), offsets[-1].as_py()
    text = data.to_pybytes()[first:last]
    try:
        raw = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if len(raw) != 8 * len(lw_ids):  # fromhex skips whitespace
        return None
    return pa.Array.from_buffers(pa.uint64(), len(lw_ids), [None, pa.py_buffer(raw)])


def _day_start(day: int) -> datetime:
    return _EPOCH + timedelta(days=day)
