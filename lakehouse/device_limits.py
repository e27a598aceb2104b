"""Per-device operating limits: the one place a device's own limits are checked, written
and read (the `reference.device_limits` Delta table, `DEVICE_LIMITS` in the catalog).

The catalog's `SENSOR_LIMITS[...].operating` is a per-type default; a real fleet's
machines differ (a furnace runs hotter than a pump), so a row here replaces the default
for one device's sensor of one type. A row with neither side is an explicit "no operating
limit is known" (`above_limit` / `below_limit` stay quiet for it; `zscore` and
`device_health` judge it as before).

Why a Delta table and not Redis, where the alert processor keeps its state: Redis holds
what the processor derives from the stream (offsets, baselines, open alerts) and is
rebuilt by re-reading it; limits are reference data a person sets, with no stream to
rebuild them from. Delta gives them what reference data needs: durability in the lake's
storage, a history of every change (who changed a limit, and when, is an audit question
after a missed alarm), one copy that the processor, the benchmark and SQL
(`reference.device_limits` in DuckDB) all read, and a version number the processor can
poll for next to nothing, as the services do for the model registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import DEVICE_LIMITS, SENSOR_LIMITS
from lakehouse.delta import ensure_table, open_table, overwrite_where
from lakehouse.settings import Settings

MAX_DEVICE_ID = 128
"""Longest device id taken: generous for the fleet's `dev-0000` and `nab-machine-01`."""


class LimitError(ValueError):
    """A limit the platform must not take; the message says why."""


@dataclass(frozen=True)
class DeviceLimit:
    """One device's operating limits for one sensor type (`low` and `high` None: none known)."""

    device_id: str
    sensor_type: str
    low: float | None
    high: float | None
    source: str = "lakehouse iot limits"


def checked(limit: DeviceLimit) -> DeviceLimit:
    """`limit` if the platform can apply it, else `LimitError`: checked before anything is
    written, so a bad limit never reaches the processor."""
    device = limit.device_id
    if not device or not device.isprintable() or len(device) > MAX_DEVICE_ID:
        raise LimitError(f"device id {device!r}: want 1 to {MAX_DEVICE_ID} printable characters")
    if limit.sensor_type not in SENSOR_LIMITS:
        known = ", ".join(SENSOR_LIMITS)
        raise LimitError(f"unknown sensor type {limit.sensor_type!r}; known: {known}")
    if (limit.low is None) != (limit.high is None):
        raise LimitError("give both a low and a high limit, or neither (no limit known)")
    if limit.low is None or limit.high is None:
        return limit
    for side, value in (("low", limit.low), ("high", limit.high)):
        if not math.isfinite(value):
            raise LimitError(f"{side} limit {value!r} is not a finite number")
    if limit.low > limit.high:
        raise LimitError(f"low limit {limit.low:g} is above the high limit {limit.high:g}")
    physical = SENSOR_LIMITS[limit.sensor_type]
    lowest, highest = physical.physical
    if limit.low < lowest or limit.high > highest:
        raise LimitError(
            f"limits {limit.low:g} to {limit.high:g} {physical.unit} reach outside what a "
            f"{limit.sensor_type} sensor can report ({lowest:g} to {highest:g})"
        )
    return limit


def set_limit(settings: Settings, limit: DeviceLimit) -> int:
    """Record a device's limits for one sensor type, replacing any before; the table's new
    version. Checked first: a refused limit writes nothing."""
    limit = checked(limit)
    row = {
        "device_id": limit.device_id,
        "sensor_type": limit.sensor_type,
        "low": limit.low,
        "high": limit.high,
        "source": limit.source,
        "updated_at": datetime.now(UTC),
    }
    rows = pa.Table.from_pylist([row], schema=DEVICE_LIMITS.schema)
    table = ensure_table(DEVICE_LIMITS, settings)
    return overwrite_where(table, DEVICE_LIMITS, rows, _match(limit.device_id, limit.sensor_type))


def clear_limit(settings: Settings, device_id: str, sensor_type: str | None = None) -> int:
    """Forget a device's limits (one sensor type, or all), so the catalog's apply again;
    how many rows went."""
    if sensor_type is not None and sensor_type not in SENSOR_LIMITS:
        raise LimitError(f"unknown sensor type {sensor_type!r}; known: {', '.join(SENSOR_LIMITS)}")
    table = open_table(DEVICE_LIMITS, settings)
    if table is None:
        return 0
    metrics = table.delete(_match(device_id, sensor_type))
    return int(metrics.get("num_deleted_rows", 0))


def read_limits(settings: Settings, device_id: str | None = None) -> pa.Table:
    """The recorded limits (one device's, if given), ordered by device and sensor type;
    empty before any was set."""
    table = open_table(DEVICE_LIMITS, settings)
    rows = DEVICE_LIMITS.schema.empty_table() if table is None else table.to_pyarrow_table()
    if device_id is not None:
        rows = rows.filter(pc.equal(rows.column("device_id"), device_id))
    return rows.sort_by([("device_id", "ascending"), ("sensor_type", "ascending")])


def _match(device_id: str, sensor_type: str | None) -> str:
    predicate = f"device_id = {_quoted(device_id)}"
    if sensor_type is not None:
        predicate += f" AND sensor_type = {_quoted(sensor_type)}"
    return predicate


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
