"""A year of synthetic hourly sensor aggregates, written to gold `sensor_hourly` in a temp lake.

Generated vectorised with numpy (seeded) so that a year takes seconds, not the hours a
real bronze-to-gold run would, and written in a few large appends so that each day's
partition holds one file, as the gold asset's daily materializations would leave it.
A handful of devices drift or fail, so that the example queries have something to find.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.catalog import GOLD_SENSOR_HOURLY, table_uri
from lakehouse.delta import ensure_table
from lakehouse.settings import Settings

SPEC = GOLD_SENSOR_HOURLY

SENSOR_TYPES = ("temperature", "vibration", "pressure", "current")
# (low, high) of a healthy sensor's mean, and its typical within-hour stddev.
BASELINES = {
    "temperature": ((45.0, 75.0), 0.8),  # bearing/motor temperature, deg C
    "vibration": ((1.5, 4.5), 0.35),  # RMS velocity, mm/s
    "pressure": ((4.0, 8.0), 0.15),  # bar
    "current": ((10.0, 30.0), 1.2),  # A
}
PLANTS = ("plant-north", "plant-south", "plant-east", "plant-west", "plant-central")
READINGS_PER_HOUR = 360  # one reading every 10 s
DAYS_PER_APPEND = 92  # four appends for a year: few commits, one file per day partition


@dataclass(frozen=True)
class Fleet:
    """The sensors, and which devices misbehave (so queries can be checked for them)."""

    devices: int
    device_ids: list[str]
    failing: list[int]  # vibration and temperature climb over the last two weeks
    drifting: list[int]  # temperature drifts upward over the whole year

    @property
    def sensors(self) -> int:
        return self.devices * len(SENSOR_TYPES)

    def sensor_id(self, device: int, sensor_type: str) -> str:
        return f"{self.device_ids[device]}-{sensor_type}"  # as the IoT generator names them


def make_fleet(sensors: int, seed: int = 7) -> Fleet:
    """`sensors` / 4 devices, about 1% failing and 2% drifting (at least one of each)."""
    devices = max(1, sensors // len(SENSOR_TYPES))
    rng = np.random.default_rng(seed)
    picked = rng.permutation(devices)
    n_failing = max(1, devices // 100)
    n_drifting = max(1, devices // 50)
    return Fleet(
        devices=devices,
        device_ids=[f"dev-{i:04d}" for i in range(devices)],
        failing=sorted(int(i) for i in picked[:n_failing]),
        drifting=sorted(int(i) for i in picked[n_failing : n_failing + n_drifting]),
    )


def last_day() -> date:
    """Data ends yesterday (UTC) so `current_date - N` filters in the docs work as written."""
    return datetime.now(UTC).date() - timedelta(days=1)


def _strings(values: list[str], indices: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(indices))


def generate_days(
    fleet: Fleet, first: date, day0: int, days: int, total_days: int, seed: int
) -> pa.Table:
    """Rows for `days` days starting `day0` days after `first`, ordered (day, sensor, hour)."""
    rng = np.random.default_rng([seed, day0])
    n_types = len(SENSOR_TYPES)
    shape = (days, fleet.devices, n_types, 24)
    day = np.arange(day0, day0 + days).reshape(-1, 1, 1, 1)
    device = np.arange(fleet.devices).reshape(1, -1, 1, 1)
    kind = np.arange(n_types).reshape(1, 1, -1, 1)
    hour = np.arange(24).reshape(1, 1, 1, -1)

    # Per-sensor baseline from a seed independent of the chunk, so chunks agree.
    fixed = np.random.default_rng(seed)
    lows = np.array([BASELINES[t][0][0] for t in SENSOR_TYPES])
    highs = np.array([BASELINES[t][0][1] for t in SENSOR_TYPES])
    noise = np.array([BASELINES[t][1] for t in SENSOR_TYPES])
    base = lows + (highs - lows) * fixed.random((fleet.devices, n_types))
    mean = np.broadcast_to(base.reshape(1, fleet.devices, n_types, 1), shape).copy()
    spread = np.broadcast_to(noise.reshape(1, 1, n_types, 1), shape).copy()

    # Daily cycle (load follows the shift pattern) and a slow seasonal swing.
    cycle = np.sin((hour - 8) / 24 * 2 * np.pi)
    season = np.sin(day / 365 * 2 * np.pi)
    mean = mean * (1 + 0.05 * cycle + 0.03 * season)

    temp, vib = SENSOR_TYPES.index("temperature"), SENSOR_TYPES.index("vibration")
    progress = (day * 24 + hour) / (total_days * 24)
    for d in fleet.drifting:
        mean[:, d, temp] += 25.0 * progress[:, 0, 0, :]
    onset = total_days - 14
    ramp = np.clip((day * 24 + hour - onset * 24) / (14 * 24), 0, None)[:, 0, 0, :]
    for d in fleet.failing:
        mean[:, d, vib] *= 1 + 4.0 * ramp**2
        spread[:, d, vib] *= 1 + 8.0 * ramp
        mean[:, d, temp] += 15.0 * ramp

    stddev = spread * rng.uniform(0.7, 1.3, shape)
    avg = mean + rng.normal(0, 1, shape) * stddev / 4
    readings = READINGS_PER_HOUR - rng.binomial(READINGS_PER_HOUR, 0.01, shape)
    min_value = avg - stddev * rng.uniform(2.0, 3.5, shape)
    max_value = avg + stddev * rng.uniform(2.0, 3.5, shape)

    device_idx = np.broadcast_to(device, shape).ravel()
    kind_idx = np.broadcast_to(kind, shape).ravel()
    sensor_names = [fleet.sensor_id(d, t) for d in range(fleet.devices) for t in SENSOR_TYPES]
    hours = np.datetime64(first, "us") + (day * 24 + hour).astype("timedelta64[h]")
    days_since = np.datetime64(first, "D") + np.broadcast_to(day, shape).astype("timedelta64[D]")
    return pa.table(
        {
            "device_id": _strings(fleet.device_ids, device_idx),
            "sensor_id": _strings(sensor_names, device_idx * n_types + kind_idx),
            "sensor_type": _strings(list(SENSOR_TYPES), kind_idx),
            "plant": _strings(list(PLANTS), device_idx % len(PLANTS)),
            "hour": pa.array(np.broadcast_to(hours, shape).ravel(), pa.timestamp("us", tz="UTC")),
            "event_date": pa.array(days_since.ravel(), pa.date32()),
            "readings": pa.array(readings.ravel().astype(np.int64)),
            "avg_value": pa.array(avg.ravel()),
            "min_value": pa.array(min_value.ravel()),
            "max_value": pa.array(max_value.ravel()),
            "stddev_value": pa.array(stddev.ravel()),
        },
        schema=SPEC.schema,
    )


def chunks(days: int) -> Iterator[tuple[int, int]]:
    """(first day offset, day count) of each append."""
    for start in range(0, days, DAYS_PER_APPEND):
        yield start, min(DAYS_PER_APPEND, days - start)


def write_year(
    settings: Settings, fleet: Fleet, days: int, seed: int, advance: Callable[[int], None]
) -> date:
    """Generate and append `days` days ending yesterday; return the first day.

    `advance(rows)` is called after each append (the progress bar)."""
    first = last_day() - timedelta(days=days - 1)
    table = ensure_table(SPEC, settings)
    for start, count in chunks(days):
        rows = generate_days(fleet, first, start, count, days, seed)
        write_deltalake(table, rows, mode="append", partition_by=list(SPEC.partition_by))
        advance(rows.num_rows)
    return first


def uri(settings: Settings) -> str:
    return table_uri(SPEC, settings)
