"""One silver asset per topic, all built the same way from `lakehouse.transforms.silver`."""

from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
from dagster_pyspark import LazyPySparkResource

from assets.daily import Results, daily_table, materialize_days
from assets.metadata import bar_chart
from assets.resources import LakehouseResource, transform_on_engine
from lakehouse.catalog import CATALOG, TableSpec
from lakehouse.settings import Settings
from lakehouse.transforms.engine import row_count
from lakehouse.transforms.silver import build_silver_partition
from lakehouse.transforms.tables import Guard, ParquetDays, run_sql


def silver_asset(table: TableSpec) -> dg.AssetsDefinition:
    """The daily-partitioned asset of a silver table, downstream of its topic's bronze."""
    topic = table.source_topic or ""
    bronze = CATALOG.bronze_for_topic(topic)

    @dg.asset(**daily_table(table, deps=[bronze]))
    def _silver(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, spark: LazyPySparkResource
    ) -> Results:
        settings = lakehouse.settings()
        build_day = transform_on_engine(context, settings, spark, build_silver_partition)
        dropped = {"duplicates_dropped": 0, "rows_rejected": 0}

        def build(settings: Settings, day: date, guard: Guard) -> Any:
            result = build_day(settings, topic, day, guard)
            dropped["duplicates_dropped"] += result.duplicates
            dropped["rows_rejected"] += row_count(result.rejected)
            return result.rows

        def describe(rows: Any, days: list[date]) -> dict[str, object]:
            return {
                **{name: dg.MetadataValue.int(count) for name, count in dropped.items()},
                "events_by_hour": hourly_volume(events_per_hour(rows), days[-1].isoformat()),
            }

        yield from materialize_days(context, settings, table, build, describe)

    return _silver


def events_per_hour(rows: Any) -> dict[int, int]:
    """Rows per UTC hour of `event_time`, counted where the rows are: by DuckDB over Arrow
    or over the day's files (a lazy scan reads only that column), or by Spark for a
    DataFrame (a day of silver is not collected to the driver for a chart)."""
    if isinstance(rows, pa.Table | ds.Dataset | ParquetDays):
        counts = run_sql(
            "SELECT hour(event_time) AS hour, count(*) AS n FROM day GROUP BY ALL", day=rows
        )
        return dict(zip(counts["hour"].to_pylist(), counts["n"].to_pylist(), strict=True))
    from pyspark.sql import functions as F

    by_hour = rows.groupBy(F.hour("event_time").alias("hour")).count().collect()
    return {row["hour"]: row["count"] for row in by_hour}


def hourly_volume(by_hour: dict[int, int], day: str) -> dg.MetadataValue:
    """Events per UTC hour of one day, as a bar chart: gaps and spikes show at a glance."""
    labels = [f"{hour:02d}:00" for hour in range(24)]
    values = [by_hour.get(hour, 0) for hour in range(24)]
    return bar_chart(f"Events per hour, {day} (UTC)", labels, values)
