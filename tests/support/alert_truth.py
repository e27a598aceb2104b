"""The IoT generator's readings and the alerts raised on them, scored against its labels:
what the alert tests assert and the alert benchmark reports.

- spike recall: labelled spike readings that fall inside an alert of their sensor
  (from its opening to its close);
- drift recall: drifting sensors with an alert opened after their drift began;
- precursor recall: failing devices with an alert (of a sensor or the device) opened in
  the precursor window;
- precision: opened alerts with a labelled reading of their sensor (of their device, for
  `device_health`) within the quiet period of the alert's span; the rest are false alarms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import SENSOR_READINGS
from streaming.alerts.detector import Detector, DetectorConfig
from streaming.ingest.decode import BatchDecoder

US = 1_000_000


@dataclass(frozen=True)
class Score:
    """Alert quality against the generator's ground truth (fractions in [0, 1])."""

    alerts: int
    false_alerts: int
    precision: float
    spike_recall: float
    spikes: int
    drift_recall: float
    drifting: int
    precursor_recall: float
    failing: int

    def as_dict(self) -> dict[str, float | int]:
        """The figures, for a benchmark's JSON."""
        return dict(self.__dict__)


def decode(batches: Iterable[list[bytes]]) -> pa.Table:
    """The readings as the processor decodes them, in arrival order."""
    decoder = BatchDecoder(SENSOR_READINGS.event, 1 << 20)
    return pa.concat_tables([decoder.decode(values).table for values in batches])


def detect(readings: pa.Table, config: DetectorConfig, batch: int = 2_000) -> list[dict[str, Any]]:
    """Run one detector over readings in micro-batches (what one processor of one partition
    does, without Kafka): the records it produces."""
    detector = Detector(config)
    records: list[dict[str, Any]] = []
    for offset in range(0, readings.num_rows, batch):
        records += detector.process(readings.slice(offset, batch), 0).records
    return records


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * US)


def score(readings: pa.Table, records: Iterable[Mapping[str, Any]], quiet_seconds: float
          ) -> Score:
    """Score alert records against the labels of the readings they were raised on."""
    quiet = int(quiet_seconds * US)
    time = readings.column("event_time").cast(pa.int64()).to_numpy()
    sensor = np.array(readings.column("sensor_id").to_pylist(), object)
    device = np.array(readings.column("device_id").to_pylist(), object)
    label = np.array(pc.fill_null(readings.column("label_anomaly"), "").to_pylist(), object)
    labelled = label != ""
    spans: dict[str, tuple[str | None, str, int, int]] = {}
    end = int(time.max()) + quiet
    for record in records:
        key = str(record["alert_id"])
        opened = _us(str(record["opened_at"]))
        closed = _us(str(record["closed_at"])) if record.get("closed_at") else end
        previous = spans.get(key)
        spans[key] = (record.get("sensor_id"), str(record["device_id"]), opened,
                      min(closed, previous[3]) if previous else closed)

    truth_time, truth_sensor, truth_device = time[labelled], sensor[labelled], device[labelled]
    by_sensor: dict[str, list[tuple[int, int]]] = {}
    by_device: dict[str, list[int]] = {}
    false_alerts = 0
    for subject, dev, opened, closed in spans.values():
        mask = (truth_sensor == subject) if subject is not None else (truth_device == dev)
        near = mask & (truth_time >= opened - quiet) & (truth_time <= closed + quiet)
        false_alerts += int(not near.any())
        if subject is not None:
            by_sensor.setdefault(subject, []).append((opened, closed))
        by_device.setdefault(dev, []).append(opened)

    spikes = np.flatnonzero(label == "spike")
    caught = sum(
        any(o <= time[i] <= c for o, c in by_sensor.get(sensor[i], ())) for i in spikes
    )
    onsets: dict[str, int] = {}
    for i in np.flatnonzero(label == "drift"):
        onsets[sensor[i]] = min(onsets.get(sensor[i], int(time[i])), int(time[i]))
    drift_caught = sum(
        any(o >= onset for o, _ in by_sensor.get(s, ())) for s, onset in onsets.items()
    )
    windows: dict[str, tuple[int, int]] = {}
    for i in np.flatnonzero(label == "precursor"):
        low, high = windows.get(device[i], (int(time[i]), int(time[i])))
        windows[device[i]] = (min(low, int(time[i])), max(high, int(time[i])))
    precursor_caught = sum(
        any(low <= o <= high for o in by_device.get(d, ())) for d, (low, high) in windows.items()
    )
    return Score(
        alerts=len(spans),
        false_alerts=false_alerts,
        precision=(len(spans) - false_alerts) / len(spans) if spans else 1.0,
        spike_recall=caught / spikes.size if spikes.size else 1.0,
        spikes=int(spikes.size),
        drift_recall=drift_caught / len(onsets) if onsets else 1.0,
        drifting=len(onsets),
        precursor_recall=precursor_caught / len(windows) if windows else 1.0,
        failing=len(windows),
    )
