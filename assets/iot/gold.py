"""IoT gold: hourly aggregates per sensor and the daily health of each device."""

import dagster as dg
import pyarrow.compute as pc

from assets.daily import build_each_day, daily_table
from assets.iot.silver import silver_sensor_readings
from assets.metadata import bar_chart, preview
from assets.partitions import partition_days
from lakehouse.transforms.iot import build_device_health_partition, build_sensor_hourly_partition
from orchestration.resources import LakehouseResource

_OWNER = "team:iot"


@dg.asset(**daily_table("gold.sensor_hourly", _OWNER, deps=[silver_sensor_readings]))
def gold_sensor_hourly(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per sensor and UTC hour: readings, average, minimum, maximum, standard deviation."""
    metadata, _ = build_each_day(
        context, lakehouse.settings(), "gold.sensor_hourly", build_sensor_hourly_partition
    )
    return dg.MaterializeResult(metadata=metadata)


# The failure ground truth of day D is read from the precursor readings of D and D - 1.
_THIS_DAY_AND_THE_DAY_BEFORE = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
_STATUSES = ("ok", "warn", "critical")


@dg.asset(
    **daily_table(
        "gold.device_health_daily",
        _OWNER,
        deps=[
            gold_sensor_hourly,
            dg.AssetDep(silver_sensor_readings, partition_mapping=_THIS_DAY_AND_THE_DAY_BEFORE),
        ],
    )
)
def gold_device_health_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per device and day: coverage, per-sensor stats and drift, health score, failure truth."""
    metadata, health = build_each_day(
        context, lakehouse.settings(), "gold.device_health_daily", build_device_health_partition
    )
    days = partition_days(context)
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
