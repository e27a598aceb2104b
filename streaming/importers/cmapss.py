"""NASA C-MAPSS FD001's turbofan engines as the platform's own `engine_cycles` events.

FD001 (`REAL_DATA_DIR/cmapss`) holds 100 training engines run until they fail
(`train_FD001.txt`, 20,631 cycles), 100 test engines stopped some time before
(`test_FD001.txt`, 13,096 cycles) and each test engine's true remaining cycles
(`RUL_FD001.txt`). Each line of the two cycles files (whitespace-separated numbers, no
header: unit, cycle, 3 operational settings, 21 sensors) becomes one event, as an engine's
flight-data snapshot arrives after each flight, keyed by its engine so that an engine's
cycles stay in order on one partition. `docs/events.md` ("Imported real data: NASA
C-MAPSS FD001") gives the mapping field by field.

C-MAPSS has no timestamps. Every engine enters service at `EPOCH` and flies one cycle an
hour, so cycle k is sent with the event time `EPOCH + k hours` (the end of its k-th
flight): fixed, so that a re-import gives the same times and the same daily partitions
(the longest engine, 362 cycles, ends on the 16th day), and far from any day the
generators or the other imports fill. `label_failure_cycle` carries the ground truth: a
training engine's last cycle in the file, a test engine's last cycle plus its line of
`RUL_FD001.txt`, both over the whole file whatever slice is sent.

Nothing is dropped or repaired. A line the platform must not take is sent all the same
and takes the platform's bad-input path: a field that cannot be read travels as `null`,
with the line's text in `source_row` (a field the contract does not know, which the
decoder ignores), so the ingest quarantines it (`missing_required_field`); a line that
reads but breaks a rule (an engine or cycle below 1) lands in bronze and silver sets it
aside with the rule. Each line is counted under one reason (`REASONS`).

Lines are read and mapped one at a time in Python, not column-wise: the files are 33,727
lines, which this reads, classifies and encodes in about a second on this project's 2-core
machine, and a bad line must be judged field by field anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from lakehouse.catalog import ENGINE_CYCLES, REJECTED_ROWS, Domain
from lakehouse.models import rul
from streaming.generators.common import EventBatch
from streaming.importers.common import (
    CLEAN,
    QUARANTINED,
    BadRowReason,
    ImportPlan,
    check_source,
    counted_plan,
    parse_number,
)

SOURCE = rul.CMAPSS
"""The folder under `Settings.real_data_dir` that holds the FD001 files."""

EVENT_ID_NAMESPACE = "nasa-cmapss"
"""Hashed into every event id, so an imported id cannot collide with another source's."""

EPOCH = datetime(2008, 1, 1, tzinfo=UTC)
"""When every engine enters service (synthesised): the year NASA published C-MAPSS."""
CYCLE_TIME = timedelta(hours=1)
"""One flight cycle an hour (synthesised): cycle k's snapshot is sent at EPOCH + k hours."""

VALUE_COLUMNS = (*rul.SETTING_COLUMNS, *rul.SENSOR_COLUMNS)
FIELD_COUNT = len(rul.COLUMNS)
"""unit, cycle, 3 settings, 21 sensors: every line of both cycles files."""
_INT32 = 2**31 - 1
MAX_CYCLE = 1_000_000
"""The largest cycle count read (either sign): 114 years of hourly flights, far beyond any
engine's life, and what keeps a synthesised time within the years the lake holds."""

_REJECTED = REJECTED_ROWS.key

