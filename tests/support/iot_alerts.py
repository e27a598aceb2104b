"""Alert records as the IoT alert processor produces them, for lakes that need alerts beside
their readings (the processor's own tests drive the real processor)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from lakehouse.catalog import IOT_ALERTS
from streaming.fraud.audit import iso_utc
from tests.support.landing import bronze_messages

QUIET = timedelta(minutes=1)


def _when(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(
        value.replace("Z", "+00:00")
    )


def alert_records(reading: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `open` and `close` records of a one-reading z-score alert on `reading` (a
    `sensor_readings` event), closed after a quiet minute."""
    opened = _when(reading["event_time"])
    alert_id = hashlib.blake2b(
        f"{reading['sensor_id']}|zscore|{reading['event_id']}".encode(), digest_size=12
    ).hexdigest()
    base = {
        "alert_id": alert_id,
        "rule": "zscore",
        "severity": "warning",
        "device_id": reading["device_id"],
        "sensor_id": reading["sensor_id"],
        "sensor_type": reading["sensor_type"],
        "plant": reading.get("plant"),
        "value": reading["value"],
        "zscore": 6.0,
        "readings": 1,
        "opened_at": iso_utc(opened),
        "reading_event_id": reading["event_id"],
        "message": f"{reading['sensor_type']} far from its baseline",
    }
    closed = opened + QUIET
    return [
        {**base, "event_id": f"{alert_id}:open", "event_time": iso_utc(opened),
         "state": "open", "detected_at": iso_utc(opened + timedelta(milliseconds=200))},
        {**base, "event_id": f"{alert_id}:close", "event_time": iso_utc(closed),
         "state": "close", "closed_at": iso_utc(closed),
         "detected_at": iso_utc(closed + timedelta(milliseconds=200))},
    ]


def alerts_for(readings: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """The `iot_alerts` messages of the labelled spikes among `readings`."""
    return [
        orjson.dumps(record)
        for reading in readings
        if reading.get("label_anomaly") == "spike"
        for record in alert_records(reading)
    ]


def alerts_bronze(readings: pa.Table) -> pa.Table:
    """Bronze rows of `iot_alerts` for bronze or silver `sensor_readings` rows (`alerts_for`
    them), decoded by the ingest decoder as ingest would land them."""
    return bronze_messages(IOT_ALERTS.name, alerts_for(readings.to_pylist()))
