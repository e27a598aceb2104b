"""IoT gold: hourly aggregates per sensor, the table the seed's dashboards and failure
models read (avg, min, max, stddev and count per sensor and hour)."""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import CATALOG
from lakehouse.delta import open_table, replace_partition
from lakehouse.schemas import SENSOR_HOURLY
from lakehouse.settings import Settings

_HOURLY_SQL = """
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


def sensor_hourly(readings: pa.Table) -> pa.Table:
    """Aggregate silver sensor readings to one row per sensor and UTC hour.

    `stddev_value` is the sample standard deviation: NULL for an hour with one reading.
    """
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")  # hours are UTC hours, whatever the host
        connection.register("readings", readings)
        return connection.sql(_HOURLY_SQL).to_arrow_table().cast(SENSOR_HOURLY)
    finally:
        connection.close()


def build_sensor_hourly_partition(settings: Settings, day: date) -> pa.Table:
    """Rebuild one event-date partition of gold.sensor_hourly from silver; idempotent."""
    silver = open_table(CATALOG.table("silver.sensor_readings"), settings)
    columns = ["device_id", "sensor_id", "sensor_type", "plant", "event_time", "value"]
    readings = (
        silver.to_pyarrow_dataset().to_table(columns=columns, filter=pc.field("event_date") == day)
        if silver is not None
        else pa.table({name: [] for name in columns})
    )
    hourly = sensor_hourly(readings)
    spec = CATALOG.table("gold.sensor_hourly")
    replace_partition(spec, settings, hourly, f"event_date = '{day.isoformat()}'")
    return hourly
