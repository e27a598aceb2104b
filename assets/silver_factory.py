"""One silver asset per topic, all built the same way from `lakehouse.transforms.silver`."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import Results, daily_table, materialize_days
from assets.metadata import bar_chart
from assets.resources import LakehouseResource
from lakehouse.catalog import CATALOG, TableSpec
from lakehouse.settings import Settings
from lakehouse.transforms.silver import build_silver_partition
from lakehouse.transforms.tables import Guard


def silver_asset(table: TableSpec) -> dg.AssetsDefinition:
    """The daily-partitioned asset of a silver table, downstream of its topic's bronze."""
    topic = table.source_topic or ""
    bronze = CATALOG.bronze_for_topic(topic)

    @dg.asset(**daily_table(table, deps=[bronze]))
    def _silver(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> Results:
        dropped = {"duplicates_dropped": 0, "rows_rejected": 0}

        def build(settings: Settings, day: date, guard: Guard) -> pa.Table:
            result = build_silver_partition(settings, topic, day, guard)
            dropped["duplicates_dropped"] += result.duplicates
            dropped["rows_rejected"] += result.rejected.num_rows
            return result.rows

        def describe(rows: pa.Table, days: list[date]) -> dict[str, object]:
            return {
                **{name: dg.MetadataValue.int(count) for name, count in dropped.items()},
                "events_by_hour": hourly_volume(rows, days[-1].isoformat()),
            }

        yield from materialize_days(context, lakehouse.settings(), table, build, describe)

    return _silver


def hourly_volume(rows: pa.Table, day: str) -> dg.MetadataValue:
    """Events per UTC hour of one day, as a bar chart: gaps and spikes show at a glance."""
    hours = pc.hour(rows["event_time"]) if rows.num_rows else pa.array([], pa.int64())
    counts = pa.table({"hour": hours}).group_by("hour").aggregate([("hour", "count")])
    by_hour = dict(zip(counts["hour"].to_pylist(), counts["hour_count"].to_pylist(), strict=True))
    labels = [f"{hour:02d}:00" for hour in range(24)]
    values = [by_hour.get(hour, 0) for hour in range(24)]
    return bar_chart(f"Events per hour, {day} (UTC)", labels, values)
