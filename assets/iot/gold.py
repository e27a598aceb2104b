"""IoT gold: hourly aggregates per sensor."""

import dagster as dg

from assets.iot.silver import silver_sensor_readings
from assets.metadata import table_metadata
from assets.partitions import DAILY, partition_day
from lakehouse.catalog import CATALOG
from lakehouse.transforms.iot import build_sensor_hourly_partition
from orchestration.resources import LakehouseResource


@dg.asset(
    key=["gold", "sensor_hourly"],
    deps=[silver_sensor_readings],
    partitions_def=DAILY,
    group_name="iot",
    kinds={"deltalake", "duckdb"},
    owners=["team:iot"],
    tags={"layer": "gold"},
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
)
def gold_sensor_hourly(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per sensor and UTC hour: readings, average, minimum, maximum, standard deviation."""
    settings = lakehouse.settings()
    hourly = build_sensor_hourly_partition(settings, partition_day(context))
    return dg.MaterializeResult(
        metadata=table_metadata(CATALOG.table("gold.sensor_hourly"), settings, hourly)
    )
