"""Weekly housekeeping: retention deletes the day partitions past each table's retention,
then VACUUM deletes the files no version inside the time-travel window needs, writes a
checkpoint and cleans the expired log.

Retention runs first so that VACUUM, a week later, frees what it removed: between the
two, time travel can still read an expired day. Whether retention deletes or only lists
is the profile's (`Settings.retention_enforced`: a dry run locally, deletion in
production-like); the metadata says which.
"""

from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from assets.maintenance.common import maintenance_asset
from assets.maintenance.compaction import COMPACTION_ASSETS, LOCK_WAIT_SECONDS
from assets.metadata import markdown_table
from assets.resources import LakehouseResource
from lakehouse.catalog import CATALOG
from lakehouse.maintenance.retention import apply_retention
from lakehouse.maintenance.vacuum import vacuum_table


@dg.asset(
    **maintenance_asset(
        "retention",
        "Delete each table's day partitions older than its catalogued retention (7 years "
        "for the fraud audit trail, 5 for IoT gold); a dry run that lists them in the local "
        "profile.",
    )
)
def retention(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Apply every catalogued table's retention as of today (UTC)."""
    settings = lakehouse.settings()
    dry_run = not settings.retention_enforced
    today = datetime.now(UTC).date()
    results = [
        apply_retention(spec, settings, today, dry_run=dry_run, lock_timeout=LOCK_WAIT_SECONDS)
        for spec in CATALOG.tables.values()
    ]
    expired = [
        {
            "table": result.table,
            "day": partition.day.isoformat(),
            "files": partition.files,
            "rows": partition.rows,
            "bytes": partition.bytes,
        }
        for result in results
        for partition in result.partitions
    ]
    context.log.info(
        f"{len(expired)} expired partitions {'listed (dry run)' if dry_run else 'deleted'}"
    )
    return dg.MaterializeResult(
        metadata={
            "dry_run": dg.MetadataValue.bool(dry_run),
            "partitions_expired": dg.MetadataValue.int(len(expired)),
            "rows_expired": dg.MetadataValue.int(sum(row["rows"] for row in expired)),
            "bytes_expired": dg.MetadataValue.int(sum(row["bytes"] for row in expired)),
            "expired": dg.MetadataValue.md(
                markdown_table(pa.Table.from_pylist(expired)) if expired else "none"
            ),
            "cutoffs": dg.MetadataValue.md(
                markdown_table(
                    pa.Table.from_pylist(
                        [
                            {"table": r.table, "keeps from": str(r.cutoff), "note": r.skipped or ""}
                            for r in results
                            if r.cutoff is not None or r.skipped
                        ]
                    )
                )
            ),
        }
    )


@dg.asset(
    **maintenance_asset(
        "vacuum",
        "VACUUM every table (files removed longer ago than the time-travel window), then "
        "a checkpoint and the expired log's cleanup.",
        deps=[retention, *COMPACTION_ASSETS],
    )
)
def vacuum(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Vacuum, checkpoint and clean the log of every catalogued table that exists."""
    settings = lakehouse.settings()
    results = [vacuum_table(spec, settings) for spec in CATALOG.tables.values()]
    results = [result for result in results if result.version is not None]
    rows = pa.Table.from_pylist(
        [
            {
                "table": r.table,
                "files removed": r.files_removed,
                "MB removed": round(r.bytes_removed / 1e6, 2),
                "checkpoint": r.checkpoint_version,
                "log files removed": r.log_files_removed,
                "oldest readable version": r.oldest_readable_version,
                "seconds": round(r.seconds, 2),
            }
            for r in results
        ]
    )
    context.log.info(f"vacuumed {len(results)} tables")
    return dg.MaterializeResult(
        metadata={
            "retention_hours": dg.MetadataValue.int(settings.maintenance_vacuum_retention_hours),
            "files_removed": dg.MetadataValue.int(sum(r.files_removed for r in results)),
            "bytes_removed": dg.MetadataValue.int(sum(r.bytes_removed for r in results)),
            "log_files_removed": dg.MetadataValue.int(sum(r.log_files_removed for r in results)),
            "tables": dg.MetadataValue.md(markdown_table(rows) if rows.num_rows else "none"),
        }
    )
