"""One silver asset per topic, all built the same way from `lakehouse.transforms.silver`."""

import dagster as dg

from assets.metadata import table_metadata
from assets.partitions import DAILY, partition_day
from lakehouse.catalog import CATALOG
from lakehouse.transforms.silver import build_silver_partition
from orchestration.resources import LakehouseResource


def silver_asset(topic: str, owner: str) -> dg.AssetsDefinition:
    """The daily-partitioned silver asset of one topic, downstream of its bronze table."""
    spec = CATALOG.table(f"silver.{topic}")

    @dg.asset(
        key=["silver", topic],
        description=spec.description,
        deps=[dg.AssetKey(["bronze", topic])],
        partitions_def=DAILY,
        group_name=spec.domain.value,
        kinds={"deltalake", "duckdb"},
        owners=[owner],
        tags={"layer": "silver"},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
    )
    def _silver(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        settings = lakehouse.settings()
        result = build_silver_partition(settings, topic, partition_day(context))
        metadata = table_metadata(spec, settings, result.rows)
        metadata["duplicates_dropped"] = dg.MetadataValue.int(result.duplicates)
        metadata["rows_rejected"] = dg.MetadataValue.int(result.rejected.num_rows)
        return dg.MaterializeResult(metadata=metadata)

    return _silver
