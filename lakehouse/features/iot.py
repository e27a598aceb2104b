"""Device-hour features of the failure model: one definition for training (the weekly
asset) and for serving (the streaming alert service), so the model scores at serving time
exactly what it learnt from.

A machine heading for failure looks unusual against *itself*, not against the fleet:
baselines, loads and noise differ from machine to machine. So every feature compares the
device's hour, per sensor type, with the device's own recent past:

- `{type}_deviation`: the hour's mean minus the baseline level, in noise units;
- `{type}_peak`: the hour's highest reading minus the baseline level, in noise units;
- `{type}_volatility`: the hour's standard deviation over the baseline noise;
- `{type}_trend_3h`: the change of the hourly mean since three hours before, in noise units;
- `coverage`: the device's readings this hour over its typical readings per hour;
- `baseline_hours`: how many hours the baseline rests on (few on a device's first day).

The baseline of hour h is the device's hours h-24..h-1 (`LOOKBACK_HOURS`): its level is
the median of their hourly means, its noise the median of their within-hour standard
deviations. Medians keep one spike or the start of a precursor out of the baseline, and
they are exact whatever order the rows come in, so the alert service, passing one
device's last `LOOKBACK_HOURS` + 1 hours, gets bit for bit the rows a batch over the whole
fleet gets (only a device with several sensors of one type adds their hourly means in an
order that may differ, in the last bits). Everything is one DuckDB query over an Arrow
table: no Python per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse.schemas import ALERT_RULES, TIMESTAMP, VOCABULARIES
from lakehouse.transforms.tables import run_sql

SENSOR_TYPES: tuple[str, ...] = tuple(VOCABULARIES["sensor_readings"]["sensor_type"])
LOOKBACK_HOURS = 24
"""The features of hour h depend only on the device's gold rows of hours h-24..h."""

HOURLY_COLUMNS = [
    "device_id",
    "sensor_type",
    "hour",
    "readings",
    "avg_value",
    "max_value",
    "stddev_value",
]
"""The gold.sensor_hourly columns the features are computed from."""

_PER_TYPE_STATS = ("deviation", "peak", "volatility", "trend_3h")
FEATURES: tuple[str, ...] = (
    *(f"{sensor_type}_{stat}" for sensor_type in SENSOR_TYPES for stat in _PER_TYPE_STATS),
    "coverage",
    "baseline_hours",
)
FEATURE_SCHEMA = pa.schema(
    [("device_id", pa.string()), ("hour", TIMESTAMP), *((name, pa.float64()) for name in FEATURES)]
)

_PIVOT = ",\n".join(
    f"       max({stat}) FILTER (WHERE sensor_type = '{sensor_type}') AS {sensor_type}_{stat}"
    for sensor_type in SENSOR_TYPES
    for stat in _PER_TYPE_STATS
)

_FEATURES_SQL = f"""
WITH per_type AS (
    -- one row per device, sensor type and hour (a device may have several sensors of a type)
    SELECT device_id, sensor_type, hour,
           sum(avg_value * readings) / sum(readings) AS mean_value,
           max(max_value) AS max_value,
           max(stddev_value) AS stddev_value
    FROM hourly GROUP BY ALL
),
baselined AS (
    SELECT *,
           median(mean_value) OVER recent AS baseline_level,
           median(stddev_value) OVER recent AS baseline_noise
    FROM per_type
    WINDOW recent AS (
        PARTITION BY device_id, sensor_type ORDER BY hour
        RANGE BETWEEN INTERVAL {LOOKBACK_HOURS} HOURS PRECEDING AND INTERVAL 1 HOUR PRECEDING
    )
),
scored AS (
    SELECT h.device_id, h.sensor_type, h.hour,
           (h.mean_value - h.baseline_level) / nullif(h.baseline_noise, 0) AS deviation,
           (h.max_value - h.baseline_level) / nullif(h.baseline_noise, 0) AS peak,
           h.stddev_value / nullif(h.baseline_noise, 0) AS volatility,
           (h.mean_value - earlier.mean_value) / nullif(h.baseline_noise, 0) AS trend_3h
    FROM baselined AS h
    LEFT JOIN per_type AS earlier
      ON earlier.device_id = h.device_id AND earlier.sensor_type = h.sensor_type
     AND earlier.hour = h.hour - INTERVAL 3 HOURS
),
device_hours AS (
    SELECT device_id, hour, sum(readings) AS readings FROM hourly GROUP BY ALL
),
device_baselines AS (
    SELECT device_id, hour,
           readings / nullif(median(readings) OVER recent, 0) AS coverage,
           count(*) OVER recent AS baseline_hours
    FROM device_hours
    WINDOW recent AS (
        PARTITION BY device_id ORDER BY hour
        RANGE BETWEEN INTERVAL {LOOKBACK_HOURS} HOURS PRECEDING AND INTERVAL 1 HOUR PRECEDING
    )
),
wide AS (
    SELECT device_id, hour,
{_PIVOT}
    FROM scored GROUP BY device_id, hour
)
SELECT * FROM wide JOIN device_baselines USING (device_id, hour)
ORDER BY device_id, hour
"""


