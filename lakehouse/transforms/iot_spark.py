"""IoT gold on Spark: the twins of `iot`'s transforms, for a lake that outgrows one
machine; the same SQL text, so both engines give the same rows."""

from __future__ import annotations

from pyspark.sql import DataFrame

from lakehouse.schemas import SENSOR_HOURLY
from lakehouse.transforms.iot import HOURLY_SQL
from lakehouse.transforms.tables_spark import run_spark_sql


def sensor_hourly(readings: DataFrame) -> DataFrame:
    """`iot.sensor_hourly` on Spark: one row per sensor and UTC hour of silver readings
    (the session's time zone must be UTC, as DuckDB's is in `run_sql`)."""
    return run_spark_sql(HOURLY_SQL, SENSOR_HOURLY, readings=readings)
