"""Zoom records (parsed JSON) → rows in the table schema, with lw_id; bad records → rejects.

A record that cannot be stored faithfully is never dropped and never fatal: it becomes
a reject carrying the raw JSON and the reason, and the rest of the batch goes on.
"""

from __future__ import annotations

import json
import operator
from array import array
from binascii import hexlify
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256
from itertools import repeat
from typing import Any, cast

import pyarrow as pa

from .tables import TIMESTAMP as TIMESTAMP_UTC
from .tables import UTC, TableSpec, format_time, lw_id
from .zoom.times import CANONICAL_TIME, RecordError, parse_time
from .zoom.times import canonical_times as _canonical_times
from .zoom.times import describe_value as _describe

#: A record dated after now plus this is rejected as future-dated: Zoom's clock and ours
#: may differ by a little (NTP keeps both within seconds; minutes allow a sloppy host),
#: but a record from 2099 is corrupt data and would push every freshness figure negative.
FUTURE_SKEW = timedelta(minutes=5)


#: The latest canonical time there is: no future-dated check.
_NO_LATER_THAN = "9999-12-31T23:59:59Z"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reject:
    reason: str
    raw_json: str


def normalise_record(
    spec: TableSpec, record: object, not_after: datetime | None = None
) -> dict[str, object]:
    """One Zoom record → one table row (a dict keyed by column), or RecordError (also for
    a record dated after `not_after`, when given)."""
    if not isinstance(record, dict):
        raise RecordError(f"record: expected a JSON object, got {_describe(record)}")
    time = parse_time(record.get("time"))
    if not_after is not None and time > not_after:
        raise RecordError(
            f"time: {format_time(time)} is in the future (after {format_time(not_after)}, "
            f"now plus {FUTURE_SKEW.total_seconds() / 60:g} minutes of clock skew)"
        )
    row: dict[str, object] = {"time": time}
    for name in spec.record_fields[1:]:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise RecordError(f"{name}: expected a string or null, got {_describe(value)}")
        if isinstance(value, str) and not _is_valid_unicode(value):
            raise RecordError(f"{name}: not valid Unicode (lone surrogate)")
        row[name] = value
    row["lw_id"] = lw_id(spec, time, record)
    return row


def raw_json(record: object) -> str:
    """The record as JSON text, readable where possible and always valid UTF-8."""
    try:
        text = json.dumps(record, ensure_ascii=False, sort_keys=True)
        text.encode("utf-8")
        return text
    except (TypeError, ValueError, UnicodeEncodeError):
        return json.dumps(record, ensure_ascii=True, sort_keys=True, default=repr)


