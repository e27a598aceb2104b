"""NAB's machine temperature series as one device's `sensor_readings`, over MQTT.

The Numenta Anomaly Benchmark's `machine_temperature_system_failure.csv` (an industrial
machine's internal temperature every 5 minutes, December 2013 to February 2014, 22,695
rows) becomes the `temperature` readings of one device, `REPLAY_DEVICE`, published at
QoS 1 with the device's provisioned credentials, as `lakehouse generate iot --via mqtt`
publishes the simulated fleet: the broker, the gateway, the ingest and the alert
processor see it as they would a real machine. `docs/events.md` ("Imported real data: NAB
machine temperature") gives the mapping field by field.

NAB's timestamps carry no zone: they are read as UTC and kept as `event_time`, so the
alerts raised on the replay open at the series' own times (`lakehouse.models.nab_replay`).
The alert processor judges in event time (its baselines and quiet periods run on reading
times, only `detected_at` is wall time), so the replay is published as fast as the broker
takes it; `speedup` paces it for a live watcher without changing any event time.

Nothing is dropped or repaired. A row the platform must not take is published all the
same and the platform's bad-input path takes it: a row whose time cannot be read, whose
value is not a finite number or lies outside what a temperature sensor can report, or
without exactly two fields, travels with that field `null` and its original fields in
`source_row` (a field the contract does not know, so the decoder ignores it), so the
gateway quarantines it (`missing_required_field`) and the ingest lands it, original fields
and all, in bronze.quarantine. An impossible value is quarantined rather than sent on
because silver's range check is blocking: one such reading would hold back the day's
silver readings. Each row is counted under one reason (`REASONS`).
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from lakehouse.catalog import SENSOR_LIMITS, SENSOR_READINGS, Domain
from lakehouse.device_limits import DeviceLimit
from lakehouse.models.nab import MACHINE_TEMPERATURE
from lakehouse.models.nab_replay import REPLAY_DEVICE
from streaming.edge.devices import DeviceFleet, PublishReport, publish_batches
from streaming.edge.provision import Credentials
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

SOURCE = MACHINE_TEMPERATURE
"""Where the file lies under `Settings.real_data_dir`."""

HEADER = ["timestamp", "value"]
"""NAB's header: every data file of the benchmark has these two columns."""

SENSOR_TYPE = "temperature"
SENSOR_ID = f"{REPLAY_DEVICE}-{SENSOR_TYPE}"
"""The contract's `<device_id>-<sensor_type>`."""
PLANT = "plant-nab"
"""Synthesised: NAB does not say where the machine stands."""
UNIT = SENSOR_LIMITS[SENSOR_TYPE].unit
"""The contract's unit for temperature; NAB does not state the series' unit."""
PHYSICAL = SENSOR_LIMITS[SENSOR_TYPE].physical
OPERATING_LIMIT = DeviceLimit(
    REPLAY_DEVICE, SENSOR_TYPE, None, None,
    source="NAB publishes no operating limit for this machine",
)
"""What the import registers in `reference.device_limits`: no known operating limit. NAB
gives neither a limit nor a unit, and a limit read off the series would be tuned on the
data it is scored on; the catalog's 90 degC for temperature sits at this machine's median."""

EVENT_ID_NAMESPACE = "nab-machine-temperature"
"""Hashed into every event id, so an imported id cannot collide with another source's."""

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

REASONS: tuple[BadRowReason, ...] = (
    BadRowReason("wrong_field_count", QUARANTINED, "not exactly two fields"),
    BadRowReason("unreadable_timestamp", QUARANTINED, f"time not {TIMESTAMP_FORMAT}"),
    BadRowReason("unreadable_value", QUARANTINED, "value not a finite decimal number"),
    BadRowReason(
        "outside_physical_limits",
        QUARANTINED,
        f"value outside {PHYSICAL[0]:g}..{PHYSICAL[1]:g} {UNIT}",
    ),
)
"""Bad rows, by the first reason that applies (this import judges rows in Python, so a
reason's `predicate` is its rule in words)."""

"""The reason of a row that reaches silver."""


@dataclass(frozen=True)
class Row:
    """One data row of the file as sent: its position (0 for the first row after the
    header), the reason it is counted under and the message."""

    position: int
    reason: str
    value: bytes


def event_id(position: int) -> str:
    """The id of the file's row at `position`: the same on every run and slice. The
    position, not the time, identifies a row: the file repeats an hour of timestamps."""
    return hashlib.md5(f"{EVENT_ID_NAMESPACE}|{position}".encode()).hexdigest()