REASONS: tuple[BadRowReason, ...] = (
    BadRowReason(
        "wrong_field_count", QUARANTINED, f"not {FIELD_COUNT} whitespace-separated fields"
    ),
    BadRowReason("unreadable_unit", QUARANTINED, "unit not a whole number within int32"),
    BadRowReason(
        "unreadable_cycle", QUARANTINED, f"cycle not a whole number within +-{MAX_CYCLE:,}"
    ),
    BadRowReason(
        "unreadable_value", QUARANTINED, "a setting or sensor not a finite decimal number"
    ),
    BadRowReason("non_positive_unit", f"{_REJECTED} (unit_positive)", "unit below 1"),
    BadRowReason("non_positive_cycle", f"{_REJECTED} (cycle_positive)", "cycle below 1"),
    BadRowReason(
        "repeated_cycle",
        "silver keeps the first line of the cycle (duplicates_dropped)",
        "the unit and cycle of an earlier line of its file (so the same event id)",
    ),
    BadRowReason(
        "no_true_rul",
        "silver, with label_failure_cycle null",
        "a test engine without a line in RUL_FD001.txt",
    ),
)
"""Bad lines, by the first reason that applies (this import judges lines in Python, so a
reason's `predicate` is its rule in words). Blank lines are no lines: neither this
import nor `rul.read_fd001` reads them."""
_QUARANTINED = {r.name for r in REASONS if r.goes_to == QUARANTINED}


@dataclass(frozen=True)
class Line:
    """One non-blank line of a cycles file as read: its split, 1-based line number and
    text; unit and cycle when readable as whole numbers; each setting and sensor when
    readable; `complete` when it has the right number of fields (else all are None)."""

    split: str
    number: int
    text: str
    unit: int | None
    cycle: int | None
    values: tuple[float | None, ...]
    complete: bool


def parse_whole(text: str, largest: int) -> int | None:
    """A whole number (`7`, `7.0`) from -`largest` to `largest`, or None."""
    number = parse_number(text)
    if number is None or number != int(number) or abs(number) > largest:
        return None
    return int(number)


def read_line(split: str, number: int, text: str) -> Line:
    """One line of a cycles file, read; never raises on any text."""
    fields = text.split()
    if len(fields) != FIELD_COUNT:
        return Line(split, number, text, None, None, (None,) * len(VALUE_COLUMNS), False)
    values = tuple(parse_number(field) for field in fields[2:])
    unit, cycle = parse_whole(fields[0], _INT32), parse_whole(fields[1], MAX_CYCLE)
    return Line(split, number, text, unit, cycle, values, True)


def read_lines(path: Path, split: str) -> list[Line]:
    """The file's non-blank lines in order (undecodable bytes read as U+FFFD, which no
    number contains, so such a field is unreadable, not an error)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return [
        read_line(split, number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def failure_cycles(lines: list[Line], true_rul: list[int] | None) -> dict[int, int]:
    """Each engine's failure cycle over the whole file: its last readable cycle, plus its
    true RUL for a test engine (`true_rul`, unit 1 first; an engine without one has none)."""
    last: dict[int, int] = {}
    for line in lines:
        if line.unit is not None and line.cycle is not None:
            last[line.unit] = max(line.cycle, last.get(line.unit, line.cycle))
    if true_rul is None:
        return last
    return {
        unit: cycle + true_rul[unit - 1]
        for unit, cycle in last.items()
        if 1 <= unit <= len(true_rul)
    }


def reason(line: Line, repeated: bool, failure: int | None) -> str:
    """The first of `REASONS` that applies to a line, or `CLEAN`."""
    if not line.complete:
        return "wrong_field_count"
    if line.unit is None:
        return "unreadable_unit"
    if line.cycle is None:
        return "unreadable_cycle"
    if None in line.values:
        return "unreadable_value"
    if line.unit < 1:
        return "non_positive_unit"
    if line.cycle < 1:
        return "non_positive_cycle"
    if repeated:
        return "repeated_cycle"
    if failure is None:
        return "no_true_rul"
    return CLEAN


def event_id(line: Line) -> str:
    """The id of a line: of its file, unit and cycle, the same in every run and slice;
    of its file and line number when unit or cycle cannot be read."""
    file = rul.SPLIT_FILES[line.split]
    if line.unit is None or line.cycle is None:
        identity = f"{EVENT_ID_NAMESPACE}|{file}|line {line.number}"
    else:
        identity = f"{EVENT_ID_NAMESPACE}|{file}|{line.unit}|{line.cycle}"
    return hashlib.md5(identity.encode()).hexdigest()


def event_time(cycle: int) -> str:
    """Cycle k's synthesised time, EPOCH + k hours, in the wire format."""
    moment = EPOCH + cycle * CYCLE_TIME
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class Row:
    """One line as sent: its split and line number, the reason it is counted under, the
    message key (its engine) and the message."""

    split: str
    number: int
    reason: str
    key: bytes
    value: bytes