@dataclass
class Batch:
    """Rows for one table, de-duplicated on lw_id, plus the rejects met on the way.

    Rows are held as Arrow columns (a table every few thousand rows, see
    `_convert_pending`), not as a dict per row: a buffered row costs a fraction of the
    memory, so a batch of `batch_rows` stays small, and `to_arrow()` is a concatenation
    and a sort inside Arrow rather than a Python sort of dicts that holds the
    interpreter while fetch threads wait.
    """

    spec: TableSpec
    rejects: list[Reject] = field(default_factory=list)
    records_seen: int = 0
    #: The SHA-256 digests (32 bytes) of the lw_ids taken: a third less memory than the
    #: hex texts, and the pages' lw_id columns are made from them in one go (`_lw_ids`).
    _ids: set[bytes] = field(default_factory=set, repr=False, compare=False)
    _chunks: list[pa.Table] = field(default_factory=list, repr=False, compare=False)
    #: Rows of pages taken by `_add_page` not yet in `_chunks`, as Python columns (lw_id
    #: digests; each page's canonical times joined, one bytes object a page; then the
    #: fields), made Arrow `_PENDING_ROWS` rows at a time.
    _pending: list[list[Any]] = field(default_factory=list, repr=False, compare=False)
    _rows: dict[str, dict[str, object]] | None = field(default=None, repr=False, compare=False)
    #: Now, for the future-dated check (records after now + `FUTURE_SKEW` are rejects).
    clock: Callable[[], datetime] = field(default=_utc_now, repr=False, compare=False)

    def add(self, records: Iterable[object]) -> None:
        """Normalise one page of records into the batch.

        A page whose every record is common (below) goes through `_add_page`, column by
        column, with the per-record work in C loops (`map`, `str.join`, `hashlib`); any
        other page goes record by record.

        The common record (a JSON object whose `time` is already in the canonical
        `YYYY-MM-DDTHH:MM:SSZ` form and whose fields are strings or null) takes a fast
        path: its lw_id is hashed from JSON built with the string encoder `json.dumps`
        itself uses, so the bytes are the same, and the page's times are parsed by Arrow
        in one call. Anything else goes through `normalise_record`, which rejects with a
        reason. Either way the first copy of a record wins.
        """
        records = records if isinstance(records, list) else list(records)
        not_after = (self.clock() + FUTURE_SKEW).astimezone(UTC)
        # Canonical times are fixed-width: as text they compare as the instants do.
        latest = not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self._add_page(records, latest):
            return
        spec = self.spec
        fields = spec.record_fields[1:]
        prefix = _lw_prefix(spec.name)
        ids = self._ids
        fast: list[object] = []
        fast_ids: list[bytes] = []
        fast_times: list[str] = []
        fast_values: list[list[object]] = [[] for _ in fields]
        slow: list[object] = []
        seen = 0
        for record in records:
            seen += 1
            if type(record) is not dict:
                slow.append(record)
                continue
            time = record.get("time")
            if type(time) is not str or CANONICAL_TIME(time) is None or time > latest:
                slow.append(record)  # the slow path rejects a future one with its reason
                continue
            values = [record.get(name) for name in fields]
            parts = [prefix, time, '"']
            for value in values:
                if value is None:
                    parts.append(",null")
                elif type(value) is str:
                    parts.append("," + _encode_string(value))
                else:
                    break
            else:
                parts.append("]")
                try:
                    data = "".join(parts).encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate: the slow path names it
                    slow.append(record)
                    continue
                # Copies stay until the times are known to be dates: a copy of a record
                # with no such date is a reject too, as record by record.
                fast.append(record)
                fast_ids.append(sha256(data).digest())
                fast_times.append(time)
                for column, value in zip(fast_values, values, strict=False):
                    column.append(value)
                continue
            slow.append(record)  # a field of the wrong JSON type
        self.records_seen += seen
        if fast_ids:
            joined_times = _canonical_times(fast_times)  # each one is canonical: dates?
            if joined_times is None:
                # A canonical-looking time that is no date (2025-02-30): redo these
                # records one by one, so that the bad ones become rejects.
                slow = [*fast, *slow]
            else:
                times = _time_column(joined_times, len(fast_times))
                keep: list[int] = []
                for index, key in enumerate(fast_ids):
                    if key not in ids:  # the first copy of a record wins
                        ids.add(key)
                        keep.append(index)
                if keep:
                    self._convert_pending()  # rows stay in the order first met
                    columns: dict[str, object] = {
                        "lw_id": _lw_ids([fast_ids[i] for i in keep]),
                        "time": times.take(pa.array(keep, pa.int64())),
                    }
                    for name, values in zip(fields, fast_values, strict=True):
                        columns[name] = [values[i] for i in keep]
                    self._chunks.append(pa.Table.from_pydict(columns, schema=spec.schema))
                    self._rows = None
        if slow:
            self._add_slow(slow, not_after)

    def _add_page(self, records: list[object], latest: str = _NO_LATER_THAN) -> bool:
        """Add a page whose every record is common, in columns; False (nothing added)
        when any is not, for `add` to take record by record.

        The lw_id of each record is the SHA-256 of the same JSON text `tables.lw_id`
        hashes (`["<table>","<time>",<field>,…]`, each field a string from the JSON
        string encoder or `null`). A page whose strings need no JSON escaping (nearly
        every page) has all its texts joined in one string by C loops (`_plain_texts`);
        a page with a quote, a backslash or a control character in some value has each
        value encoded (`_encoded_texts`)."""
        if not records or set(map(type, records)) != {dict}:
            return False
        page = cast("list[dict[str, Any]]", records)
        spec = self.spec
        times = list(map(dict.get, page, repeat("time", len(page))))
        if set(map(type, times)) != {str}:
            return False
        joined_times = _canonical_times(times)
        if joined_times is None or max(times) > latest:
            return False  # a future-dated record: record by record, to reject it
        columns = _columns(page, spec.record_fields[1:])
        # UnicodeEncodeError: a lone surrogate; TypeError: a field of another JSON type.
        # The record-by-record path rejects either with its reason.
        try:
            texts = _plain_texts(times, columns, spec.name)
            if texts is None:
                texts = _encoded_texts(times, columns, spec.name)
        except (TypeError, UnicodeEncodeError):
            return False
        keys = list(map(_digest, map(sha256, texts)))
        ids = self._ids
        if ids.isdisjoint(keys) and len(set(keys)) == len(keys):
            ids.update(keys)  # the common page: every record new
        else:
            keep: list[int] = []
            for index, key in enumerate(keys):
                if key not in ids:  # the first copy of a record wins
                    ids.add(key)
                    keep.append(index)
            keys = [keys[i] for i in keep]
            joined_times = "\n".join([times[i] for i in keep]).encode("ascii")
            columns = [[column[i] for i in keep] for column in columns]
        self.records_seen += len(page)
        if keys:
            pending = self._pending or [[] for _ in range(len(columns) + 2)]
            pending[0].extend(keys)
            pending[1].append(joined_times)  # the page's times, in one bytes object
            for buffered, values in zip(pending[2:], columns, strict=True):
                buffered.extend(values)
            self._pending = pending
            self._rows = None
            if len(pending[0]) >= _PENDING_ROWS:
                self._convert_pending()
        return True

    def _convert_pending(self) -> None:
        """Make the rows buffered by `_add_page` one Arrow table in `_chunks`.

        Pages' rows are made Arrow a few thousand at a time rather than a page at a
        time: in the job, each Arrow call costs the writer far more than in a quiet
        process (it hands the interpreter to the fetch threads and comes back to cold
        caches), so fewer, larger calls."""
        if not self._pending:
            return
        keys, pages_times, *columns = self._pending
        self._pending = []
        table: dict[str, object] = {
            "lw_id": _lw_ids(keys),
            "time": _time_column(b"".join(pages_times), len(keys)),
        }
        table.update(zip(self.spec.record_fields[1:], columns, strict=True))
        self._chunks.append(pa.Table.from_pydict(table, schema=self.spec.schema))

    def _add_slow(self, records: Iterable[object], not_after: datetime | None = None) -> None:
        columns: dict[str, list[object]] = {name: [] for name in self.spec.columns}
        for record in records:
            try:
                row = normalise_record(self.spec, record, not_after)
            except RecordError as exc:
                self.rejects.append(Reject(reason=str(exc), raw_json=raw_json(record)))
                continue
            key = bytes.fromhex(cast("str", row["lw_id"]))
            if key in self._ids:
                continue  # the first copy of a record wins
            self._ids.add(key)
            for name, values in columns.items():
                values.append(row.get(name))
        if columns["lw_id"]:
            self._convert_pending()  # rows stay in the order first met
            self._chunks.append(pa.Table.from_pydict(columns, schema=self.spec.schema))
            self._rows = None

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def rows(self) -> dict[str, dict[str, object]]:
        """lw_id → row (a dict keyed by column), in the order first met; built on demand
        (the job itself only uses `to_arrow()`)."""
        if self._rows is None:
            self._rows = {row["lw_id"]: row for row in self._table().to_pylist()}
        return self._rows

    def to_arrow(self) -> pa.Table:
        """The rows as an Arrow table in the table schema, sorted by time (oldest first)."""
        return self._table().sort_by([("time", "ascending"), ("lw_id", "ascending")])

    def _table(self) -> pa.Table:
        self._convert_pending()
        if not self._chunks:
            return self.spec.schema.empty_table()
        return pa.concat_tables(self._chunks)