def device_hour_features(hourly: pa.Table) -> pa.Table:
    """One row per device and hour of `hourly` (gold.sensor_hourly rows, at least
    `HOURLY_COLUMNS`), keyed by (device_id, hour) and sorted by them, with `FEATURES`.

    A row's features use only the device's rows of the same hour and the `LOOKBACK_HOURS`
    before it; features without a baseline yet (a device's first hour) are NULL.
    """
    return run_sql(
        _FEATURES_SQL,
        FEATURE_SCHEMA,
        deterministic=True,
        hourly=hourly.select(HOURLY_COLUMNS),
    )


def feature_matrix(features: pa.Table, names: tuple[str, ...] = FEATURES) -> np.ndarray:
    """The `names` columns of a features table as a float64 matrix, NULL as NaN (which
    XGBoost treats as missing)."""
    columns = [features[name].to_numpy(zero_copy_only=False) for name in names]
    return np.column_stack(columns).astype(np.float64)


# --- alert history ---------------------------------------------------------------------
# What the alert processor said about the device before the hour ended: alerts opened in
# the last 24 hours and 7 days, per rule, critical ones over 7 days, and how many were
# still open when the hour ended. Read from gold.iot_alert_history (`ALERT_COLUMNS`). Only
# what was known at the end of the hour counts: an alert opened later is not there, and a
# close after the hour's end leaves the alert open. These are candidates: the failure model
# takes them only where they improve it on held-out hours (docs/models.md, the comparison
# `python -m bench.models --only failure_alerts`).
ALERT_WINDOWS: dict[str, int] = {"24h": 24, "7d": 7 * 24}
"""Each alert-count window by its name's suffix, in hours."""
ALERT_COLUMNS = ["device_id", "rule", "severity", "opened_at", "closed_at"]
"""The gold.iot_alert_history columns the alert features are computed from."""
ALERT_FEATURES: tuple[str, ...] = (
    *(f"{rule}_alerts_{window}" for rule in ALERT_RULES for window in ALERT_WINDOWS),
    "critical_alerts_7d",
    "alerts_open",
)
ALERT_LOOKBACK_HOURS = max(ALERT_WINDOWS.values())
"""The alert features of hour h count alerts opened in the `ALERT_LOOKBACK_HOURS` up to
its end (and any still open then, however old)."""

_ALERT_COUNTS = ",\n".join(
    f"       count(a.rule) FILTER (WHERE a.rule = '{rule}' "
    f"AND a.opened_at >= k.hour_end - INTERVAL {hours} HOURS) AS {rule}_alerts_{window}"
    for rule in ALERT_RULES
    for window, hours in ALERT_WINDOWS.items()
)

_ALERT_FEATURES_SQL = f"""
WITH keys AS (
    SELECT DISTINCT device_id, hour, hour + INTERVAL 1 HOUR AS hour_end FROM keys_in
)
SELECT k.device_id, k.hour,
{_ALERT_COUNTS},
       count(a.rule) FILTER (WHERE a.severity = 'critical'
           AND a.opened_at >= k.hour_end - INTERVAL {ALERT_LOOKBACK_HOURS} HOURS)
           AS critical_alerts_7d,
       count(a.rule) FILTER (WHERE a.closed_at IS NULL OR a.closed_at >= k.hour_end)
           AS alerts_open
FROM keys AS k
LEFT JOIN alerts AS a
  ON a.device_id = k.device_id
 AND a.opened_at < k.hour_end
 AND (a.opened_at >= k.hour_end - INTERVAL {ALERT_LOOKBACK_HOURS} HOURS
      OR a.closed_at IS NULL OR a.closed_at >= k.hour_end)
GROUP BY k.device_id, k.hour
ORDER BY k.device_id, k.hour
"""
ALERT_FEATURE_SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("hour", TIMESTAMP),
        *((name, pa.float64()) for name in ALERT_FEATURES),
    ]
)


def device_hour_alert_features(keys: pa.Table, alerts: pa.Table) -> pa.Table:
    """One row per distinct (device_id, hour) of `keys`, sorted by them, with
    `ALERT_FEATURES` counted from `alerts` (gold.iot_alert_history rows, at least
    `ALERT_COLUMNS`); a device without alerts gets zeros.

    `alerts` must hold every alert opened in the `ALERT_LOOKBACK_HOURS` before the last
    hour's end and every one still open at the first hour's start; serving passes the
    device's, training the fleet's: the same counts either way.
    """
    return run_sql(
        _ALERT_FEATURES_SQL,
        ALERT_FEATURE_SCHEMA,
        deterministic=True,
        keys_in=keys.select(["device_id", "hour"]),
        alerts=alerts.select(ALERT_COLUMNS),
    )
