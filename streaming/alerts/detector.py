"""The anomaly detector: per-sensor baselines and the alert state machine, batch at a time.

A `Detector` holds the state of the sensors of one Kafka partition (readings are keyed by
device, so a device's sensors all live in one partition) and turns a micro-batch of
decoded `sensor_readings` into `iot_alerts` records. Nothing here touches Kafka or Redis:
the processor, the tests, the benchmark and the lakes under test call it alike.

Per reading (docs/iot-alerts.md has the math):

- a fast baseline (exponentially weighted mean and variance, time constant
  `iot_alerts_baseline_seconds`) gives the reading's z-score: a spike is |z| over
  `iot_alerts_spike_z`;
- the one-minute mean (exponentially weighted, time constant 60 s) is compared with a slow
  reference (time constant `iot_alerts_reference_seconds`, whose spread includes the load
  cycle): |z| over `iot_alerts_level_z` is a level shift, the way drift shows;
- operating limits give `above_limit` / `below_limit`: the device's own where
  `reference.device_limits` records them, else the catalog's for the sensor type
  (`limits.py`; none where a device has no known limit);
- a device's health score is one minus the mean over its sensors of a decaying share of
  bad readings (anomalous or invalid); under `iot_alerts_health_threshold` is a
  `device_health` alert.

Readings that are not finite, outside the sensor type's physical limits or without a time
are invalid: counted, bad for the device's health, never part of a baseline. A reading
whose `sequence` its sensor has already reported (a redelivery) or passed is dropped and
counted. A reading timed before its sensor's newest is used with no decay (its time moves
nothing back).

The hot path is columnar: a batch is split into rounds by each reading's rank among its
sensor's readings in the batch, and each round is a handful of NumPy operations over the
sensors it touches, so a sensor's readings are applied in arrival order whatever the
batch boundaries. Only alert transitions (rare) become Python dictionaries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import SENSOR_LIMITS
from lakehouse.settings import Settings
from streaming.alerts.limits import OperatingLimits

US = 1_000_000
MEAN_1M_SECONDS = 60.0
SENSOR_RULES = ("zscore", "above_limit", "below_limit")
HEALTH_RULE = "device_health"
SEVERITY = {"zscore": "warning", "above_limit": "critical", "below_limit": "critical",
            HEALTH_RULE: "critical"}
TYPES = tuple(SENSOR_LIMITS)
PHYSICAL_LOW = np.array([SENSOR_LIMITS[t].physical[0] for t in TYPES] + [np.nan])
PHYSICAL_HIGH = np.array([SENSOR_LIMITS[t].physical[1] for t in TYPES] + [np.nan])
UNKNOWN_TYPE = len(TYPES)  # an index whose limits are NaN: every comparison is False

SENSOR_FLOATS = ("fast_mean", "fast_var", "ref_mean", "ref_var", "mean_1m", "bad")
SENSOR_INTS = ("device", "type", "n", "first_us", "last_us", "last_seq")
ALERT_INTS = ("opened_us", "last_us", "readings")
ALERT_FLOATS = ("value", "mean_1m", "baseline_mean", "baseline_sd", "zscore", "limit", "health")
ALERT_TEXTS = ("alert_id", "open_event", "last_event", "message")


@dataclass(frozen=True)
class DetectorConfig:
    """The detector's thresholds and time constants (from `Settings`, see configuration.md)."""

    spike_z: float = 5.0
    level_z: float = 3.0
    baseline_seconds: float = 300.0
    reference_seconds: float = 28_800.0
    warmup_readings: int = 20
    quiet_seconds: float = 60.0
    quiet_readings: int = 3
    lateness_seconds: float = 5.0
    health_seconds: float = 300.0
    health_threshold: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectorConfig:
        """The configuration `settings` describes."""
        return cls(
            spike_z=settings.iot_alerts_spike_z,
            level_z=settings.iot_alerts_level_z,
            baseline_seconds=settings.iot_alerts_baseline_seconds,
            reference_seconds=settings.iot_alerts_reference_seconds,
            warmup_readings=settings.iot_alerts_warmup_readings,
            quiet_seconds=settings.iot_alerts_quiet_seconds,
            quiet_readings=settings.iot_alerts_quiet_readings,
            lateness_seconds=settings.iot_alerts_lateness_seconds,
            health_seconds=settings.iot_alerts_health_seconds,
            health_threshold=settings.iot_alerts_health_threshold,
        )