#: The JSON of a field's value that is missing or null, in a lw_id's array.
_NULL = "null"
_STRING_OR_NULL = frozenset({str, type(None)})
#: `_BLANK_NULL(value, value)`: "" for None, else the value; `_JSON_NULL(value, json)`:
#: `null` for None, else `json` (bound dict.get: C calls inside `map`).
_BLANK_NULL = {None: ""}.get
_JSON_NULL = {None: _NULL}.get
#: `_digest(hash)`: the hash object's digest, through the type's method itself: inside
#: `map` that is a C call, where `operator.methodcaller("digest")` looks the method up a
#: record (~0.1 us a record more).
_digest: Callable[[Any], bytes] = type(sha256()).digest


def _lw_ids(digests: list[bytes]) -> pa.Array:
    """The lw_id column (lowercase hex texts) of these SHA-256 digests, made in one go:
    their hex joined is the data of an Arrow string array whose every value is 64
    bytes long, so no Python string is made a record."""
    return _fixed_width_strings(hexlify(b"".join(digests)), len(digests), _HEX_LENGTH)


#: Characters of a SHA-256 digest in hex, and of a canonical time.
_HEX_LENGTH = 64
_TIME_LENGTH = 20


def _time_column(joined_times: bytes, rows: int) -> pa.Array:
    """The time column of `rows` times given as `_canonical_times` returns them (pages'
    of them may follow one another): without the newlines, every time's 20 bytes end to
    end. Every time is canonical and a date, so the cast succeeds."""
    times = joined_times.replace(b"\n", b"")
    return _fixed_width_strings(times, rows, _TIME_LENGTH).cast(TIMESTAMP_UTC)


