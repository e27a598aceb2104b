"""IoT gold: hourly aggregates per sensor, the table the seed's dashboards and failure
models read (avg, min, max, stddev and count per sensor and hour), and the daily health of
each device built from them, with the failure ground truth the failure model learns from."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import GOLD_DEVICE_HEALTH_DAILY, GOLD_SENSOR_HOURLY, SILVER_SENSOR_READINGS
from lakehouse.schemas import DEVICE_HEALTH_DAILY, SENSOR_HOURLY, VOCABULARIES
from lakehouse.settings import Settings
from lakehouse.transforms.tables import Guard, read_days, replace_day, run_sql

# Shared with the Spark twin (`iot_spark`): Spark SQL runs this text as it is.
HOURLY_SQL = """
SELECT device_id, sensor_id, sensor_type, plant,
       date_trunc('hour', event_time) AS hour,
       CAST(date_trunc('hour', event_time) AS DATE) AS event_date,
       count(*) AS readings,
       avg(value) AS avg_value,
       min(value) AS min_value,
       max(value) AS max_value,
       stddev_samp(value) AS stddev_value
FROM readings
GROUP BY ALL
ORDER BY hour, sensor_id
"""


HOURLY_COLUMNS = ["device_id", "sensor_id", "sensor_type", "plant", "event_time", "value"]
"""The silver readings columns HOURLY_SQL reads."""


def sensor_hourly(readings: pa.Table) -> pa.Table:
    """Aggregate silver sensor readings to one row per sensor and UTC hour.

    `stddev_value` is the sample standard deviation: NULL for an hour with one reading.
    """
    return run_sql(HOURLY_SQL, SENSOR_HOURLY, readings=readings)  # a big scan: parallel


def build_sensor_hourly_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one event-date partition of gold.sensor_hourly from silver; idempotent."""
    readings = read_days(settings, SILVER_SENSOR_READINGS, HOURLY_COLUMNS, day)
    return replace_day(settings, GOLD_SENSOR_HOURLY, sensor_hourly(readings), day, guard)


# --- gold.device_health_daily ------------------------------------------------------------
# Per device and day, from the day's gold.sensor_hourly rows, with the ground truth of the
# readings themselves (silver). For each sensor, over the day's hours:
#
# - typical noise: the median of its hourly standard deviations (the within-hour noise);
# - drift: the least-squares trend of its hourly means, as the fitted change from its first
#   to its last hour, in units of that typical noise (signed; per sensor type the sensor
#   with the largest |drift|). A healthy sensor's daily load cycle and noise stay within a
#   few units; a calibration drift or a failure precursor moves it by tens;
# - volatility: its second-largest hourly standard deviation over the typical one, so that
#   noise growing over the hours before a failure counts and one hour with a spike does not.
#
# The device's `drift_score` and `volatility_score` are the largest over its sensors, and
#
#     health_score = coverage * (1 - drift_penalty) * (1 - volatility_penalty)
#
# with coverage = hours_reporting / 24 and each penalty rising linearly from 0 at its "ok"
# bound to 1 at its "bad" bound (below). Status: 'ok' at HEALTH_OK or above, 'warn' down to
# HEALTH_WARN, 'critical' below. An hour with a single reading has no stddev: a sensor
# reporting less than twice an hour gets no drift or volatility (no penalty). The bounds
# come from generated days at 5 and 26 readings per sensor-hour (the demo's rate): healthy
# devices stay under a drift of 3.2 and a volatility of 2.2 (99th percentiles), drifting
# sensors reach 8-30 and failing machines a volatility of 6-10 on the day they fail.
DRIFT_OK, DRIFT_BAD = 4.0, 12.0
VOLATILITY_OK, VOLATILITY_BAD = 2.5, 6.0
HEALTH_OK, HEALTH_WARN = 0.8, 0.5
HEALTH_SENSOR_TYPES = VOCABULARIES["sensor_readings"]["sensor_type"]

_PER_TYPE = ",\n".join(
    f"max(mean_value) FILTER (WHERE sensor_type = '{t}') AS {t}_mean, "
    f"max(max_value) FILTER (WHERE sensor_type = '{t}') AS {t}_max, "
    f"max(max_hourly_stddev) FILTER (WHERE sensor_type = '{t}') AS {t}_max_hourly_stddev, "
    f"max(drift) FILTER (WHERE sensor_type = '{t}') AS {t}_drift"
    for t in HEALTH_SENSOR_TYPES
)


def _penalty(column: str, ok: float, bad: float) -> str:
    return f"least(greatest((coalesce({column}, 0) - {ok}) / {bad - ok}, 0), 1)"


_WIDE_COLUMNS = ", ".join(
    [
        f"w.{t}_{c}"
        for t in HEALTH_SENSOR_TYPES
        for c in ("mean", "max", "max_hourly_stddev", "drift")
    ]
    + ["w.drift_score", "w.volatility_score"]
)