def to_row(line: Line, repeated: bool, failure: int | None) -> Row:
    """Map one line to its message and reason."""
    why = reason(line, repeated, failure)
    device = None if line.unit is None else rul.device_id(line.split, line.unit)
    message: dict[str, object] = {
        "event_id": event_id(line),
        "event_time": None if line.cycle is None else event_time(line.cycle),
        "device_id": device,
        "split": line.split,
        "unit": line.unit,
        "cycle": line.cycle,
        **dict(zip(VALUE_COLUMNS, line.values, strict=True)),
        "label_failure_cycle": failure,
    }
    if why in _QUARANTINED:
        message["source_row"] = line.text
    key = device or f"{rul.FD001_DEVICES}-{line.split}"
    return Row(line.split, line.number, why, key.encode(), orjson.dumps(message))


_SAMPLE = to_row(read_line(rul.TRAIN, 1, " ".join(["1"] * FIELD_COUNT)), False, 1)
if tuple(orjson.loads(_SAMPLE.value)) != tuple(ENGINE_CYCLES.event.schema.names):
    raise RuntimeError("the C-MAPSS mapping does not follow the engine_cycles contract")


class CmapssImport:
    """FD001's two cycles files as an `engine_cycles` source `streaming.producer.produce`
    can send: the training engines' lines, then the test engines', each in file order.

    `limit` keeps the first N lines of each file (the ids, times and failure cycles are
    the same whatever is kept). The true RULs are read on construction, so a malformed
    `RUL_FD001.txt` is refused (ValueError naming its line) before anything is sent.
    """

    domain = Domain.IOT
    topics = (ENGINE_CYCLES.name,)
    source = SOURCE
    reasons = REASONS

    def __init__(self, directory: Path, *, limit: int | None = None) -> None:
        for name in rul.FD001_FILES:
            check_source(directory / name, "C-MAPSS FD001", SOURCE, limit)
        self.directory = directory
        self.limit = limit
        self.true_rul = rul.read_true_rul(directory / rul.FD001_FILES[2]).tolist()

    def rows(self) -> Iterator[Row]:
        """The selected lines as sent, training file first."""
        for split, name in rul.SPLIT_FILES.items():
            lines = read_lines(self.directory / name, split)
            failures = failure_cycles(lines, None if split == rul.TRAIN else self.true_rul)
            # The (unit, cycle) of the lines that reach bronze: a later line with one of
            # them has the same event id, which silver keeps once.
            landed: set[tuple[int | None, int | None]] = set()
            for line in lines[: self.limit]:
                identity = (line.unit, line.cycle)
                failure = None if line.unit is None else failures.get(line.unit)
                row = to_row(line, identity in landed, failure)
                if row.reason not in _QUARANTINED:
                    landed.add(identity)
                yield row

    def plan(self) -> ImportPlan:
        """Count the lines per reason before anything is sent (the producer's total and
        the command's summary)."""
        return counted_plan(row.reason for row in self.rows())

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        """The first `n_events` selected lines as `engine_cycles` messages."""
        keys: list[bytes] = []
        values: list[bytes] = []
        for sent, row in enumerate(self.rows()):
            if sent >= n_events:
                break
            keys.append(row.key)
            values.append(row.value)
            if len(values) >= batch_size:
                yield EventBatch(ENGINE_CYCLES.name, keys, values)
                keys, values = [], []
        if values:
            yield EventBatch(ENGINE_CYCLES.name, keys, values)
