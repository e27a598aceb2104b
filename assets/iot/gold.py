"""IoT gold: hourly aggregates per sensor, the daily health of each device, the history of
the alerts the alert processor raised and their daily roll-up per device."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_asset
from assets.metadata import bar_chart, preview
from assets.tables import asset_key
from lakehouse.catalog import (
    GOLD_DEVICE_ALERTS_DAILY,
    GOLD_DEVICE_HEALTH_DAILY,
    GOLD_IOT_ALERT_HISTORY,
    GOLD_SENSOR_HOURLY,
    SILVER_IOT_ALERTS,
    SILVER_SENSOR_READINGS,
)
from lakehouse.schemas import ALERT_RULES
from lakehouse.transforms.alerts import (
    build_alert_history_partition,
    build_device_alerts_partition,
)
from lakehouse.transforms.iot import build_device_health_partition, build_sensor_hourly_partition

# The failure ground truth of day D is read from the precursor readings of D and D - 1.
_THIS_DAY_AND_THE_DAY_BEFORE = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
_STATUSES = ("ok", "warn", "critical")
# A day's alert roll-up counts the alerts opened on any earlier day and still open: every
# earlier history partition, never a later one (a later close does not change the day).
_UP_TO_THIS_DAY = dg.TimeWindowPartitionMapping(
    start_offset=-100_000, end_offset=0, allow_nonexistent_upstream_partitions=True
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


def _history_overview(history: pa.Table, days: list[date]) -> dict[str, object]:
    rules = history["rule"].to_pylist()  # the alerts opened on the last day of the run
    still_open = history.filter(pc.field("state") == "open")
    return {
        "alerts_by_rule": bar_chart(
            f"Alerts opened by rule, {days[-1].isoformat()}",
            ALERT_RULES,
            [rules.count(rule) for rule in ALERT_RULES],
        ),
        "still_open": dg.MetadataValue.int(still_open.num_rows),
        "median_minutes_to_close": dg.MetadataValue.float(
            float(pc.approximate_median(history["minutes_to_close"]).as_py() or 0.0)
        ),
    }


def _alerts_overview(daily: pa.Table, days: list[date]) -> dict[str, object]:
    alerted = daily.filter(pc.field("alerts_active") > 0).sort_by(
        [("minutes_under_alert", "descending")]
    )
    shown = ["device_id", "alerts_opened", "minutes_under_alert", "open_at_end_of_day",
             "health_score", "status"]
    return {
        "devices_alerted": dg.MetadataValue.int(alerted.num_rows),
        "most_alerted_devices": preview(alerted.select(shown)),
    }


# A close on a later day rewrites its alert's row in the opening day's partition (see
# lakehouse.transforms.alerts), during the run of the day the close landed on.
gold_iot_alert_history = daily_asset(
    GOLD_IOT_ALERT_HISTORY,
    build_alert_history_partition,
    deps=[SILVER_IOT_ALERTS],
    describe=_history_overview,
)
gold_device_alerts_daily = daily_asset(
    GOLD_DEVICE_ALERTS_DAILY,
    build_device_alerts_partition,
    deps=[
        GOLD_DEVICE_HEALTH_DAILY,
        dg.AssetDep(asset_key(GOLD_IOT_ALERT_HISTORY), partition_mapping=_UP_TO_THIS_DAY),
    ],
    describe=_alerts_overview,
)
