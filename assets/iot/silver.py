"""IoT silver: sensor readings deduplicated (gateway redeliveries) and rule-checked."""

import dagster as dg

from assets.metadata import table_metadata
from assets.partitions import DAILY, partition_day
from lakehouse.catalog import CATALOG
from lakehouse.transforms.silver import build_silver_partition
from orchestration.resources import LakehouseResource


@dg.asset(
    key=["silver", "sensor_readings"],
    deps=[dg.AssetKey(["bronze", "sensor_readings"])],
    partitions_def=DAILY,
    group_name="iot",
    kinds={"deltalake", "duckdb"},
    owners=["team:iot"],
    tags={"layer": "silver"},
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
)
def silver_sensor_readings(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Sensor readings of one day: one row per event id, rule breakers set aside."""
    settings = lakehouse.settings()
    result = build_silver_partition(settings, "sensor_readings", partition_day(context))
    metadata = table_metadata(CATALOG.table("silver.sensor_readings"), settings, result.rows)
    metadata["duplicates_dropped"] = dg.MetadataValue.int(result.duplicates)
    metadata["rows_rejected"] = dg.MetadataValue.int(result.rejected.num_rows)
    return dg.MaterializeResult(metadata=metadata)
