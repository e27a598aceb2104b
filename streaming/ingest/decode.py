"""Decode a batch of Kafka message values into a typed Arrow table, isolating poison.

The fast path parses the whole batch at once with Arrow's multi-threaded JSON reader
against the topic's explicit schema. If that fails (bad JSON, wrong types, bad encoding,
two documents in one message, a pretty-printed document), the slow path screens every
message (UTF-8, a typed msgspec decoder, the line checks below: about 0.6 µs each, with no
Python loop per message), batch-parses the ones it accepts from the same joined buffer
with the suspects blanked out, and judges each suspect alone. Arrow stays the single
arbiter: a suspect that Arrow parses on its own is kept, so a message's fate never
depends on its neighbours. Should Arrow still refuse the screened batch, bisection
isolates the culprits.

Arrow is only ever shown input it is known to survive: pyarrow 26's JSON reader crashes
the process (SIGSEGV) when a block of input starts with a top-level `null`, and maps rows
to messages by position only if each message yields exactly one row (it skips blank lines
and reads `{..}{..}` as two rows). So a batch is parsed at once only if every message is
one line starting with `{` (`_Joined.safe`), and a message judged alone only if it starts
with `{` (`_parse_one`); anything else is screened and classified without Arrow.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import count, repeat
from typing import Annotated

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from lakehouse.schemas import EventSchema
from streaming.ingest.timestamps import out_of_range

# Below this many messages a failing segment is classified message by message.
_LEAF_SEGMENT = 16
# Most rows `_drop_invalid` cuts out of a batch by slicing rather than copying it.
_MAX_CUTS = 256


class Reason(StrEnum):
    """Why a message was quarantined; the `reason` column of bronze.quarantine."""

    EMPTY = "empty_message"
    OVERSIZE = "oversize"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    SCHEMA_MISMATCH = "schema_mismatch"
    MISSING_FIELD = "missing_required_field"
    # Not a decoding verdict: the consumer could not read the message at all (see
    # streaming/ingest/worker.py, consumer errors); its bytes are unknown.
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Reject:
    """One quarantined message: its index in the batch, the reason and a human detail."""

    index: int
    reason: Reason
    detail: str


@dataclass
class Decoded:
    """The valid rows (in message order) with their batch indices, and the rejects."""

    table: pa.Table
    indices: np.ndarray
    rejects: list[Reject] = field(default_factory=list)


class BatchDecoder:
    """Parses message values of one event type; reusable across batches."""

    def __init__(self, event: EventSchema, max_message_bytes: int) -> None:
        self.event = event
        self.max_message_bytes = max_message_bytes
        # Unknown fields are ignored so producers can add fields before consumers know them.
        self._parse_options = pajson.ParseOptions(
            explicit_schema=event.schema, unexpected_field_behavior="ignore"
        )
        # A message judged alone may span lines (pretty-printed JSON): Arrow then reads it
        # with newlines allowed inside a document, still refusing raw control characters
        # inside strings, as JSON requires.
        self._single_options = pajson.ParseOptions(
            explicit_schema=event.schema,
            unexpected_field_behavior="ignore",
            newlines_in_values=True,
        )
        self._read_options = pajson.ReadOptions(use_threads=True, block_size=8 << 20)
        self._required = list(event.required)
        self._string_columns = [f.name for f in event.schema if _holds_strings(f.type)]
        self._timestamp_columns = [f.name for f in event.schema if pa.types.is_timestamp(f.type)]
        self._screen_decoder = msgspec.json.Decoder(_screening_struct(event.schema))
        self._poison_seen = False  # whether the last slow path found suspects

    def decode(self, values: list[bytes | None]) -> Decoded:
        """Split a batch into typed valid rows and classified rejects; never raises on input."""
        rejects: list[Reject] = []
        sizes = _sizes(values)
        absent = self._screen(sizes, rejects)
        parts: list[tuple[np.ndarray, pa.Table]] = []
        if len(absent) < len(values):
            joined = _Joined(*_joinable(values, sizes, absent))
            # After a batch with poison, the next one most likely has some too: go straight
            # to the slow path rather than parse the whole batch only to have Arrow refuse
            # it. Every message's fate is the same on either path (see the module docstring).
            table = None
            if not self._poison_seen and joined.safe():
                table = self._parse_joined(joined.data, len(joined.present))
            if table is not None:
                parts.append((joined.present, table))
            else:
                suspects = self._slow_path(values, joined, parts, rejects)
                self._poison_seen = suspects > 0
        if parts:
            parts.sort(key=lambda part: int(part[0][0]))
            indices = np.concatenate([part[0] for part in parts])
            table = pa.concat_tables([part[1] for part in parts])
            if len(parts) > 1 and (np.diff(indices) < 0).any():
                # A suspect kept (judged alone) between clean messages: back in order.
                order = np.argsort(indices, kind="stable")
                indices, table = indices[order], table.take(order)
        else:
            indices = np.empty(0, dtype=np.int64)
            table = self.event.schema.empty_table()
        table, indices = self._drop_invalid(table, indices, rejects)
        rejects.sort(key=lambda reject: reject.index)
        return Decoded(table=table, indices=indices, rejects=rejects)

    def _screen(self, sizes: np.ndarray, rejects: list[Reject]) -> np.ndarray:
        """Positions of the messages rejected here, empty or oversize, which are not parsed
        (columnar: Python only touches the few offenders)."""
        bad = (sizes == 0) | (sizes > self.max_message_bytes)
        if not bad.any():
            return np.empty(0, dtype=np.int64)
        absent = np.flatnonzero(bad)
        for index in absent.tolist():
            if sizes[index] == 0:
                rejects.append(Reject(index, Reason.EMPTY, "message has no value"))
            else:
                detail = f"{sizes[index]} bytes > limit {self.max_message_bytes}"
                rejects.append(Reject(index, Reason.OVERSIZE, detail))
        return absent

    def _slow_path(
        self,
        values: list[bytes | None],
        joined: _Joined,
        parts: list[tuple[np.ndarray, pa.Table]],
        rejects: list[Reject],
    ) -> int:
        """Screen every message, batch-parse the clean ones, judge the rest; count suspects.

        A suspect is a message that is not valid UTF-8, that the typed msgspec decoder
        refuses, or that Arrow must not see in a batch (`_Joined.unsafe`). The screening
        runs without a Python loop per message (`_Joined.invalid_utf8`, `_msgspec_refusals`)
        and the clean messages are parsed from the batch already joined, the suspects
        blanked out (`_Joined.blank`). Every clean message is valid UTF-8 as a whole, so
        the strings Arrow reads from them need no second check (`_parse_joined`).
        """
        refusals = _msgspec_refusals(self._screen_decoder.decode, joined.values)
        # The absent messages, joined as empty lines, are refused too; they are not suspects.
        hints = {position: hint for position, hint in refusals.items() if joined.sizes[position]}
        suspects = set(hints) | set(joined.invalid_utf8()) | set(joined.unsafe())
        positions = sorted(suspects)
        clean = np.setdiff1d(joined.present, positions, assume_unique=True)
        if len(clean):
            table = self._parse_joined(joined.blank(positions), len(clean), utf8_checked=True)
            if table is not None:
                parts.append((clean, table))
            else:  # Arrow refuses what the screen let through: find the culprits
                middle = len(clean) // 2
                self._parse_segment(values, clean[:middle], parts, rejects)
                self._parse_segment(values, clean[middle:], parts, rejects)
        for index in positions:
            value: bytes = values[index]  # type: ignore[assignment]
            self._parse_one(value, index, parts, rejects, hints.get(index))
        return len(positions)

    def _parse_segment(
        self,
        values: list[bytes | None],
        segment: np.ndarray,
        parts: list[tuple[np.ndarray, pa.Table]],
        rejects: list[Reject],
    ) -> None:
        if len(segment) == 0:
            return
        table = self._parse_batch([values[i] for i in segment])  # type: ignore[misc]
        if table is not None:
            parts.append((segment, table))
            return
        if len(segment) <= _LEAF_SEGMENT:
            for index in segment:
                self._parse_one(values[index], int(index), parts, rejects)  # type: ignore[arg-type]
            return
        middle = len(segment) // 2
        self._parse_segment(values, segment[:middle], parts, rejects)
        self._parse_segment(values, segment[middle:], parts, rejects)

    def _parse_batch(self, values: list[bytes]) -> pa.Table | None:
        """Arrow's parse of a batch, one row per message, or None if Arrow refuses it or it
        is not safe to show Arrow (`_Joined.safe`)."""
        joined = _Joined(values, _sizes(values))  # type: ignore[arg-type]
        return self._parse_joined(joined.data, len(values)) if joined.safe() else None

    def _parse_joined(
        self, data: bytes | bytearray, count: int, *, utf8_checked: bool = False
    ) -> pa.Table | None:
        """Arrow's parse of `count` safe messages joined by newlines (empty lines between
        them are skipped), or None if Arrow refuses them or does not read exactly one row
        per message. `utf8_checked`: every message is known to be valid UTF-8."""
        try:
            table = self._read(data, self._parse_options, self._read_options, utf8_checked)
        except (pa.ArrowException, UnicodeDecodeError):
            return None
        return table if table.num_rows == count else None

    def _read(
        self,
        data: bytes | bytearray,
        options: pajson.ParseOptions,
        read: pajson.ReadOptions,
        utf8_checked: bool = False,
    ) -> pa.Table:
        """Parse JSON lines; raise if Arrow refuses them."""
        # BufferReader reads the bytes where they are (BytesIO would copy a bytearray).
        table = pajson.read_json(pa.BufferReader(data), read_options=read, parse_options=options)
        if utf8_checked:
            # Arrow refuses escapes that do not make UTF-8 (lone surrogates), so its strings
            # are valid wherever the raw bytes are.
            return table
        # Arrow's JSON reader copies string bytes unchecked; refuse invalid UTF-8 here
        # (a few ms per 250K rows) rather than write corrupt strings to Parquet. Full
        # validation descends into lists, so the strings of a list<string> are checked too.
        for name in self._string_columns:
            table.column(name).validate(full=True)
        return table

    def _parse_one(
        self,
        value: bytes,
        index: int,
        parts: list[tuple[np.ndarray, pa.Table]],
        rejects: list[Reject],
        hint: str | None = None,
    ) -> None:
        """Judge one message that failed in a batch: kept if it is a JSON object from which
        Arrow reads exactly one row alone (a pretty-printed document is), otherwise
        rejected with a reason.

        `hint` is the screening decoder's complaint, which names the offending field more
        plainly than Arrow does.
        """
        complaint = None
        if value.lstrip()[:1] == b"{":
            # One block for the whole message: Arrow never starts a block inside it.
            read = pajson.ReadOptions(use_threads=False, block_size=len(value) + 1)
            try:
                table = self._read(value, self._single_options, read)
            except (pa.ArrowException, UnicodeDecodeError) as error:
                complaint = _clean(str(error))
            else:
                if table.num_rows == 1:
                    parts.append((np.asarray([index], dtype=np.int64), table))
                    return
        rejects.append(_classify(value, index, hint or complaint))

    def _drop_invalid(
        self, table: pa.Table, indices: np.ndarray, rejects: list[Reject]
    ) -> tuple[pa.Table, np.ndarray]:
        """Reject rows with a required field missing or null, or a timestamp outside what
        readers can hold (streaming/ingest/timestamps.py); columnar, Python per reject only."""
        if table.num_rows == 0:
            return table, indices
        missing = [(name, pc.is_null(table.column(name))) for name in self._required]
        outside = [(name, out_of_range(table.column(name))) for name in self._timestamp_columns]
        bad = None
        for _, flags in missing + outside:
            bad = flags if bad is None else pc.or_kleene(bad, flags)
        if bad is None or not pc.any(bad).as_py():
            return table, indices
        mask = bad.fill_null(False).to_numpy(zero_copy_only=False)
        for position in np.flatnonzero(mask).tolist():
            index = int(indices[position])
            absent = [name for name, flags in missing if flags[position].as_py()]
            if absent:
                detail = "missing or null: " + ", ".join(absent)
                rejects.append(Reject(index, Reason.MISSING_FIELD, detail))
                continue
            wild = [name for name, flags in outside if flags[position].as_py()]
            detail = ", ".join(wild) + " outside years 1-9999 UTC"
            rejects.append(Reject(index, Reason.SCHEMA_MISMATCH, detail))
        return _without_rows(table, mask), indices[~mask]


def _without_rows(table: pa.Table, drop: np.ndarray) -> pa.Table:
    """The table without the rows flagged in `drop`.

    A few rows are cut out by slicing around them (zero-copy: the table gains a chunk per
    cut); `filter` would copy every column of every kept row. Past `_MAX_CUTS` rows the
    chunks would cost more than the copy.
    """
    cuts = np.flatnonzero(drop)
    if len(cuts) > _MAX_CUTS:
        return table.filter(pa.array(~drop))
    starts = np.concatenate([[0], cuts + 1]).tolist()
    ends = np.concatenate([cuts, [len(drop)]]).tolist()
    pieces = [table.slice(start, end - start) for start, end in zip(starts, ends, strict=True)]
    return pa.concat_tables([piece for piece in pieces if piece.num_rows] or [table.slice(0, 0)])


def _classify(value: bytes, index: int, detail: str | None) -> Reject:
    """The reason a message Arrow refused on its own is poison, most specific first."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as error:
        return Reject(index, Reason.INVALID_ENCODING, str(error))
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        return Reject(index, Reason.INVALID_JSON, str(error))
    if not isinstance(document, dict):
        return Reject(index, Reason.NOT_AN_OBJECT, f"top-level JSON {type(document).__name__}")
    return Reject(index, Reason.SCHEMA_MISMATCH, detail or "refused by the event schema")