def _fixed_width_strings(data: bytes, rows: int, width: int) -> pa.Array:
    """An Arrow string array of `rows` values of `width` bytes each, `data` end to end
    (valid UTF-8: hex digits, canonical times)."""
    offsets = _fixed_offsets(rows, width)
    return pa.Array.from_buffers(pa.string(), rows, [None, offsets, pa.py_buffer(data)])


#: Width → the offsets 0, width, 2 × width, … (int32) of `_fixed_width_strings`' arrays,
#: made once for the most rows asked so far: making them anew a call cost as much as
#: the hex itself.
_offsets_made: dict[int, pa.Buffer] = {}


def _fixed_offsets(rows: int, width: int) -> pa.Buffer:
    """The offsets of `rows` strings of `width` bytes each, as an Arrow buffer."""
    size = (rows + 1) * 4  # int32
    made = _offsets_made.get(width)
    if made is None or made.size < size:
        most = max(rows, 2 * _PENDING_ROWS)
        made = pa.py_buffer(array("i", range(0, (most + 1) * width, width)))
        _offsets_made[width] = made
    return made.slice(0, size)


def _columns(page: list[dict[str, Any]], names: tuple[str, ...]) -> list[list[Any]]:
    """The page's values of each field, missing as None: C loops either way (the page's
    records are all exactly dicts), one when no field is missing, one a field when any is
    (most pages of sign-ins miss a few ip_address or version fields)."""
    if len(names) > 1:  # itemgetter of one name gives the value, not a tuple
        try:
            rows = map(operator.itemgetter(*names), page)
            return [list(column) for column in zip(*rows, strict=True)]
        except KeyError:
            pass
    return [list(map(dict.get, page, repeat(name, len(page)))) for name in names]


#: Stands for a null field while a page's texts are joined (`_plain_texts`): a control
#: character, which JSON escapes, so no value of a page that takes that path holds one.
_NULL_MARK = "\x00"
#: The bytes that JSON escapes: the quote, the backslash and the control characters.
#: UTF-8 encodes every other character in bytes of 0x80 and above, so counting these
#: bytes counts the characters.
_ESCAPED_BYTES = bytes(range(0x20)) + b'"\\'
_MARKED_NULL = b'"' + _NULL_MARK.encode() + b'"'
_NULL_BYTES = _NULL.encode()
#: Between two fields of a record's lw_id text, when neither is null nor needs escaping.
_FIELD_SEPARATOR = '","'


