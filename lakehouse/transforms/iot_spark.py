"""IoT gold on Spark: the twins of `iot`'s transforms, for a lake that outgrows one
machine; the same SQL texts, so both engines give the same rows."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.catalog import GOLD_DEVICE_HEALTH_DAILY, GOLD_SENSOR_HOURLY, SILVER_SENSOR_READINGS
from lakehouse.schemas import DEVICE_HEALTH_DAILY, SENSOR_HOURLY
from lakehouse.settings import Settings
from lakehouse.transforms.iot import HEALTH_SQL, HOURLY_COLUMNS, HOURLY_SQL, LABEL_COLUMNS
from lakehouse.transforms.tables import Guard
from lakehouse.transforms.tables_spark import read_days, replace_day, run_spark_sql


def sensor_hourly(readings: DataFrame) -> DataFrame:
    """`iot.sensor_hourly` on Spark: one row per sensor and UTC hour of silver readings
    (the session's time zone must be UTC, as DuckDB's is in `run_sql`)."""
    return run_spark_sql(HOURLY_SQL, SENSOR_HOURLY, readings=readings)


def device_health_daily(hourly: DataFrame, readings: DataFrame, day: date) -> DataFrame:
    """`iot.device_health_daily` on Spark: one row per device with gold.sensor_hourly rows
    on `day`; `readings` are the label columns of silver readings of `day` and the day
    before (see the local twin)."""
    return run_spark_sql(
        HEALTH_SQL,
        DEVICE_HEALTH_DAILY,
        {"day": day},
        hourly=hourly.where(F.col("event_date") == F.lit(day)),
        labels=readings,
    )


def build_sensor_hourly_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """`iot.build_sensor_hourly_partition` on Spark: rebuild one day of gold.sensor_hourly
    from silver; idempotent."""
    readings = read_days(settings, SILVER_SENSOR_READINGS, HOURLY_COLUMNS, day)
    return replace_day(settings, GOLD_SENSOR_HOURLY, sensor_hourly(readings), day, guard)


def build_device_health_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """`iot.build_device_health_partition` on Spark: rebuild one day of
    gold.device_health_daily from gold.sensor_hourly of `day` and the label columns of
    silver readings of `day` and the day before; idempotent."""
    hourly = read_days(settings, GOLD_SENSOR_HOURLY, None, day)
    labels = read_days(
        settings, SILVER_SENSOR_READINGS, LABEL_COLUMNS, day - timedelta(days=1), day
    )
    health = device_health_daily(hourly, labels, day)
    return replace_day(settings, GOLD_DEVICE_HEALTH_DAILY, health, day, guard)