def _clean(message: str) -> str:
    """Arrow's parse errors start with a generic prefix; keep the informative part."""
    return message.removeprefix("JSON parse error: ").strip()


def _holds_strings(dtype: pa.DataType) -> bool:
    """Whether a column's values are, or contain, strings (a list<string> does)."""
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _holds_strings(dtype.value_type)
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def _screening_type(dtype: pa.DataType) -> object:
    """The msgspec type that accepts exactly the JSON values Arrow converts to `dtype`.

    A list takes a JSON array whose items are each the item type's value or null (Arrow
    reads `[null]` as a list holding one null); a string, an object or a nested array in
    its place is refused, as Arrow refuses it.
    """
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return list[_screening_type(dtype.value_type) | None]  # type: ignore[misc]
    if pa.types.is_integer(dtype):
        bits = dtype.bit_width - 1
        return Annotated[int, msgspec.Meta(ge=-(2**bits), le=2**bits - 1)]
    if pa.types.is_floating(dtype):
        return float
    if pa.types.is_boolean(dtype):
        return bool
    if pa.types.is_timestamp(dtype):
        return datetime
    return str


def _screening_struct(schema: pa.Schema) -> type:
    """A msgspec Struct with every field optional: nullness is checked later, columnar."""
    fields = [(f.name, _screening_type(f.type) | None, None) for f in schema]
    # gc=False: the structs are dropped at once and hold no references that could cycle.
    return msgspec.defstruct("Screen", fields, forbid_unknown_fields=False, gc=False)


