"""Decode a batch of Kafka message values into a typed Arrow table, isolating poison.

The fast path parses the whole batch at once with Arrow's multi-threaded JSON reader
against the topic's explicit schema. If that fails (bad JSON, wrong types, bad encoding,
two documents in one message, a pretty-printed document), the slow path screens every
message with a typed msgspec decoder (about a microsecond each), batch-parses the ones it
accepts and judges each suspect alone. Arrow stays the single arbiter: a suspect that
Arrow parses on its own is kept, so a message's fate never depends on its neighbours.
Should Arrow still refuse the screened batch, bisection isolates the culprits.

Arrow is only ever shown input it is known to survive: pyarrow 26's JSON reader crashes
the process (SIGSEGV) when a block of input starts with a top-level `null`, and maps rows
to messages by position only if each message yields exactly one row (it skips blank lines
and reads `{..}{..}` as two rows). So a batch is parsed at once only if every message is
one line starting with `{` (`_parse_batch`), and a message judged alone only if it starts
with `{` (`_parse_one`); anything else is screened and classified without Arrow.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
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
        candidates = self._screen(values, rejects)
        parts: list[tuple[np.ndarray, pa.Table]] = []
        # After a batch with poison, the next one most likely has some too: go straight to
        # the slow path rather than parse the whole batch only to have Arrow refuse it.
        # Every message's fate is the same on either path (see the module docstring).
        table = None
        if not self._poison_seen and len(candidates):
            everyone = len(candidates) == len(values)
            batch = values if everyone else [values[i] for i in candidates.tolist()]
            table = self._parse_batch(batch)  # type: ignore[arg-type]
        if table is not None and table.num_rows == len(candidates):
            parts.append((candidates, table))
        elif len(candidates):
            self._poison_seen = self._slow_path(values, candidates, parts, rejects) > 0
        if parts:
            parts.sort(key=lambda part: int(part[0][0]))
            indices = np.concatenate([part[0] for part in parts])
            table = pa.concat_tables([part[1] for part in parts])
        else:
            indices = np.empty(0, dtype=np.int64)
            table = self.event.schema.empty_table()
        table, indices = self._drop_invalid(table, indices, rejects)
        rejects.sort(key=lambda reject: reject.index)
        return Decoded(table=table, indices=indices, rejects=rejects)

    def _screen(self, values: list[bytes | None], rejects: list[Reject]) -> np.ndarray:
        """Indices of messages worth parsing; empty and oversize ones are rejected here."""
        everything = np.arange(len(values), dtype=np.int64)
        # Both checks are C-level scans; the per-message loop only runs when one trips.
        has_empty = None in values or b"" in values
        too_big = bool(values) and not has_empty and max(map(len, values)) > self.max_message_bytes
        if not has_empty and not too_big:
            return everything
        # Sizes in one C-level pass; Python only touches the few offenders.
        sized = [value or b"" for value in values] if None in values else values
        sizes = np.fromiter(map(len, sized), np.int64, len(values))
        bad = (sizes == 0) | (sizes > self.max_message_bytes)
        for index in np.flatnonzero(bad).tolist():
            if sizes[index] == 0:
                rejects.append(Reject(index, Reason.EMPTY, "message has no value"))
            else:
                detail = f"{sizes[index]} bytes > limit {self.max_message_bytes}"
                rejects.append(Reject(index, Reason.OVERSIZE, detail))
        return np.flatnonzero(~bad).astype(np.int64, copy=False)

    def _slow_path(
        self,
        values: list[bytes | None],
        candidates: np.ndarray,
        parts: list[tuple[np.ndarray, pa.Table]],
        rejects: list[Reject],
    ) -> int:
        """Screen each message, batch-parse the clean ones, judge the rest; count suspects."""
        clean: list[int] = []
        suspects: list[tuple[int, str]] = []
        validate = self._screen_decoder.decode
        for index in candidates.tolist():
            value: bytes = values[index]  # type: ignore[assignment]
            try:
                value.decode("utf-8")  # msgspec does not check the bytes inside strings
                validate(value)
            except (
                UnicodeDecodeError,
                msgspec.DecodeError,
                msgspec.ValidationError,
                RecursionError,  # msgspec's answer to deeply nested JSON
            ) as error:
                suspects.append((index, str(error)))
            else:
                clean.append(index)
        self._parse_segment(values, np.asarray(clean, dtype=np.int64), parts, rejects)
        for index, hint in suspects:
            self._parse_one(values[index], index, parts, rejects, hint)  # type: ignore[arg-type]
        return len(suspects)

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
        if table is not None and table.num_rows == len(segment):
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
        is not safe to show Arrow: every message must be a single line starting with `{`.

        Both checks are C-level passes (about 5 and 12 ms per 250K messages): the smallest
        value starts with `{` only if every value does (no leading whitespace, no
        whitespace-only message, no top-level null, number, string or array), and the
        joined batch has exactly one newline between messages only if none holds one (so
        every block Arrow parses starts at a message's `{`).
        """
        if min(values)[:1] != b"{":
            return None
        joined = b"\n".join(values)
        if joined.count(b"\n") != len(values) - 1:
            return None
        try:
            return self._read(joined, self._parse_options, self._read_options)
        except (pa.ArrowException, UnicodeDecodeError):
            return None

    def _read(
        self, data: bytes, options: pajson.ParseOptions, read: pajson.ReadOptions
    ) -> pa.Table:
        """Parse JSON lines; raise if Arrow refuses them."""
        table = pajson.read_json(io.BytesIO(data), read_options=read, parse_options=options)
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
        return table.filter(pa.array(~mask)), indices[~mask]


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
    return msgspec.defstruct("Screen", fields, forbid_unknown_fields=False)
