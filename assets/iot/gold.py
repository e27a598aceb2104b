"""IoT gold: hourly aggregates per sensor and the daily health of each device."""

import dagster as dg
import pyarrow.compute as pc

from assets.iot.silver import silver_sensor_readings
from assets.metadata import bar_chart, preview, table_metadata
from assets.partitions import DAILY, SINGLE_RUN, partition_days, partition_label
from lakehouse.catalog import CATALOG
from lakehouse.transforms.iot import build_device_health_partition, build_sensor_hourly_partition
from orchestration.resources import LakehouseResource


@dg.asset(
    key=["gold", "sensor_hourly"],
    deps=[silver_sensor_readings],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
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
    days = partition_days(context)
    written = sum(build_sensor_hourly_partition(settings, day).num_rows for day in days)
    return dg.MaterializeResult(
        metadata=table_metadata(
            CATALOG.table("gold.sensor_hourly"), settings, written, partition_label(days)
        )
    )


# The failure ground truth of day D is read from the precursor readings of D and D - 1.
_THIS_DAY_AND_THE_DAY_BEFORE = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
_STATUSES = ("ok", "warn", "critical")


@dg.asset(
    key=["gold", "device_health_daily"],
    deps=[
        gold_sensor_hourly,
        dg.AssetDep(silver_sensor_readings, partition_mapping=_THIS_DAY_AND_THE_DAY_BEFORE),
    ],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    group_name="iot",
    kinds={"deltalake", "duckdb"},
    owners=["team:iot"],
    tags={"layer": "gold"},
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
)
def gold_device_health_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per device and day: coverage, per-sensor stats and drift, health score, failure truth."""
    settings = lakehouse.settings()
    days = partition_days(context)
    written = 0
    for day in days:
        health = build_device_health_partition(settings, day)
        written += health.num_rows
    metadata = table_metadata(
        CATALOG.table("gold.device_health_daily"), settings, written, partition_label(days)
    )
    statuses = health["status"].to_pylist()  # the last day of the run
    metadata["devices_by_status"] = bar_chart(
        f"Devices by status, {days[-1].isoformat()}",
        _STATUSES,
        [statuses.count(status) for status in _STATUSES],
    )
    unhealthy = health.filter(pc.field("status") != "ok").sort_by("health_score")
    metadata["unhealthy_devices"] = preview(
        unhealthy.select(
            [
                "device_id",
                "plant",
                "status",
                "health_score",
                "hours_reporting",
                "drift_score",
                "volatility_score",
            ]
        )
    )
    metadata["failed_devices"] = dg.MetadataValue.int(sum(health["failed"].to_pylist()))
    return dg.MaterializeResult(metadata=metadata)
