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
        """Normalise one page of records into the batch, by one of two paths.

        The page path (`_add_page`) takes common records column by column, with the
        per-record work in C loops (`map`, `str.join`, `hashlib`): a JSON object whose
        `time` is in the canonical `YYYY-MM-DDTHH:MM:SSZ` form (a date, not in the
        future) and whose documented fields are strings or null. The single-record path
        (`_add_records`: `normalise_record`, `tables.lw_id`) takes any record, and
        rejects with a reason one that cannot be stored.

        A page of common records (nearly every page) goes the page path whole. A page
        with other records has its common records go the page path first, then the
        others one by one; should the page path refuse even its common records (a lone
        surrogate, a canonical-looking time that is no date), all of them go one by
        one. Either way the rows and lw_ids are the same (tests/test_normalise_pages.py),
        and the first copy of a record wins.
        """
        records = records if isinstance(records, list) else list(records)
        not_after = (self.clock() + FUTURE_SKEW).astimezone(UTC)
        # Canonical times are fixed-width: as text they compare as the instants do.
        latest = not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self._add_page(records, latest):
            return
        fields = self.spec.record_fields[1:]
        common: list[object] = []
        others: list[object] = []
        for record in records:
            (common if _is_common(record, fields, latest) else others).append(record)
        if common and others and self._add_page(common, latest):
            records = others
        self._add_records(records, not_after)

    def _add_page(self, records: list[object], latest: str = _NO_LATER_THAN) -> bool:
        """The page path: add a page whose every record is common (see `add`), in
        columns; False (nothing added) when any is not.

        Each record's lw_id is the SHA-256 of `_lw_id_texts`' bytes for it: the bytes
        of `tables.lw_id_json`, made for the whole page at once."""
        if not records or set(map(type, records)) != {dict}:
            return False
        page = cast("list[dict[str, Any]]", records)
        spec = self.spec
        times = list(map(dict.get, page, repeat("time", len(page))))
        if set(map(type, times)) != {str}:
            return False
        joined_times = _canonical_times(times)
        if joined_times is None or max(times) > latest:
            return False  # a future-dated record: the single-record path rejects it
        columns = _columns(page, spec.record_fields[1:])
        # UnicodeEncodeError: a lone surrogate; TypeError: a field of another JSON type.
        # The single-record path rejects either with its reason.
        try:
            texts = _lw_id_texts(times, columns, spec.name)
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

    def _add_records(self, records: list[object], not_after: datetime) -> None:
        """The single-record path: each record through `normalise_record` (its lw_id
        from `tables.lw_id`), or a reject with its reason and raw JSON."""
        self.records_seen += len(records)
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


def _is_common(record: object, fields: tuple[str, ...], latest: str) -> bool:
    """Whether the page path takes this record (see `Batch.add`), but for what it finds
    only over a page: a lone surrogate, a canonical-looking time that is no date."""
    if type(record) is not dict:
        return False
    time = record.get("time")
    return (
        type(time) is str
        and CANONICAL_TIME(time) is not None
        and time <= latest
        and all(type(record.get(name)) in _STRING_OR_NULL for name in fields)
    )


