"""One IoT day of silver `sensor_readings` as ingest leaves it: one append per minute.

The fleet and its identifiers follow the IoT generator (`dev-0042`, `dev-0042-vibration`,
its plants, sensor types and units), but the rows are built column-wise with numpy: the
benchmark measures the table, not the generator, and 1,440 appends of the generator's
per-event Python would take longer than everything measured.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from lakehouse.catalog import SILVER_SENSOR_READINGS, table_uri
from lakehouse.delta import ensure_table
from lakehouse.settings import Settings
from streaming.generators.iot import PLANTS, SENSORS

SPEC = SILVER_SENSOR_READINGS
MINUTES = 24 * 60


def device_id(device: int) -> str:
    """A device's id, as the IoT generator names it."""
    return f"dev-{device:04d}"


def sensor_id(device: int, sensor: int) -> str:
    """A sensor's id, as the IoT generator names it."""
    return f"{device_id(device)}-{SENSORS[sensor][0]}"


def write_day(
    settings: Settings,
    day: date,
    devices: int,
    interval_s: int,
    seed: int,
    progress: Callable[[int], None],
) -> int:
    """Append the day minute by minute (one commit, one file each); return the rows."""
    ensure_table(SPEC, settings)
    rng = np.random.default_rng(seed)
    fleet = _fleet(devices, rng)
    slots = 60 // interval_s
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    rows = 0
    for minute in range(MINUTES):
        batch = _minute(fleet, start + timedelta(minutes=minute), minute, slots, interval_s, rng)
        write_deltalake(
            table_uri(SPEC, settings), batch, mode="append", partition_by=["event_date"]
        )
        rows += batch.num_rows
        progress(1)
    return rows


def _fleet(devices: int, rng: np.random.Generator) -> dict[str, pa.Array | np.ndarray]:
    """Per sensor of the fleet: its ids, type, unit, plant and baseline."""
    device = np.repeat(np.arange(devices), len(SENSORS))
    sensor = np.tile(np.arange(len(SENSORS)), devices)
    plant = rng.integers(0, len(PLANTS.values), devices)[device]
    low = np.array([s[2][0] for s in SENSORS])[sensor]
    high = np.array([s[2][1] for s in SENSORS])[sensor]
    return {
        "device_id": pa.array([device_id(d) for d in device]),
        "sensor_id": pa.array([sensor_id(d, s) for d, s in zip(device, sensor, strict=True)]),
        "sensor_type": pa.array([SENSORS[s][0] for s in sensor]),
        "unit": pa.array([SENSORS[s][1] for s in sensor]),
        "plant": pa.array([PLANTS.values[p] for p in plant]),
        "baseline": rng.uniform(low, high),
        "noise": np.array([s[3] for s in SENSORS])[sensor],
    }


def _minute(
    fleet: dict[str, pa.Array | np.ndarray],
    start: datetime,
    minute: int,
    slots: int,
    interval_s: int,
    rng: np.random.Generator,
) -> pa.Table:
    """Every sensor's readings of one minute, in arrival order (slot by slot)."""
    sensors = len(fleet["device_id"])
    take = pa.array(np.tile(np.arange(sensors), slots))
    slot = np.repeat(np.arange(slots), sensors)
    micros = slot * interval_s * 1_000_000 + rng.integers(0, interval_s * 1_000_000, slot.size)
    event_time = pa.array(
        np.datetime64(start.replace(tzinfo=None), "us") + micros.astype("timedelta64[us]")
    ).cast(pa.timestamp("us", tz="UTC"))
    sequence = minute * slots + slot
    sensor_ids = pc.take(fleet["sensor_id"], take)
    event_id = pc.binary_join_element_wise(sensor_ids, pa.array(sequence.astype(str)), "-")
    value = (
        fleet["baseline"][take.to_numpy()]
        + rng.normal(0, 1, slot.size) * fleet["noise"][take.to_numpy()]
    )
    columns = {
        "event_id": event_id,
        "event_time": event_time,
        "device_id": pc.take(fleet["device_id"], take),
        "sensor_id": sensor_ids,
        "sensor_type": pc.take(fleet["sensor_type"], take),
        "plant": pc.take(fleet["plant"], take),
        "sequence": pa.array(sequence, pa.int64()),
        "value": pa.array(value),
        "unit": pc.take(fleet["unit"], take),
        "label_anomaly": pa.nulls(slot.size, pa.string()),
        "label_failure_at": pa.nulls(slot.size, pa.timestamp("us", tz="UTC")),
        "_ingested_at": pc.add(event_time, pa.scalar(timedelta(seconds=1))),
        "event_date": pa.array([start.date()] * slot.size, pa.date32()),
    }
    return pa.table(columns).select(SPEC.schema.names).cast(SPEC.schema)