# Shared with the Spark twin (`iot_spark`), which gives Spark DuckDB's `epoch` and `$day`
# (`tables_spark.run_spark_sql`); the rest reads the same in both engines. Hence the
# second-largest hourly stddev by rank rather than from a sorted list (Spark's arrays
# count from 0, DuckDB's from 1), and the hours between first and last by epoch rather
# than date_diff (Spark's takes its unit unquoted, DuckDB's quoted).
HEALTH_SQL = f"""
WITH ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY device_id, sensor_id ORDER BY stddev_value DESC NULLS LAST) AS stddev_rank
    FROM hourly
),
sensors AS (
    SELECT device_id, sensor_id, sensor_type,
           sum(readings) AS readings,
           sum(avg_value * readings) / sum(readings) AS mean_value,
           max(max_value) AS max_value,
           max(stddev_value) AS max_hourly_stddev,
           median(stddev_value) AS typical_stddev,
           max(stddev_value) FILTER (WHERE stddev_rank = 2) AS second_stddev,
           regr_slope(avg_value, epoch(hour) / 3600)
               * (epoch(max(hour)) - epoch(min(hour))) / 3600 AS fitted_change
    FROM ranked GROUP BY ALL
),
per_type AS (
    SELECT device_id, sensor_type,
           sum(mean_value * readings) / sum(readings) AS mean_value,
           max(max_value) AS max_value,
           max(max_hourly_stddev) AS max_hourly_stddev,
           max_by(fitted_change / nullif(typical_stddev, 0),
                  abs(fitted_change / nullif(typical_stddev, 0))) AS drift,
           max(second_stddev / nullif(typical_stddev, 0)) AS volatility
    FROM sensors GROUP BY ALL
),
devices AS (
    SELECT device_id, min(plant) AS plant,
           sum(readings)::BIGINT AS readings,
           count(DISTINCT hour) AS hours_reporting,
           count(DISTINCT sensor_id) AS sensors_reporting
    FROM hourly GROUP BY device_id
),
wide AS (
    SELECT device_id,
{_PER_TYPE},
           max(abs(drift)) AS drift_score,
           max(volatility) AS volatility_score
    FROM per_type GROUP BY device_id
),
day_labels AS (
    SELECT device_id,
           min(event_time) AS first_reading_at,
           max(event_time) AS last_reading_at,
           count(*) FILTER (WHERE label_anomaly IS NOT NULL) AS anomalous_readings
    FROM labels WHERE event_date = $day GROUP BY device_id
),
failures AS (
    SELECT DISTINCT device_id, label_failure_at AS failure_at
    FROM labels WHERE label_failure_at IS NOT NULL
),
outcome AS (
    SELECT l.device_id,
           coalesce(bool_or(CAST(f.failure_at AS DATE) = $day), false) AS failed,
           min(epoch(f.failure_at) - epoch(l.first_reading_at))
               FILTER (WHERE f.failure_at >= l.first_reading_at) / 3600 AS hours_to_failure
    FROM day_labels AS l LEFT JOIN failures AS f USING (device_id)
    GROUP BY l.device_id
),
scored AS (
    SELECT d.*, l.first_reading_at, l.last_reading_at, {_WIDE_COLUMNS},
           least(d.hours_reporting / 24, 1)
               * (1 - {_penalty("w.drift_score", DRIFT_OK, DRIFT_BAD)})
               * (1 - {_penalty("w.volatility_score", VOLATILITY_OK, VOLATILITY_BAD)})
               AS health_score,
           coalesce(l.anomalous_readings, 0) AS anomalous_readings,
           coalesce(o.failed, false) AS failed,
           o.hours_to_failure
    FROM devices AS d
    JOIN wide AS w USING (device_id)
    LEFT JOIN day_labels AS l USING (device_id)
    LEFT JOIN outcome AS o USING (device_id)
)
SELECT *, $day::DATE AS event_date,
       CASE WHEN health_score >= {HEALTH_OK} THEN 'ok'
            WHEN health_score >= {HEALTH_WARN} THEN 'warn'
            ELSE 'critical' END AS status
FROM scored
ORDER BY device_id
"""


def device_health_daily(hourly: pa.Table, readings: pa.Table, day: date) -> pa.Table:
    """One row per device with gold.sensor_hourly rows on `day`.

    `readings` are silver sensor readings of `day` and the day before (device_id,
    event_time, event_date, label_anomaly, label_failure_at): a failure is known from the
    `label_failure_at` of its precursor readings, which may start the evening before.
    `failed` says a known failure falls on `day`; `hours_to_failure` is the time from the
    device's first reading of the day to the next known failure at or after it (NULL when
    none is known; a failure on the next day is known only once its precursor has begun).
    """
    return run_sql(
        HEALTH_SQL,
        DEVICE_HEALTH_DAILY,
        {"day": day},
        deterministic=True,
        hourly=hourly.filter(pc.field("event_date") == day),
        labels=readings,
    )


LABEL_COLUMNS = ["device_id", "event_time", "event_date", "label_anomaly", "label_failure_at"]


def build_device_health_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> pa.Table:
    """Rebuild one event-date partition of gold.device_health_daily; idempotent.

    Reads gold.sensor_hourly of `day` and the label columns of silver readings of `day`
    and the day before.
    """
    hourly = read_days(settings, GOLD_SENSOR_HOURLY, None, day)
    labels = read_days(
        settings, SILVER_SENSOR_READINGS, LABEL_COLUMNS, day - timedelta(days=1), day
    )
    health = device_health_daily(hourly, labels, day)
    return replace_day(settings, GOLD_DEVICE_HEALTH_DAILY, health, day, guard)