def _sizes(values: list[bytes | None]) -> np.ndarray:
    """Each value's length in bytes (0 for a null value), in one C-level pass."""
    try:
        return np.fromiter(map(len, values), np.int64, len(values))
    except TypeError:  # a null value: len(None)
        return np.fromiter((len(value or b"") for value in values), np.int64, len(values))


def _joinable(
    values: list[bytes | None], sizes: np.ndarray, absent: np.ndarray
) -> tuple[list[bytes], np.ndarray]:
    """The batch and sizes to join, with the messages at `absent` (empty or oversize) made
    empty: one O(n) list copy in C, where selecting the others would index every message."""
    if not len(absent):
        return values, sizes  # type: ignore[return-value]
    joinable = values.copy()
    for index in absent.tolist():
        joinable[index] = b""
    sizes = sizes.copy()
    sizes[absent] = 0
    return joinable, sizes  # type: ignore[return-value]


class _Joined:
    """Messages joined by newlines, as Arrow's JSON reader reads them, with where each
    message starts; the checks Arrow needs run over the joined bytes. An empty message
    (one the screen rejected, see `_joinable`) is an empty line, which Arrow skips.

    Arrow maps rows to messages by position only if every message is one line starting
    with `{` (see the module docstring): `safe()` says whether all are (two C-level passes:
    the byte at each start, and a newline search in each message), `unsafe()` which are not.
    """

    def __init__(self, values: list[bytes], sizes: np.ndarray) -> None:
        self.values = values
        self.sizes = sizes
        # Positions of the messages that are not empty: those Arrow reads a row from.
        self.present = np.flatnonzero(sizes)
        # A bytearray, so that `blank` can overwrite messages in place.
        self.data = bytearray(b"\n").join(values)
        self.starts = np.zeros(len(values), dtype=np.int64)
        np.cumsum(sizes[:-1] + 1, out=self.starts[1:])
        self._bytes = np.frombuffer(self.data, dtype=np.uint8)

    def safe(self) -> bool:
        braces = self._bytes[self.starts[self.present]] == _OPEN_BRACE
        return bool(braces.all()) and not len(self._newline_holders())

    def unsafe(self) -> list[int]:
        """Positions of the messages that do not start with `{` or hold a newline."""
        wrong = self._bytes[self.starts[self.present]] != _OPEN_BRACE
        starts_wrong = self.present[wrong].tolist()
        return sorted(set(starts_wrong) | set(self._newline_holders().tolist()))

    def _newline_holders(self) -> np.ndarray:
        """Positions of the messages holding a newline.

        `bytes.find` of one byte is a memchr, run per message through `map`: about twice
        as fast as counting the newlines of the joined bytes, and it names the holders.
        """
        found = map(bytes.find, self.values, repeat(b"\n"))
        return np.flatnonzero(np.fromiter(found, np.int64, len(self.values)) >= 0)

    def invalid_utf8(self) -> list[int]:
        """Positions of the messages that are not valid UTF-8, like `bytes.decode` checks.

        Arrow validates the joined bytes as one string per message (each with its trailing
        newline, which is valid), resuming after each offender: one C-level pass in all.
        """
        offsets = np.append(self.starts, len(self.data))
        strings = pa.Array.from_buffers(
            pa.large_string(),
            len(self.values),
            [None, pa.py_buffer(offsets), pa.py_buffer(self.data)],
        )
        found: list[int] = []
        base = 0
        while True:
            try:
                strings.validate(full=True)
            except pa.ArrowInvalid as error:
                match = _UTF8_ERROR.search(str(error))
                if match is None:  # not the error we know how to resume from
                    return found + [
                        base + i for i, v in enumerate(self.values[base:]) if not _is_utf8(v)
                    ]
                offender = int(match.group(1))
                found.append(base + offender)
                base += offender + 1
                strings = strings.slice(offender + 1)
            else:
                return found

    def blank(self, positions: list[int]) -> bytearray:
        """The joined bytes with the messages at `positions` overwritten by spaces, in
        place: Arrow skips a line of whitespace, so it reads one row per other message, in
        order, without the batch being copied or joined again."""
        for position in positions:
            start = int(self.starts[position])
            self._bytes[start : start + int(self.sizes[position])] = _SPACE
        return self.data