@dataclass
class Alerts:
    """Open alerts of one rule, one slot per sensor (or device): columns of equal length."""

    open: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    ints: dict[str, np.ndarray] = field(default_factory=dict)
    floats: dict[str, np.ndarray] = field(default_factory=dict)
    texts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ALERT_INTS:
            self.ints.setdefault(name, np.zeros(0, np.int64))
        for name in ALERT_FLOATS:
            self.floats.setdefault(name, np.zeros(0))
        for name in ALERT_TEXTS:
            self.texts.setdefault(name, np.zeros(0, object))

    def grow(self, size: int) -> None:
        """Make room for slots up to `size`, the new ones closed."""
        extra = size - self.open.size
        if extra <= 0:
            return
        self.open = np.concatenate([self.open, np.zeros(extra, bool)])
        for columns, fill in ((self.ints, 0), (self.floats, np.nan), (self.texts, None)):
            for name, values in columns.items():
                columns[name] = np.concatenate([values, np.full(extra, fill, values.dtype)])


@dataclass
class Batch:
    """A micro-batch's readings as NumPy columns, in arrival order."""

    event_id: np.ndarray  # object
    time_us: np.ndarray  # int64, 0 where missing
    timed: np.ndarray  # bool: has a time
    sensor: np.ndarray  # int64 index into the detector's sensors
    value: np.ndarray  # float64
    sequence: np.ndarray  # int64, -1 where missing or negative

    def __len__(self) -> int:
        return self.value.size


@dataclass
class Result:
    """What one batch produced: alert records (open/close, in order) and counts."""

    records: list[dict[str, object]] = field(default_factory=list)
    readings: int = 0
    invalid: int = 0
    repeated: int = 0


def alert_id(subject: str, rule: str, event_id: str) -> str:
    """The id of the alert a reading opens: the same on every replay of that reading."""
    return hashlib.blake2b(f"{subject}|{rule}|{event_id}".encode(), digest_size=12).hexdigest()


