"""A detector's state as bytes and back: what the processor checkpoints in Redis with its
offsets, so a restart resumes the baselines and open alerts exactly where they were.

The state is two Arrow tables (sensors with their baselines and sensor-rule alerts;
devices with their health alerts) in one Arrow IPC stream each; the partition's newest
reading time travels in the schema metadata. Columnar both ways: no per-sensor Python.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pyarrow as pa

from streaming.alerts.detector import (
    ALERT_FLOATS,
    ALERT_INTS,
    ALERT_TEXTS,
    SENSOR_FLOATS,
    SENSOR_INTS,
    Alerts,
    Detector,
    DetectorConfig,
)
from streaming.alerts.limits import OperatingLimits


def _alert_columns(prefix: str, alerts: Alerts) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {f"{prefix}.open": pa.array(alerts.open)}
    for name in ALERT_INTS:
        columns[f"{prefix}.{name}"] = pa.array(alerts.ints[name])
    for name in ALERT_FLOATS:
        columns[f"{prefix}.{name}"] = pa.array(alerts.floats[name])
    for name in ALERT_TEXTS:
        columns[f"{prefix}.{name}"] = pa.array(alerts.texts[name].tolist(), pa.string())
    return columns


def _alerts_from(prefix: str, table: pa.Table) -> Alerts:
    def numpy(name: str) -> np.ndarray:
        return table.column(f"{prefix}.{name}").to_numpy(zero_copy_only=False).copy()

    return Alerts(
        open=numpy("open").astype(bool),
        ints={name: numpy(name).astype(np.int64) for name in ALERT_INTS},
        floats={name: numpy(name).astype(np.float64) for name in ALERT_FLOATS},
        texts={name: np.array(table.column(f"{prefix}.{name}").to_pylist(), object)
               for name in ALERT_TEXTS},
    )


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _read(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def dump(detector: Detector) -> bytes:
    """The detector's whole state, as one MessagePack document of two Arrow IPC streams."""
    sensors: dict[str, pa.Array] = {
        "sensor_id": pa.array(detector.sensor_ids, pa.string()),
        "sensor_type": pa.array(detector.sensor_types, pa.string()),
        "plant": pa.array(detector.plants, pa.string()),
    }
    sensors.update({name: pa.array(detector.ints[name]) for name in SENSOR_INTS})
    sensors.update({name: pa.array(detector.floats[name]) for name in SENSOR_FLOATS})
    for rule, alerts in detector.alerts.items():
        sensors.update(_alert_columns(rule, alerts))
    devices = {"device_id": pa.array(detector.device_ids, pa.string()),
               **_alert_columns("health", detector.health)}
    return msgspec.msgpack.encode({
        "watermark_us": detector.watermark_us,
        "sensors": _ipc(pa.table(sensors)),
        "devices": _ipc(pa.table(devices)),
    })


def load(data: bytes, config: DetectorConfig, limits: OperatingLimits | None = None) -> Detector:
    """A detector with the state `dump` wrote, under the given (current) configuration and
    operating limits (reference data, not state: never checkpointed, resolved anew)."""
    document = msgspec.msgpack.decode(data)
    sensors, devices = _read(document["sensors"]), _read(document["devices"])
    detector = Detector(config)
    detector.watermark_us = int(document["watermark_us"])
    detector.sensor_ids = sensors.column("sensor_id").to_pylist()
    detector.sensor_index = {name: i for i, name in enumerate(detector.sensor_ids)}
    detector.sensor_types = sensors.column("sensor_type").to_pylist()
    detector.plants = sensors.column("plant").to_pylist()
    detector.ints = {name: sensors.column(name).to_numpy().astype(np.int64).copy()
                     for name in SENSOR_INTS}
    detector.floats = {
        name: sensors.column(name).to_numpy(zero_copy_only=False).astype(np.float64).copy()
        for name in SENSOR_FLOATS
    }
    detector.alerts = {rule: _alerts_from(rule, sensors) for rule in detector.alerts}
    detector.device_ids = devices.column("device_id").to_pylist()
    detector.device_index = {name: i for i, name in enumerate(detector.device_ids)}
    detector.health = _alerts_from("health", devices)
    detector.use_limits(limits or OperatingLimits())
    return detector