_OPEN_BRACE = ord("{")
_SPACE = ord(" ")
_UTF8_ERROR = re.compile(r"Invalid UTF8 sequence at string index (\d+)")
# Messages screened per msgspec call chain: bounds the list copied after each refusal.
_SCREEN_CHUNK = 4096
_SCREEN_ERRORS = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    RecursionError,  # msgspec's answer to deeply nested JSON
)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _msgspec_refusals(validate: Callable[[bytes], object], values: list[bytes]) -> dict[int, str]:
    """Position -> complaint of each message the typed decoder refuses.

    The decoder runs over the messages through `map` (no Python frame per message); a
    counter zipped behind it tells how many it accepted before it raised, and screening
    resumes after the refused message. The decoded structs are dropped at once.
    """
    refused: dict[int, str] = {}
    drain = deque(maxlen=0).extend
    for low in range(0, len(values), _SCREEN_CHUNK):
        chunk = values[low : low + _SCREEN_CHUNK]
        done = 0
        while chunk:
            accepted = count()
            try:
                drain(zip(map(validate, chunk), accepted, strict=False))
            except _SCREEN_ERRORS as error:
                offender = next(accepted)
                refused[low + done + offender] = str(error)
                done += offender + 1
                chunk = chunk[offender + 1 :]
            else:
                break
    return refused