def parse_time(text: str) -> datetime | None:
    """A NAB timestamp (naive) read as UTC, or None when it is not one."""
    try:
        return datetime.strptime(text.strip(), TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def to_row(position: int, fields: list[str]) -> Row:
    """Map one CSV record to its message and reason; never raises on any input."""
    moment = value = None
    if len(fields) == len(HEADER):
        moment, value = parse_time(fields[0]), parse_number(fields[1])
    if len(fields) != len(HEADER):
        reason = "wrong_field_count"
    elif moment is None:
        reason = "unreadable_timestamp"
    elif value is None:
        reason = "unreadable_value"
    elif not PHYSICAL[0] <= value <= PHYSICAL[1]:
        reason = "outside_physical_limits"
    else:
        reason = CLEAN
    if reason == "outside_physical_limits":
        value = None
    message: dict[str, object] = {
        "event_id": event_id(position),
        "event_time": None if moment is None else _iso(moment),
        "device_id": REPLAY_DEVICE,
        "sensor_id": SENSOR_ID,
        "sensor_type": SENSOR_TYPE,
        "plant": PLANT,
        "sequence": position,
        "value": value,
        "unit": UNIT,
        "label_anomaly": None,
        "label_failure_at": None,
    }
    if reason != CLEAN:
        message["source_row"] = fields
    return Row(position, reason, orjson.dumps(message))


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


if tuple(orjson.loads(to_row(0, ["2013-12-02 21:15:00", "0"]).value)) != tuple(
    SENSOR_READINGS.event.schema.names
):
    raise RuntimeError("the NAB mapping does not follow the sensor_readings contract")


class DeviceNotProvisionedError(LookupError):
    """The broker has no credentials for the replayed device."""


class NabImport:
    """The machine temperature file as a `sensor_readings` source: `batches` yields the
    messages keyed by the device (as `publish_batches` takes them), `plan` counts them.

    `limit` keeps the first rows in file order. Every CSV record after the header is one
    row and one message, whatever it holds, so what is read is what is sent.
    """

    domain = Domain.IOT
    topics = (SENSOR_READINGS.name,)
    source = SOURCE
    reasons = REASONS

    def __init__(self, path: Path, *, limit: int | None = None) -> None:
        check_source(path, "NAB's machine temperature", SOURCE, limit)
        self.path = path
        self.limit = limit

    def rows(self) -> Iterator[Row]:
        """The selected rows in file order (undecodable bytes read as U+FFFD, which no
        time or number contains, so such a field is unreadable, not an error)."""
        with self.path.open(encoding="utf-8", errors="replace", newline="") as file:
            records = csv.reader(file)
            header = next(records, None)
            if header != HEADER:
                raise ValueError(f"{self.path}: header {header!r} is not {HEADER!r}")
            for position, fields in enumerate(records):
                if self.limit is not None and position >= self.limit:
                    return
                yield to_row(position, fields)

    def plan(self) -> ImportPlan:
        """Count the rows per reason before anything is sent (the publisher's total and
        the command's summary)."""
        return counted_plan(row.reason for row in self.rows())

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        """The first `n_events` rows as `sensor_readings` messages, in file order."""
        key = REPLAY_DEVICE.encode()
        values: list[bytes] = []
        for row in self.rows():
            if row.position >= n_events:
                break
            values.append(row.value)
            if len(values) >= batch_size:
                yield EventBatch(SENSOR_READINGS.name, [key] * len(values), values)
                values = []
        if values:
            yield EventBatch(SENSOR_READINGS.name, [key] * len(values), values)


def paced(
    batches: Iterable[EventBatch],
    speedup: float,
    wait: Callable[[float], None],
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[EventBatch]:
    """Hold each batch back until its first reading is due: the first timed reading at
    once, each later one `(event_time - first event_time) / speedup` seconds after it on
    `clock`. `wait(seconds)` passes the time (the fleet's event loop, so its connections
    stay alive); a batch without a readable time, or timed before one already sent (the
    file's repeated hour), is not held."""
    if not speedup > 0:
        raise ValueError(f"speedup must be positive, got {speedup}")
    origin: tuple[datetime, float] | None = None
    for batch in batches:
        moment = _first_time(batch)
        if moment is not None:
            if origin is None:
                origin = (moment, clock())
            due = origin[1] + (moment - origin[0]).total_seconds() / speedup
            while (left := due - clock()) > 0:
                wait(min(left, 1.0))
        yield batch


def _first_time(batch: EventBatch) -> datetime | None:
    text = orjson.loads(batch.values[0]).get("event_time") if batch.values else None
    return None if text is None else datetime.fromisoformat(text)


def publish(
    importer: NabImport,
    credentials: Credentials,
    *,
    speedup: float | None = None,
    advance: Callable[[int], None] = lambda _: None,
) -> PublishReport:
    """Publish the import as its device over MQTT, QoS 1, with the device's provisioned
    credentials, and wait for the broker's acknowledgements: the way a machine sends.
    With `speedup`, one reading at a time at its compressed original pace."""
    if REPLAY_DEVICE not in credentials.devices:
        raise DeviceNotProvisionedError(
            f"device {REPLAY_DEVICE} is not provisioned: run `lakehouse iot provision "
            f"--extra-device {REPLAY_DEVICE}` and restart the broker"
        )
    fleet = DeviceFleet(credentials, [REPLAY_DEVICE])
    fleet.connect()
    try:
        total = importer.plan().selected
        batches: Iterable[EventBatch] = importer.batches(total, 1 if speedup else 1_000)
        if speedup:
            batches = paced(batches, speedup, fleet.pump)
        return publish_batches(fleet, batches, advance)
    finally:
        fleet.close()
