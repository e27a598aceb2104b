"""IoT gold: hourly aggregates per sensor and the daily health of each device."""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_table, materialize_days
from assets.iot.silver import silver_sensor_readings
from assets.metadata import bar_chart, preview
from lakehouse.transforms.iot import build_device_health_partition, build_sensor_hourly_partition
from orchestration.resources import LakehouseResource

_OWNER = "team:iot"
_Results = Iterator[dg.MaterializeResult | dg.AssetCheckResult]


@dg.asset(**daily_table("gold.sensor_hourly", _OWNER, deps=[silver_sensor_readings]))
def gold_sensor_hourly(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> _Results:
    """Per sensor and UTC hour: readings, average, minimum, maximum, standard deviation."""
    yield from materialize_days(
        context, lakehouse.settings(), "gold.sensor_hourly", build_sensor_hourly_partition
    )


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
) -> _Results:
    """Per device and day: coverage, per-sensor stats and drift, health score, failure truth."""
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.device_health_daily",
        build_device_health_partition,
        _health_overview,
    )


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
