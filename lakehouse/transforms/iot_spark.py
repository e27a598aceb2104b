"""IoT gold on Spark: the twins of `iot`'s transforms, for a lake that outgrows one
machine; the same SQL texts, so both engines give the same rows."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.schemas import DEVICE_HEALTH_DAILY, SENSOR_HOURLY
from lakehouse.transforms.iot import HEALTH_SQL, HOURLY_SQL
from lakehouse.transforms.tables_spark import run_spark_sql


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
