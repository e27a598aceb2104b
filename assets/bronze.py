"""Bronze tables as observed external assets: the ingest sidecar writes them, Dagster
records their Delta version, row count and last commit time, and as data version the
version of the last commit that changed data (compactions do not).

Two paths record the same observation: the `observe_bronze` job (this observable source,
run by the demo, the CLI or the UI's "Observe sources"), and the bronze sensor, which
reports an observation for every table that advanced as it ticks, so the asset pages stay
current without a run every few minutes. A freshness check (`bronze_freshness`: GX over
the newest rows' `_ingested_at`) warns when a table stops receiving data.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.checks import check_results
from assets.resources import LakehouseResource
from assets.tables import asset_key, check_specs
from lakehouse.catalog import CATALOG, Layer, TableSpec
from lakehouse.delta import last_data_version, open_table, snapshot_stats
from lakehouse.settings import Settings
from lakehouse.transforms.tables import read_days
from quality.gate import QualityGate

BRONZE_SPECS = [
    dg.AssetSpec(
        key=asset_key(spec),
        description=spec.description,
        group_name=spec.domain.value,
        kinds={"deltalake", "kafka"},
        owners=[spec.domain.owner],
        tags={"layer": spec.layer.value},
    )
    for spec in CATALOG.in_layer(Layer.BRONZE)
]


def bronze_observation(spec: TableSpec, settings: Settings) -> dg.AssetObservation:
    """A bronze table's state from its Delta log: rows, files, last commit, and as data
    version the version of its last data-changing commit (a compaction changes no data,
    so it must not mark what was built from the table stale); `exists: False` for a table
    not created yet."""
    key = asset_key(spec)
    table = open_table(spec, settings)
    if table is None:
        return dg.AssetObservation(asset_key=key, metadata={"exists": False})
    # One snapshot for every figure: opening the table twice could pair one commit's
    # version with another's row count.
    stats = snapshot_stats(spec, table)
    committed = table.history(1)[0]["timestamp"] / 1000
    return dg.AssetObservation(
        asset_key=key,
        tags={"dagster/data_version": str(last_data_version(table))},
        metadata={
            "dagster/row_count": dg.MetadataValue.int(stats.rows),
            "delta_version": dg.MetadataValue.int(stats.version),
            "table_files": dg.MetadataValue.int(stats.files),
            "last_commit": dg.MetadataValue.timestamp(datetime.fromtimestamp(committed, UTC)),
        },
    )


@dg.multi_observable_source_asset(specs=BRONZE_SPECS, can_subset=True)
def bronze_tables(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> Iterator[dg.ObserveResult]:
    """Observe each selected bronze table's Delta version, rows and last commit."""
    settings = lakehouse.settings()
    for key in context.selected_asset_keys:
        observation = bronze_observation(CATALOG.table(".".join(key.path)), settings)
        version = observation.tags.get("dagster/data_version")
        yield dg.ObserveResult(
            asset_key=key,
            data_version=dg.DataVersion(version) if version is not None else None,
            metadata=observation.metadata,
        )


FRESHNESS_SPECS = [spec for table in CATALOG.landed_tables() for spec in check_specs(table)]


@dg.multi_asset_check(specs=FRESHNESS_SPECS, can_subset=True)
def bronze_freshness(
    context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
) -> Iterator[dg.AssetCheckResult]:
    """Each selected bronze table's newest row (last two event days) landed recently."""
    settings = lakehouse.settings()
    today = datetime.now(UTC).date()
    gate = QualityGate(settings)
    for check_key in context.selected_asset_check_keys:
        table = CATALOG.table(".".join(check_key.asset_key.path))
        rows = read_days(
            settings, table, ["event_id", "_ingested_at"], today - timedelta(days=1), today
        )
        gate(table, today, rows)  # warnings only: never raises
        yield from check_results(gate, table)
