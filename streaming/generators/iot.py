"""Synthetic machine telemetry: periodic sensor readings with noise, faults and ground truth.

The world: `n_machines` machines spread over five plants, each with four sensors
(temperature, vibration, pressure, current) reporting every `interval` of simulated time,
where the interval is whatever spreads `n_events` readings over the span. Values follow
a machine-specific baseline, an eight-hour load cycle and Gaussian noise. Injected, with
labels:

- `drift`: a few sensors lose calibration at some moment and their offset grows steadily;
- `spike`: isolated readings far outside the noise;
- `precursor`: machines that fail show rising temperature, vibration and current in a
  window before the failure (`label_failure_at` is the failure time on every reading of the
  machine in that window), then stop reporting for a downtime, then resume;
- redeliveries: a share of readings is sent twice, the copy byte-identical and a little
  later in the stream (the edge gateway's deduplication has something real to do).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np

from lakehouse.catalog import Domain
from streaming.generators import jsonl
from streaming.generators.common import US, Chunk, ChunkedGenerator, Timeline
from streaming.generators.jsonl import Codes, Floats, Frame, Ints, Times, Vocabulary, hex_ids

# sensor type, unit, baseline range, noise sd, load-cycle amplitude, spike size in sds
SENSORS: tuple[tuple[str, str, tuple[float, float], float, float], ...] = (
    ("temperature", "degC", (45.0, 70.0), 0.6, 2.0),
    ("vibration", "mm/s", (1.5, 4.0), 0.12, 0.25),
    ("pressure", "bar", (4.0, 8.0), 0.05, 0.1),
    ("current", "A", (8.0, 25.0), 0.25, 1.5),
)
TEMPERATURE, VIBRATION, PRESSURE, CURRENT = range(4)
SENSOR_TYPES = Vocabulary(tuple(s[0] for s in SENSORS))
UNITS = Vocabulary(tuple(s[1] for s in SENSORS))
NOISE = np.array([s[3] for s in SENSORS])
PLANTS = Vocabulary(("plant-detroit", "plant-stuttgart", "plant-nagoya", "plant-pune",
                     "plant-monterrey"))
ANOMALIES = Vocabulary(("drift", "spike", "precursor"))
DRIFT, SPIKE, PRECURSOR = range(3)
LOAD_CYCLE_US = 8 * 3600 * US
ARRIVAL_DELAY_US = 200_000  # mean network delay: readings arrive slightly out of order


@dataclass(frozen=True)
class Fleet:
    """Machines and sensors (sensor s belongs to machine s // 4 and has type s % 4)."""

    plant: np.ndarray  # per machine
    base: np.ndarray  # per sensor
    load_phase: np.ndarray  # per machine, radians
    phase: np.ndarray  # per sensor: offset of its readings within the interval, [0, 1)
    sequence0: np.ndarray  # per sensor: counter value before the run
    drift_onset: np.ndarray  # per sensor, µs; max int64 = never drifts
    drift_rate: np.ndarray  # per sensor, units per hour (signed)
    failure_at: np.ndarray  # per machine, µs; max int64 = never fails
    downtime_us: int
    precursor_us: int

    @property
    def n_sensors(self) -> int:
        return self.base.size


NEVER = np.iinfo(np.int64).max


def build_fleet(rng: np.random.Generator, n_machines: int, timeline: Timeline, *,
                failure_rate: float, drift_rate: float, precursor: timedelta,
                downtime: timedelta) -> Fleet:
    """Machines with their baselines, the sensors that will drift and the failures to come."""
    n_sensors = n_machines * len(SENSORS)
    kind = np.arange(n_sensors) % len(SENSORS)
    low = np.array([s[2][0] for s in SENSORS])[kind]
    high = np.array([s[2][1] for s in SENSORS])[kind]
    span = timeline.span_us
    precursor_us = min(precursor // timedelta(microseconds=1), span // 4)
    downtime_us = min(downtime // timedelta(microseconds=1), span // 6)

    drifting = rng.random(n_sensors) < drift_rate
    onset = timeline.start_us + (rng.uniform(0.1, 0.6, n_sensors) * span).astype(np.int64)
    # The offset grows by 6-15 noise sds over 40% of the span, whatever the span's length.
    hours = span / (3600 * US)
    rate = rng.uniform(6.0, 15.0, n_sensors) * NOISE[kind] / max(hours * 0.4, 1e-9)
    # Calibration drifts either way for temperature and pressure; worn parts only add.
    either_way = (kind == TEMPERATURE) | (kind == PRESSURE)
    rate *= np.where(either_way & (rng.random(n_sensors) < 0.5), -1.0, 1.0)

    failing = rng.permutation(n_machines)[: round(failure_rate * n_machines)]
    failure_at = np.full(n_machines, NEVER, dtype=np.int64)
    earliest = precursor_us + span // 20
    latest = span - downtime_us - span // 20
    failure_at[failing] = timeline.start_us + rng.integers(earliest, max(latest, earliest + 1),
                                                           failing.size)
    return Fleet(
        plant=rng.integers(0, len(PLANTS), n_machines),
        base=rng.uniform(low, high),
        load_phase=rng.uniform(0, 2 * np.pi, n_machines),
        phase=rng.random(n_sensors),
        sequence0=rng.integers(0, 50_000, n_sensors),
        drift_onset=np.where(drifting, onset, NEVER),
        drift_rate=rate,
        failure_at=failure_at,
        downtime_us=downtime_us,
        precursor_us=precursor_us,
    )


class IotGenerator(ChunkedGenerator):
    """Periodic readings from a fleet of machines with drift, spikes, failures, redeliveries.

    Options: `n_machines` (200, four sensors each), `failure_rate` (0.05: share of
    machines that fail during the run), `drift_rate` (0.02: share of sensors that drift),
    `spike_rate` (0.001: share of readings that spike), `duplicate_rate` (0.005: share of
    readings delivered twice), `precursor` (4 hours before a failure, at most a quarter of
    the span) and `downtime` (3 hours of silence after it, at most a sixth of the span).
    """

    domain: ClassVar[Domain] = Domain.IOT
    keys: ClassVar[dict[str, str]] = {"sensor_readings": "device_id"}

    def __init__(self, *, seed: int = 42, start: datetime | None = None,
                 span: timedelta = timedelta(days=1), live: bool = False,
                 n_machines: int = 200, failure_rate: float = 0.05, drift_rate: float = 0.02,
                 spike_rate: float = 0.001, duplicate_rate: float = 0.005,
                 precursor: timedelta = timedelta(hours=4),
                 downtime: timedelta = timedelta(hours=3)) -> None:
        super().__init__(seed=seed, start=start, span=span, live=live)
        rates = (failure_rate, drift_rate, spike_rate, duplicate_rate)
        if n_machines < 1 or not all(0 <= r < 1 for r in rates):
            raise ValueError("need n_machines >= 1 and every rate in [0, 1)")
        self.spike_rate, self.duplicate_rate = spike_rate, duplicate_rate
        self.timeline_ = self.timeline(diurnal=False)
        self.fleet = build_fleet(self.rng(1), n_machines, self.timeline_,
                                 failure_rate=failure_rate, drift_rate=drift_rate,
                                 precursor=precursor, downtime=downtime)
        ids = [f"dev-{m:04d}" for m in range(n_machines)]
        self.devices = Vocabulary(tuple(ids))
        self.sensors = Vocabulary(tuple(f"{d}-{s[0]}" for d in ids for s in SENSORS))

    def _schedule(self, ticks: np.ndarray, sensors: np.ndarray, interval: float
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Reading times (ticks x sensors, µs) and whether each is sent (not in downtime)."""
        fleet = self.fleet
        position = ticks[:, None] + fleet.phase[sensors]
        time = self.timeline_.start_us + (position * interval).astype(np.int64)
        time = np.minimum(time, self.timeline_.end_us - 1)
        since_failure = time - fleet.failure_at[sensors // len(SENSORS)]
        return time, ~((since_failure >= 0) & (since_failure < fleet.downtime_us))

    def _readings(self, ticks: int) -> int:
        """Readings (before redeliveries) in a run of `ticks` intervals, downtime excluded."""
        fleet = self.fleet
        failing = np.flatnonzero(fleet.failure_at[np.arange(fleet.n_sensors) // len(SENSORS)]
                                 != NEVER)
        _, sent = self._schedule(np.arange(ticks), failing, self.timeline_.span_us / ticks)
        return ticks * fleet.n_sensors - int((~sent).sum())

    def _ticks(self, n_events: int) -> int:
        """The fewest intervals whose readings plus redeliveries reach `n_events`."""
        def total(ticks: int) -> int:
            readings = self._readings(ticks)
            return readings + round(self.duplicate_rate * readings)

        ticks = max(1, math.ceil(n_events / ((1 + self.duplicate_rate) * self.fleet.n_sensors)))
        while total(ticks) < n_events:
            ticks += max(1, (n_events - total(ticks)) // (2 * self.fleet.n_sensors))
        while ticks > 1 and total(ticks - 1) >= n_events:
            ticks -= 1
        return ticks

    def _frames(self, chunks: list[Chunk]) -> Iterator[dict[str, Frame]]:
        n_events = sum(chunk.size for chunk in chunks)
        ticks = self._ticks(n_events)
        interval = self.timeline_.span_us / ticks
        per_block = max(1, chunks[0].size // self.fleet.n_sensors)
        sequence = self.fleet.sequence0.copy()
        emitted = readings = 0
        for index, first in enumerate(range(0, ticks, per_block)):
            rng = self.rng(100, index)
            block = self._block(rng, first, min(first + per_block, ticks), interval, sequence)
            before, readings = readings, readings + jsonl.rows(block)
            copies = round(self.duplicate_rate * readings) - round(self.duplicate_rate * before)
            block = _redeliver(rng, block, copies)
            block = jsonl.take(block, np.arange(min(jsonl.rows(block), n_events - emitted)))
            emitted += jsonl.rows(block)
            yield {"sensor_readings": block}
            if emitted >= n_events:
                return

    def _block(self, rng: np.random.Generator, first: int, last: int, interval: float,
               sequence: np.ndarray) -> Frame:
        """Readings of every sensor for ticks [first, last), in arrival order."""
        fleet = self.fleet
        n_sensors = fleet.n_sensors
        time, active = self._schedule(np.arange(first, last), np.arange(n_sensors), interval)
        counts = np.cumsum(active, axis=0)
        seq = sequence + counts - 1
        sequence += counts[-1]

        s = np.broadcast_to(np.arange(n_sensors), time.shape)[active]
        t, seq = time[active], seq[active]
        value, anomaly, failure_label = self._values(rng, s, t)
        order = np.argsort(t + rng.exponential(ARRIVAL_DELAY_US, t.size).astype(np.int64),
                           kind="stable")
        s, t, seq, value = s[order], t[order], seq[order], value[order]
        anomaly, failure_label = anomaly[order], failure_label[order]
        m = s // len(SENSORS)
        return {
            "event_id": hex_ids(rng, s.size),
            "event_time": Times(t),
            "device_id": Codes(m, self.devices),
            "sensor_id": Codes(s, self.sensors),
            "sensor_type": Codes(s % len(SENSORS), SENSOR_TYPES),
            "plant": Codes(fleet.plant[m], PLANTS),
            "sequence": Ints(seq),
            "value": Floats(value, 3),
            "unit": Codes(s % len(SENSORS), UNITS),
            "label_anomaly": Codes(anomaly, ANOMALIES),
            "label_failure_at": Times(np.where(failure_label == NEVER, 0, failure_label),
                                      failure_label == NEVER),
        }

    def _values(self, rng: np.random.Generator, sensor: np.ndarray, time: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each reading's value, anomaly label (code or -1) and failure time (or NEVER)."""
        fleet = self.fleet
        kind = sensor % len(SENSORS)
        machine = sensor // len(SENSORS)
        amplitude = np.array([s[4] for s in SENSORS])[kind]
        cycle = np.sin(2 * np.pi * time / LOAD_CYCLE_US + fleet.load_phase[machine])
        noise_sd = NOISE[kind].copy()
        value = fleet.base[sensor] + amplitude * cycle
        anomaly = np.full(sensor.size, -1, dtype=np.int64)

        onset = fleet.drift_onset[sensor]
        drifting = time >= onset
        hours = (time - np.where(drifting, onset, 0)) / (3600 * US)
        value += np.where(drifting, fleet.drift_rate[sensor] * hours, 0.0)
        anomaly[drifting] = DRIFT

        failure = fleet.failure_at[machine]
        window = (time < failure) & (time >= failure - fleet.precursor_us)
        progress = np.where(window, 1.0 - (failure - time) / max(fleet.precursor_us, 1), 0.0)
        ramp = progress**2
        value += np.where(kind == TEMPERATURE, 15.0 * ramp, 0.0)
        value *= np.where(kind == VIBRATION, 1.0 + 3.0 * ramp, 1.0)
        value += np.where(kind == CURRENT, 0.25 * fleet.base[sensor] * ramp, 0.0)
        noise_sd *= np.where(window & (kind == VIBRATION), 1.0 + 2.0 * progress, 1.0)
        anomaly[window & (kind != PRESSURE)] = PRECURSOR
        failure_label = np.where(window, failure, NEVER)

        value += rng.normal(0.0, 1.0, sensor.size) * noise_sd
        spike = rng.random(sensor.size) < self.spike_rate
        sign = np.where((kind == TEMPERATURE) & (rng.random(sensor.size) < 0.5), -1.0, 1.0)
        value += np.where(spike, sign * rng.uniform(6.0, 12.0, sensor.size) * NOISE[kind], 0.0)
        anomaly[spike] = SPIKE
        value = np.where(kind == TEMPERATURE, value, np.maximum(value, 0.0))
        return value, anomaly, failure_label


def _redeliver(rng: np.random.Generator, frame: Frame, copies: int) -> Frame:
    """Send `copies` random readings a second time, each 1-300 messages after the original."""
    n = jsonl.rows(frame)
    if copies <= 0 or n == 0:
        return frame
    source = rng.choice(n, size=min(copies, n), replace=False)
    later = source + rng.integers(1, 301, source.size) + 0.5
    position = np.concatenate([np.arange(n, dtype=np.float64), np.minimum(later, n)])
    rows = np.concatenate([np.arange(n), source])[np.argsort(position, kind="stable")]
    return jsonl.take(frame, rows)
