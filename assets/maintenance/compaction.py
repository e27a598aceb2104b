"""Nightly compaction: one asset per layer compacts the day's partition of each of its
tables to target-size files, z-ordered by the catalog's columns.

Per layer rather than per table: the UI shows four compaction assets beside the tables
they maintain instead of thirty, and each reports per table in its metadata. A day is
compacted table by table, each under the table's lock, so memory stays that of one
partition. The blocking check `rows_preserved` compares every table's day before and
after its compaction commit (from the Delta log): a compaction that lost or duplicated
a row fails the step, and the figures say where.
"""

from collections.abc import Iterator

import dagster as dg
import pyarrow as pa

from assets.maintenance.common import maintenance_asset
from assets.metadata import bar_chart, markdown_table
from assets.partitions import DAILY, SINGLE_RUN, partition_days, partition_label
from assets.resources import LakehouseResource
from assets.tables import asset_key, maintenance_key
from lakehouse.catalog import CATALOG, REJECTED_ROWS, Layer, TableSpec
from lakehouse.delta import open_table
from lakehouse.maintenance.compaction import (
    CompactionResult,
    CompactionRowsChanged,
    compact_day,
)
from lakehouse.settings import Settings

ROWS_PRESERVED = "rows_preserved"
# A shell's `lakehouse maintain` may hold a table's lock; a run waits this long for it.
LOCK_WAIT_SECONDS = 600.0


def compacted_tables(layer: Layer) -> list[TableSpec]:
    """The tables of `layer` that the nightly compaction keeps: those partitioned by day."""
    return [spec for spec in CATALOG.in_layer(layer) if spec.date_partition is not None]


def compact_tables(
    settings: Settings, tables: list[TableSpec], days: list, dry_run: bool = False
) -> tuple[list[CompactionResult], list[CompactionRowsChanged]]:
    """Compact each day of each table that exists; a compaction that changed rows is
    collected, not raised, so every other table is still compacted and reported."""
    results, broken = [], []
    existing = [spec for spec in tables if open_table(spec, settings) is not None]
    for day in days:
        for spec in existing:
            try:
                result = compact_day(
                    spec, settings, day, dry_run=dry_run, lock_timeout=LOCK_WAIT_SECONDS
                )
                results.append(result)
            except CompactionRowsChanged as error:
                results.append(error.result)
                broken.append(error)
    return results, broken


def compaction_metadata(results: list[CompactionResult]) -> dict[str, object]:
    """Files, bytes and rows before and after per table, the totals, and a chart."""
    rows = pa.Table.from_pylist(
        [
            {
                "table": r.table,
                "day": r.day.isoformat(),
                "files": f"{r.files_before} → {r.files_after}",
                "MB": f"{r.bytes_before / 1e6:,.1f} → {r.bytes_after / 1e6:,.1f}",
                "rows": f"{r.rows_before:,} → {r.rows_after:,}",
                "z-order": ", ".join(r.zorder_by) or "",
                "version": f"{r.version_before} → {r.version_after}",
                "seconds": round(r.seconds, 2),
                "outcome": r.skipped or ("dry run" if r.dry_run else "compacted"),
            }
            for r in results
        ]
    )
    compacted = [r for r in results if r.compacted]
    metadata: dict[str, object] = {
        "tables": dg.MetadataValue.md(markdown_table(rows)) if rows.num_rows else "none",
        "files_before": dg.MetadataValue.int(sum(r.files_before for r in results)),
        "files_after": dg.MetadataValue.int(sum(r.files_after for r in results)),
        "bytes_before": dg.MetadataValue.int(sum(r.bytes_before for r in results)),
        "bytes_after": dg.MetadataValue.int(sum(r.bytes_after for r in results)),
        "tables_compacted": dg.MetadataValue.int(len(compacted)),
        "seconds": dg.MetadataValue.float(round(float(sum(r.seconds for r in results)), 2)),
    }
    if compacted:
        metadata["files_removed"] = bar_chart(
            "files before → after, per compacted table",
            [f"{r.table} {r.day}" for r in compacted],
            [r.files_before - r.files_after for r in compacted],
        )
    return metadata


def compaction_asset(layer: Layer) -> dg.AssetsDefinition:
    """`maintenance/<layer>_compaction`: the day's compaction of every table of `layer`."""
    tables = compacted_tables(layer)
    key = maintenance_key(f"{layer}_compaction")
    names = ", ".join(spec.name for spec in tables)

    @dg.asset(
        **maintenance_asset(
            f"{layer}_compaction",
            f"Compact each {layer} table's day partition to target-size files, z-ordered "
            f"by the catalog's columns: {names}.",
            # Every silver asset writes its rejected rows; that table has no asset of its own.
            deps=[asset_key(spec) for spec in tables if spec is not REJECTED_ROWS],
            partitions_def=DAILY,
            backfill_policy=SINGLE_RUN,
            check_specs=[
                dg.AssetCheckSpec(
                    ROWS_PRESERVED,
                    asset=key,
                    blocking=True,
                    description="Every compaction commit left its day's row count as it was "
                    "(Delta log statistics before and after the commit).",
                )
            ],
        )
    )
    def _compaction(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> Iterator[dg.MaterializeResult]:
        days = partition_days(context)
        results, broken = compact_tables(lakehouse.settings(), tables, days)
        for result in results:
            context.log.info(
                f"{result.table} {result.day}: {result.files_before} → {result.files_after} "
                f"files ({result.skipped or 'compacted'})"
            )
        metadata = compaction_metadata(results)
        metadata["partition"] = dg.MetadataValue.text(partition_label(days))
        check = dg.AssetCheckResult(
            check_name=ROWS_PRESERVED,
            passed=not broken,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"failures": dg.MetadataValue.text("; ".join(map(str, broken)) or "none")},
        )
        # A failed blocking check fails the step and stops what depends on it.
        yield dg.MaterializeResult(metadata=metadata, check_results=[check])

    return _compaction


bronze_compaction = compaction_asset(Layer.BRONZE)
silver_compaction = compaction_asset(Layer.SILVER)
gold_compaction = compaction_asset(Layer.GOLD)
models_compaction = compaction_asset(Layer.MODELS)
COMPACTION_ASSETS = [bronze_compaction, silver_compaction, gold_compaction, models_compaction]