def _plain_texts(times: list[str], columns: list[list[Any]], table_name: str) -> list[bytes] | None:
    """The lw_id JSON texts (UTF-8) of a page whose times are canonical, from its field
    columns; None when some string value needs JSON escaping (`_encoded_texts` then).

    A string needing no escaping is its own JSON between quotes, so a record's text is
    its values joined by `","` inside `["<table>","` … `"]`, and the page's texts are
    those joined by newlines: two C calls a record (`str.join`) instead of one a field
    and more, and the checks and the split run over the page's bytes at once. A null
    field is marked by `_NULL_MARK` while joining and becomes `null` after.

    TypeError: a field of another JSON type (`str.join` takes only strings);
    UnicodeEncodeError: a lone surrogate."""
    marked = columns
    null_rows: set[int] = set()
    nulls = 0
    if any(None in column for column in columns):
        marked = []
        for column in columns:
            if None in column:
                column = column.copy()
                for row in _null_rows(column):
                    column[row] = _NULL_MARK
                    null_rows.add(row)
                    nulls += 1
            marked.append(column)
    head = _lw_prefix(table_name)
    lines = ('"]\n' + head).join(map(_FIELD_SEPARATOR.join, zip(times, *marked, strict=True)))
    data = (head + lines + '"]').encode("utf-8")
    # The joins put this many quotes, newlines and null marks (times are canonical, the
    # table name plain): any more characters that JSON escapes are in some value.
    quotes = len(times) * (head.count('"') + 1 + 2 * len(columns))
    newlines = len(times) - 1
    if len(data) - len(data.translate(None, _ESCAPED_BYTES)) != quotes + newlines + nulls:
        return None
    texts = data.split(b"\n")
    for row in null_rows:  # a few rows a page, when any
        texts[row] = texts[row].replace(_MARKED_NULL, _NULL_BYTES)
    return texts


def _null_rows(column: list[Any]) -> Iterator[int]:
    """The indices of None in a column, found by C scans (`list.index`)."""
    row = -1
    while True:
        try:
            row = column.index(None, row + 1)
        except ValueError:
            return
        yield row


def _encoded_texts(times: list[str], columns: list[list[Any]], table_name: str) -> list[bytes]:
    """The lw_id JSON texts (UTF-8) of a page whose times are canonical, each field
    encoded by the JSON string encoder: any string, escaped or not.

    TypeError: a field of another JSON type; UnicodeEncodeError: a lone surrogate."""
    encoded = [_encoded(column) for column in columns]
    prefix = _lw_prefix(table_name)
    heads = [prefix + time + '"' for time in times]
    arrays = map(_close_array, map(",".join, zip(heads, *encoded, strict=True)))
    return list(map(str.encode, arrays))


def _encoded(column: list[Any]) -> list[str]:
    """Each value as JSON: a string's JSON (TypeError for any other type), or null.

    A column with nulls (most pages miss a few ip_address or version fields) stays in
    C loops too: a null is encoded as "" and then swapped for `null` by looking the
    original value up in `{None: "null"}`, whose miss returns the string's encoding."""
    if None not in column:
        return list(map(_encode_string, column))
    blanked = map(_BLANK_NULL, column, column)  # TypeError here for an unhashable value
    return list(map(_JSON_NULL, column, map(_encode_string, blanked)))


def _close_array(text: str) -> str:
    return text + "]"


#: The encoder `json.dumps(..., ensure_ascii=False)` uses for a string (C-accelerated).
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _lw_prefix(table_name: str) -> str:
    """`["<table>","` : what every lw_id JSON array starts with, up to the time."""
    return "[" + _encode_string(table_name) + ',"'


#: How many rows of pages `Batch` buffers as Python lists before making them Arrow.
_PENDING_ROWS = 4096


def _is_valid_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
