"""IoT gold: hourly aggregates per sensor and the daily health of each device."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_asset
from assets.metadata import bar_chart, preview
from assets.tables import asset_key
from lakehouse.catalog import GOLD_DEVICE_HEALTH_DAILY, GOLD_SENSOR_HOURLY, SILVER_SENSOR_READINGS
from lakehouse.transforms.iot import build_device_health_partition, build_sensor_hourly_partition

# The failure ground truth of day D is read from the precursor readings of D and D - 1.
_THIS_DAY_AND_THE_DAY_BEFORE = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
_STATUSES = ("ok", "warn", "critical")


def _health_overview(health: pa.Table, days: list[date]) -> dict[str, object]:
    statuses = health["status"].to_pylist()  # the last day of the run
    unhealthy = health.filter(pc.field("status") != "ok").sort_by("health_score")
    shown = [
        "device_id",
        "plant",
        "status",
        "health_score",
        "hours_reporting",
        "drift_score",
        "volatility_score",
    ]
    return {
        "devices_by_status": bar_chart(
            f"Devices by status, {days[-1].isoformat()}",
            _STATUSES,
            [statuses.count(status) for status in _STATUSES],
        ),
        "unhealthy_devices": preview(unhealthy.select(shown)),
        "failed_devices": dg.MetadataValue.int(sum(health["failed"].to_pylist())),
    }


gold_sensor_hourly = daily_asset(
    GOLD_SENSOR_HOURLY, build_sensor_hourly_partition, deps=[SILVER_SENSOR_READINGS]
)
gold_device_health_daily = daily_asset(
    GOLD_DEVICE_HEALTH_DAILY,
    build_device_health_partition,
    deps=[
        GOLD_SENSOR_HOURLY,
        dg.AssetDep(
            asset_key(SILVER_SENSOR_READINGS), partition_mapping=_THIS_DAY_AND_THE_DAY_BEFORE
        ),
    ],
    describe=_health_overview,
)