def iso(us: int) -> str:
    """Microseconds since the epoch as the events carry times (ISO-8601 UTC, `Z`)."""
    moment = datetime.fromtimestamp(us // US, UTC).replace(microsecond=int(us % US))
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Detector:
    """The sensors and devices of one partition, their baselines and their open alerts."""

    def __init__(self, config: DetectorConfig, limits: OperatingLimits | None = None) -> None:
        self.config = config
        self.limits = limits or OperatingLimits()
        # Each sensor's operating limits (NaN: none), resolved from `limits`, not state.
        self.limit_low = np.zeros(0)
        self.limit_high = np.zeros(0)
        self.sensor_ids: list[str] = []
        self.sensor_index: dict[str, int] = {}
        self.sensor_types: list[str | None] = []
        self.plants: list[str | None] = []
        self.device_ids: list[str] = []
        self.device_index: dict[str, int] = {}
        self.ints = {name: np.zeros(0, np.int64) for name in SENSOR_INTS}
        self.floats = {name: np.zeros(0) for name in SENSOR_FLOATS}
        self.alerts = {rule: Alerts() for rule in SENSOR_RULES}
        self.health = Alerts()
        self.watermark_us = 0

    # --- registering sensors -------------------------------------------------------------

    def _register(self, table: pa.Table) -> np.ndarray:
        """Each row's sensor index, adding sensors (and devices) not seen before."""
        sensors = pc.fill_null(table.column("sensor_id"), "").combine_chunks().dictionary_encode()
        uniques = sensors.dictionary.to_pylist()
        missing = [name for name in uniques if name not in self.sensor_index]
        if missing:
            first = pc.index_in(pa.array(missing), sensors.dictionary)
            rows = pc.index_in(first, sensors.indices).to_numpy()
            self._add_sensors(missing, table.take(pa.array(rows)))
        lookup = np.array([self.sensor_index[name] for name in uniques], np.int64)
        return lookup[sensors.indices.to_numpy(zero_copy_only=False)]

    def _add_sensors(self, names: list[str], rows: pa.Table) -> None:
        devices = rows.column("device_id").to_pylist()
        types = rows.column("sensor_type").to_pylist()
        plants = rows.column("plant").to_pylist()
        start = len(self.sensor_ids)
        device_numbers = []
        for name, device, kind, plant in zip(names, devices, types, plants, strict=True):
            self.sensor_index[name] = len(self.sensor_ids)
            self.sensor_ids.append(name)
            self.sensor_types.append(kind)
            self.plants.append(plant)
            device = device or ""
            if device not in self.device_index:
                self.device_index[device] = len(self.device_ids)
                self.device_ids.append(device)
            device_numbers.append(self.device_index[device])
        added = len(names)
        kinds = [TYPES.index(k) if k in TYPES else UNKNOWN_TYPE for k in types]
        new_ints = {"device": device_numbers, "type": kinds, "n": [0] * added,
                    "first_us": [0] * added, "last_us": [0] * added, "last_seq": [-1] * added}
        for name, values in new_ints.items():
            self.ints[name] = np.concatenate([self.ints[name], np.array(values, np.int64)])
        for name in SENSOR_FLOATS:
            fill = 0.0 if name == "bad" else np.nan
            self.floats[name] = np.concatenate([self.floats[name], np.full(added, fill)])
        for alerts in self.alerts.values():
            alerts.grow(start + added)
        self.health.grow(len(self.device_ids))
        low, high = self.limits.resolve(pa.array(devices, pa.string()),
                                        pa.array(types, pa.string()))
        self.limit_low = np.concatenate([self.limit_low, low])
        self.limit_high = np.concatenate([self.limit_high, high])

    def use_limits(self, limits: OperatingLimits) -> None:
        """Judge every sensor, known and to come, by `limits` from the next reading on:
        how a change to `reference.device_limits` reaches a running detector."""
        self.limits = limits
        devices = np.array(self.device_ids, object)[self.ints["device"]]
        self.limit_low, self.limit_high = limits.resolve(
            pa.array(devices.tolist(), pa.string()), pa.array(self.sensor_types, pa.string())
        )

    # --- one batch -------------------------------------------------------------------------

    def process(self, table: pa.Table, now_us: int) -> Result:
        """Apply a batch of decoded readings (arrival order); `now_us` stamps `detected_at`."""
        result = Result(readings=table.num_rows)
        if table.num_rows == 0:
            return result
        times = table.column("event_time").cast(pa.timestamp("us", "UTC")).cast(pa.int64())
        batch = Batch(
            event_id=np.array(pc.fill_null(table.column("event_id"), "").to_pylist(), object),
            time_us=pc.fill_null(times, 0).to_numpy(),
            timed=pc.is_valid(times).to_numpy(zero_copy_only=False),
            sensor=self._register(table),
            value=pc.fill_null(table.column("value").cast(pa.float64()), np.nan).to_numpy(
                zero_copy_only=False
            ),
            sequence=np.maximum(
                pc.fill_null(table.column("sequence").cast(pa.int64()), -1).to_numpy(), -1
            ),
        )
        order = np.argsort(batch.sensor, kind="stable")
        ranks = np.empty(len(batch), np.int64)
        sorted_sensors = batch.sensor[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_sensors)) + 1]
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(batch)]))
        ranks[order] = np.arange(len(batch)) - group_start
        for rank in range(int(ranks.max()) + 1):
            rows = self._unseen(batch, np.flatnonzero(ranks == rank))
            result.repeated += int((ranks == rank).sum()) - rows.size
            if rows.size:
                result.invalid += self._round(batch, rows, now_us, result.records)
        timed = batch.time_us[batch.timed]
        if timed.size:
            self.watermark_us = max(self.watermark_us, int(timed.max()))
        self._sweep(now_us, result.records)
        return result

    def _unseen(self, batch: Batch, rows: np.ndarray) -> np.ndarray:
        """The rows whose sequence is past their sensor's newest: a redelivered reading
        (the same sequence again) or one arriving after a newer one is dropped, so it can
        neither count twice in an alert nor open one again. Readings without a sequence
        are all taken."""
        sequence = batch.sequence[rows]
        last = self.ints["last_seq"][batch.sensor[rows]]
        keep = (sequence < 0) | (sequence > last)
        kept = rows[keep]
        numbered = kept[batch.sequence[kept] >= 0]
        self.ints["last_seq"][batch.sensor[numbered]] = batch.sequence[numbered]
        return kept

    def _round(self, batch: Batch, rows: np.ndarray, now_us: int,
               records: list[dict[str, object]]) -> int:
        """Apply one reading per sensor (the rows' sensors are distinct); return how many
        were invalid."""
        cfg = self.config
        s = batch.sensor[rows]
        x, t = batch.value[rows], batch.time_us[rows]
        kind = self.ints["type"][s]
        with np.errstate(invalid="ignore"):
            valid = (batch.timed[rows] & np.isfinite(x) & (x >= PHYSICAL_LOW[kind])
                     & (x <= PHYSICAL_HIGH[kind]))
        f = self.floats
        n, last = self.ints["n"][s], self.ints["last_us"][s]
        fresh = n == 0
        dt = np.where(fresh, 0, np.maximum(t - last, 0)) / US
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            mean, var = f["fast_mean"][s], f["fast_var"][s]
            floor = 1e-3 * np.maximum(np.abs(mean), 1.0)
            sd = np.maximum(np.sqrt(var), floor)
            z_fast = np.where(fresh, 0.0, (x - mean) / sd)
            warm = n >= cfg.warmup_readings
            spike = valid & warm & (np.abs(z_fast) > cfg.spike_z)

            a1 = np.where(fresh, 1.0, -np.expm1(-dt / MEAN_1M_SECONDS))
            mean_1m = np.where(valid, f["mean_1m"][s] + a1 * (x - np.nan_to_num(f["mean_1m"][s])),
                               f["mean_1m"][s])
            mean_1m = np.where(valid & fresh, x, mean_1m)
            ref_mean, ref_var = f["ref_mean"][s], f["ref_var"][s]
            ref_sd = np.maximum(np.sqrt(ref_var), floor)
            aged = (t - self.ints["first_us"][s]) >= cfg.reference_seconds * US
            z_level = np.where(fresh, 0.0, (mean_1m - ref_mean) / ref_sd)
            # Hysteresis: an open alert stays open while the level is within a third of the
            # threshold, so a drift hovering at the threshold is one alert, not a series.
            level_z = np.where(self.alerts["zscore"].open[s], cfg.level_z * 2 / 3, cfg.level_z)
            level = valid & warm & aged & (np.abs(z_level) > level_z)
            low, high = self.limit_low[s], self.limit_high[s]
            above = valid & (x > high)
            below = valid & (x < low)

            # Baselines learn from valid readings, winsorized once warm so that a spike
            # moves them no more than a reading at the threshold would.
            # A sparse sensor still averages over about `warmup_readings` readings.
            step = 1.0 / (n + 1.0)
            cap = 2.0 / (cfg.warmup_readings + 1.0)
            a_fast = np.maximum(np.minimum(-np.expm1(-dt / cfg.baseline_seconds), cap), step)
            a_ref = np.maximum(-np.expm1(-dt / cfg.reference_seconds), step)
            band = cfg.spike_z * sd
            clipped = np.where(warm, np.clip(x, mean - band, mean + band), x)
            # The spread changes slower than the level: it learns over four times as long,
            # so few readings in the window do not make a noisy (heavy-tailed) z.
            a_var = np.maximum(a_fast / 4, step)
            new_mean, new_var = _ew(np.nan_to_num(mean), np.nan_to_num(var), clipped, a_fast,
                                    a_var)
            ref_clipped = np.where(warm & aged, np.clip(
                x, ref_mean - cfg.level_z * ref_sd, ref_mean + cfg.level_z * ref_sd), x)
            new_ref, new_ref_var = _ew(np.nan_to_num(ref_mean), np.nan_to_num(ref_var),
                                       ref_clipped, a_ref)
        zscore = np.where(np.abs(z_fast) / cfg.spike_z >= np.abs(z_level) / cfg.level_z,
                          z_fast, z_level)
        anomalous = spike | level
        v = valid
        f["fast_mean"][s[v]], f["fast_var"][s[v]] = new_mean[v], new_var[v]
        # The reference's spread is learnt in the sensor's first reference period and then
        # kept: a slow drift would otherwise widen it as fast as it moves the level.
        f["ref_mean"][s[v]] = new_ref[v]
        learning = v & ~aged
        f["ref_var"][s[learning]] = new_ref_var[learning]
        f["mean_1m"][s[v]] = mean_1m[v]
        self.ints["first_us"][s[v & fresh]] = t[v & fresh]
        self.ints["n"][s[v]] += 1
        self.ints["last_us"][s[v]] = np.maximum(last[v], t[v])

        bad = (~valid | anomalous | above | below).astype(np.float64)
        a_health = np.where(fresh, 1.0, -np.expm1(-dt / cfg.health_seconds))
        f["bad"][s] = f["bad"][s] + a_health * (bad - f["bad"][s])

        timed = batch.timed[rows]
        context = {
            "mean_1m": mean_1m, "baseline_mean": mean, "baseline_sd": sd, "zscore": zscore,
            "health": np.full(s.size, np.nan),
        }
        event_ids = batch.event_id[rows]
        for rule, hit in (("zscore", anomalous), ("above_limit", above), ("below_limit", below)):
            limit = high if rule == "above_limit" else low
            self._transitions(
                rule, self.alerts[rule], s, timed, t, hit, x, event_ids,
                {**context, "limit": np.where(rule == "zscore", np.nan, limit)}, now_us, records,
            )
        self._device_round(s, timed, t, x, event_ids, now_us, records)
        return int((~valid).sum())

    def _device_round(self, s: np.ndarray, timed: np.ndarray, t: np.ndarray, x: np.ndarray,
                      event_ids: np.ndarray, now_us: int, records: list[dict[str, object]]) -> None:
        """Health scores of the devices this round touched, and their alerts (one reading per
        device: the round's last of that device stands for it)."""
        devices = self.ints["device"]
        count = np.bincount(devices, minlength=len(self.device_ids))
        total = np.bincount(devices, weights=self.floats["bad"], minlength=len(self.device_ids))
        touched = devices[s]
        _, last = np.unique(touched[::-1], return_index=True)
        pick = s.size - 1 - last
        d = touched[pick]
        health = 1.0 - total[d] / np.maximum(count[d], 1)
        # A sensor's first readings say little about its device: judged once it is warm.
        warm = self.ints["n"][s[pick]] >= self.config.warmup_readings
        hit = warm & (health < self.config.health_threshold)
        nan = np.full(pick.size, np.nan)
        context = {"mean_1m": nan, "baseline_mean": nan, "baseline_sd": nan, "zscore": nan,
                   "limit": np.full(pick.size, self.config.health_threshold), "health": health}
        self._transitions(HEALTH_RULE, self.health, d, timed[pick], t[pick], hit, x[pick],
                          event_ids[pick], context, now_us, records, sensors=s[pick])

    # --- the alert state machine -----------------------------------------------------------

    def _transitions(self, rule: str, alerts: Alerts, slot: np.ndarray, timed: np.ndarray,
                     t: np.ndarray, hit: np.ndarray, x: np.ndarray, event_ids: np.ndarray,
                     context: dict[str, np.ndarray], now_us: int,
                     records: list[dict[str, object]], sensors: np.ndarray | None = None) -> None:
        """Close the alerts whose quiet period has passed, extend the open ones a reading
        hits, open one where a reading hits a closed slot."""
        is_open = alerts.open[slot]
        expired = is_open & timed & (t >= alerts.ints["last_us"][slot] + self._quiet_us(rule, slot))
        for i in np.flatnonzero(expired):
            records.append(self._close(rule, alerts, int(slot[i]), now_us))
        is_open = alerts.open[slot]
        extend = is_open & hit
        if extend.any():
            e = slot[extend]
            alerts.ints["last_us"][e] = np.maximum(alerts.ints["last_us"][e], t[extend])
            alerts.ints["readings"][e] += 1
            alerts.texts["last_event"][e] = event_ids[extend]
        start = ~is_open & hit & timed
        for i in np.flatnonzero(start):
            k = int(slot[i])
            subject = self._subject(rule, k)
            alerts.open[k] = True
            alerts.ints["opened_us"][k] = alerts.ints["last_us"][k] = t[i]
            alerts.ints["readings"][k] = 1
            alerts.texts["alert_id"][k] = alert_id(subject, rule, str(event_ids[i]))
            alerts.texts["open_event"][k] = alerts.texts["last_event"][k] = event_ids[i]
            alerts.floats["value"][k] = x[i]
            for name in ("mean_1m", "baseline_mean", "baseline_sd", "zscore", "limit", "health"):
                alerts.floats[name][k] = context[name][i]
            sensor = int(sensors[i]) if sensors is not None else k
            alerts.texts["message"][k] = self._message(rule, sensor, alerts, k)
            records.append(self._record(rule, alerts, k, "open", int(t[i]), now_us))

    def _sweep(self, now_us: int, records: list[dict[str, object]]) -> None:
        """Close alerts of sensors gone quiet without a reading to show it: once the
        partition's newest reading time is past their quiet period and a lateness margin."""
        horizon = self.watermark_us - int(self.config.lateness_seconds * US)
        for rule, alerts in (*self.alerts.items(), (HEALTH_RULE, self.health)):
            slots = np.flatnonzero(alerts.open)
            ended = alerts.ints["last_us"][slots] + self._quiet_us(rule, slots) <= horizon
            for k in slots[ended]:
                records.append(self._close(rule, alerts, int(k), now_us))

    def _close(self, rule: str, alerts: Alerts, k: int, now_us: int) -> dict[str, object]:
        """Close slot `k`: at the end of the quiet period after its last anomalous reading."""
        closed = int(alerts.ints["last_us"][k] + self._quiet_us(rule, np.array([k]))[0])
        alerts.open[k] = False
        return self._record(rule, alerts, k, "close", closed, now_us)

    def _quiet_us(self, rule: str, slots: np.ndarray) -> np.ndarray:
        """The quiet period of each slot, in microseconds: `quiet_seconds`, or
        `quiet_readings` of its sensor's reporting intervals where that is longer, so a
        sensor that reports every five minutes must behave for a few readings, not one
        minute it cannot show, before its alert closes. A device's (health slots) is that
        of its slowest sensor."""
        if rule != HEALTH_RULE:
            return self._sensor_quiet_us(slots)
        per_device = np.zeros(len(self.device_ids), np.int64)
        np.maximum.at(per_device, self.ints["device"],
                      self._sensor_quiet_us(np.arange(len(self.sensor_ids))))
        return per_device[slots]

    def _sensor_quiet_us(self, sensors: np.ndarray) -> np.ndarray:
        """The quiet period of `sensors` (indices): a sensor's interval is the mean spacing
        of its valid readings so far (none before its second), from the state kept anyway."""
        cfg = self.config
        n = self.ints["n"][sensors]
        span = self.ints["last_us"][sensors] - self.ints["first_us"][sensors]
        interval = np.where(n >= 2, span / np.maximum(n - 1, 1), 0.0)
        return np.maximum(cfg.quiet_seconds * US, cfg.quiet_readings * interval).astype(np.int64)

    def _subject(self, rule: str, k: int) -> str:
        return f"device:{self.device_ids[k]}" if rule == HEALTH_RULE else self.sensor_ids[k]

    def _message(self, rule: str, sensor: int, alerts: Alerts, k: int) -> str:
        kind = self.sensor_types[sensor] or "sensor"
        value, limit = alerts.floats["value"][k], alerts.floats["limit"][k]
        if rule == "zscore":
            return f"{kind} {value:.3f} at z {alerts.floats['zscore'][k]:+.1f} from its baseline"
        if rule == "above_limit":
            return f"{kind} {value:.3f} above its operating limit {limit:g}"
        if rule == "below_limit":
            return f"{kind} {value:.3f} below its operating limit {limit:g}"
        return f"device health {alerts.floats['health'][k]:.2f} under {limit:g}"

    def _record(self, rule: str, alerts: Alerts, k: int, state: str, at_us: int,
                now_us: int) -> dict[str, object]:
        """One `iot_alerts` record (lakehouse/schemas.py IOT_ALERTS)."""
        ident = str(alerts.texts["alert_id"][k])
        device = self.device_ids[k] if rule == HEALTH_RULE else self.device_ids[
            int(self.ints["device"][k])]
        sensor = None if rule == HEALTH_RULE else k
        reading = alerts.texts["open_event" if state == "open" else "last_event"][k]
        plant_of = k if sensor is not None else int(np.flatnonzero(self.ints["device"] == k)[0])
        record: dict[str, object] = {
            "event_id": f"{ident}:{state}",
            "event_time": iso(at_us),
            "alert_id": ident,
            "state": state,
            "rule": rule,
            "severity": SEVERITY[rule],
            "device_id": device,
            "sensor_id": self.sensor_ids[sensor] if sensor is not None else None,
            "sensor_type": self.sensor_types[sensor] if sensor is not None else None,
            "plant": self.plants[plant_of],
            "readings": int(alerts.ints["readings"][k]),
            "opened_at": iso(int(alerts.ints["opened_us"][k])),
            "closed_at": iso(at_us) if state == "close" else None,
            "reading_event_id": str(reading),
            "detected_at": iso(now_us),
            "message": alerts.texts["message"][k],
        }
        for name in ("value", "mean_1m", "baseline_mean", "baseline_sd", "zscore", "limit"):
            value = float(alerts.floats[name][k])
            record[name] = value if np.isfinite(value) else None
        health = float(alerts.floats["health"][k])
        record["health_score"] = health if np.isfinite(health) else None
        return record


def _ew(mean: np.ndarray, var: np.ndarray, x: np.ndarray, alpha: np.ndarray,
        var_alpha: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One step of the exponentially weighted mean and variance (West's update); the
    variance may learn at its own, slower rate."""
    diff = x - mean
    beta = alpha if var_alpha is None else var_alpha
    return mean + alpha * diff, (1.0 - beta) * (var + beta * diff * diff)
