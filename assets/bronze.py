"""Bronze tables as observed external assets: the ingest sidecar writes them, Dagster
records their Delta version (the data version), row count and last commit time."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from lakehouse.catalog import CATALOG, Layer
from lakehouse.delta import open_table, table_stats
from orchestration.resources import LakehouseResource

BRONZE_SPECS = [
    dg.AssetSpec(
        key=["bronze", spec.name],
        description=spec.description,
        group_name=spec.domain.value,
        kinds={"deltalake", "kafka"},
        owners=["team:data-platform"],
        tags={"layer": "bronze"},
    )
    for spec in CATALOG.in_layer(Layer.BRONZE)
]


@dg.multi_observable_source_asset(specs=BRONZE_SPECS, can_subset=True)
def bronze_tables(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> Iterator[dg.ObserveResult]:
    """Observe each selected bronze table's Delta version, rows and last commit."""
    settings = lakehouse.settings()
    for key in context.selected_asset_keys:
        spec = CATALOG.table(".".join(key.path))
        table = open_table(spec, settings)
        stats = table_stats(spec, settings)
        if table is None or stats is None:
            yield dg.ObserveResult(asset_key=key, metadata={"exists": False})
            continue
        committed = table.history(1)[0]["timestamp"] / 1000
        yield dg.ObserveResult(
            asset_key=key,
            data_version=dg.DataVersion(str(stats.version)),
            metadata={
                "dagster/row_count": dg.MetadataValue.int(stats.rows),
                "delta_version": dg.MetadataValue.int(stats.version),
                "table_files": dg.MetadataValue.int(stats.files),
                "last_commit": dg.MetadataValue.timestamp(datetime.fromtimestamp(committed, UTC)),
            },
        )