def _lw_id_texts(times: list[str], columns: list[list[Any]], table_name: str) -> list[bytes]:
    """`tables.lw_id_json` of each record of a page whose times are canonical (each its
    own `format_time`), from the page's field columns: the same bytes, made a page at
    once (tests/test_normalise_pages.py proves them the same over arbitrary records).

    A string is its JSON between quotes when it holds no character that JSON escapes,
    so a record's text is its time and values joined by `","` inside `["<table>","` …
    `"]`, and the page's texts are those joined by newlines: two C calls a record
    (`str.join`), and the check and the split run over the page's bytes at once. A
    null field is marked by `_NULL_MARK` while joining and becomes `null` after. When
    some value holds a character that JSON escapes (a quote, a backslash, a control
    character), the page is joined again, each value of the columns that hold one as
    its JSON inside the quotes.

    TypeError: a field of another JSON type (`str.join` takes only strings);
    UnicodeEncodeError: a lone surrogate. The single-record path rejects either."""
    marked, null_rows = _marked_nulls(columns)
    head = _lw_prefix(table_name)
    data = _joined_texts(head, times, marked)
    # The joins put this many quotes, newlines and null marks (times are canonical, the
    # table name plain): any more bytes that JSON escapes are in some value. (UTF-8
    # encodes every other character in bytes of 0x80 and above.)
    records = len(times)
    expected = records * (head.count('"') + 1 + 2 * len(columns)) + records - 1
    expected += sum(map(len, null_rows))
    if _escaped_bytes(data) != expected:
        escaped = list(map(_json_insides, marked, null_rows))
        data = _joined_texts(head, times, escaped)
    texts = data.split(b"\n")
    for row in set().union(*null_rows):  # a few rows a page, when any
        texts[row] = texts[row].replace(_MARKED_NULL, _NULL_BYTES)
    return texts


#: Stands for a null field while a page's texts are joined (`_lw_id_texts`): a control
#: character, which no joined value holds (JSON escapes it).
_NULL_MARK = "\x00"
#: The bytes that JSON escapes: the quote, the backslash and the control characters.
_ESCAPED_BYTES = bytes(range(0x20)) + b'"\\'
_MARKED_NULL = b'"' + _NULL_MARK.encode() + b'"'
_NULL_BYTES = _NULL.encode()
#: Between two fields of a record's lw_id text (each string's JSON inside its quotes).
_FIELD_SEPARATOR = '","'
#: `_INSIDE_QUOTES(json)`: a JSON string without its quotes (C calls inside `map`).
_INSIDE_QUOTES = operator.itemgetter(slice(1, -1))


def _marked_nulls(columns: list[list[Any]]) -> tuple[list[list[Any]], list[list[int]]]:
    """The columns with each None replaced by `_NULL_MARK` (copies of the columns that
    hold one), and the rows of each column's Nones."""
    marked: list[list[Any]] = []
    null_rows: list[list[int]] = []
    for column in columns:
        rows = list(_null_rows(column)) if None in column else []
        if rows:
            column = column.copy()
            for row in rows:
                column[row] = _NULL_MARK
        marked.append(column)
        null_rows.append(rows)
    return marked, null_rows


def _null_rows(column: list[Any]) -> Iterator[int]:
    """The indices of None in a column, found by C scans (`list.index`)."""
    row = -1
    while True:
        try:
            row = column.index(None, row + 1)
        except ValueError:
            return
        yield row


def _joined_texts(head: str, times: list[str], columns: list[list[Any]]) -> bytes:
    """Every record's `head`, time and values joined as the lw_id text of strings that
    need no escaping, the records' texts joined by newlines, as UTF-8."""
    records = map(_FIELD_SEPARATOR.join, zip(times, *columns, strict=True))
    return (head + ('"]\n' + head).join(records) + '"]').encode("utf-8")


def _escaped_bytes(data: bytes) -> int:
    """How many of these UTF-8 bytes are characters that JSON escapes."""
    return len(data) - len(data.translate(None, _ESCAPED_BYTES))


def _json_insides(column: list[str], null_rows: list[int]) -> list[str]:
    """The column as it stands in lw_id texts: when a value holds a character that JSON
    escapes, each string's JSON (by the encoder `json.dumps` uses) without its quotes,
    the null marks (at `null_rows`) staying marks; else the column itself."""
    if _escaped_bytes("".join(column).encode("utf-8")) == len(null_rows):
        return column  # only its null marks: no value needs escaping
    insides = list(map(_INSIDE_QUOTES, map(_encode_string, column)))
    for row in null_rows:
        insides[row] = _NULL_MARK
    return insides


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
