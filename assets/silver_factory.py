"""One silver asset per topic, all built the same way from `lakehouse.transforms.silver`."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_table
from assets.metadata import bar_chart, table_metadata
from assets.partitions import partition_days, partition_label
from lakehouse.catalog import CATALOG
from lakehouse.transforms.silver import build_silver_partition
from orchestration.resources import LakehouseResource


def silver_asset(topic: str, owner: str) -> dg.AssetsDefinition:
    """The daily-partitioned silver asset of one topic, downstream of its bronze table."""
    spec = CATALOG.table(f"silver.{topic}")

    @dg.asset(**daily_table(spec.key, owner, deps=[dg.AssetKey(["bronze", topic])]))
    def _silver(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        settings = lakehouse.settings()
        days = partition_days(context)
        rows = duplicates = rejected = 0
        for day in days:
            result = build_silver_partition(settings, topic, day)
            rows += result.rows.num_rows
            duplicates += result.duplicates
            rejected += result.rejected.num_rows
            context.log.info(f"{spec.key} {day}: {result.rows.num_rows:,} rows")
        metadata = table_metadata(spec, settings, rows, partition_label(days))
        metadata["duplicates_dropped"] = dg.MetadataValue.int(duplicates)
        metadata["rows_rejected"] = dg.MetadataValue.int(rejected)
        metadata["events_by_hour"] = hourly_volume(result.rows, days[-1].isoformat())
        return dg.MaterializeResult(metadata=metadata)

    return _silver


def hourly_volume(rows: pa.Table, day: str) -> dg.MetadataValue:
    """Events per UTC hour of one day, as a bar chart: gaps and spikes show at a glance."""
    hours = pc.hour(rows["event_time"]) if rows.num_rows else pa.array([], pa.int64())
    counts = pa.table({"hour": hours}).group_by("hour").aggregate([("hour", "count")])
    by_hour = dict(zip(counts["hour"].to_pylist(), counts["hour_count"].to_pylist(), strict=True))
    labels = [f"{hour:02d}:00" for hour in range(24)]
    values = [by_hour.get(hour, 0) for hour in range(24)]
    return bar_chart(f"Events per hour, {day} (UTC)", labels, values)
