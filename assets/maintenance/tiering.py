"""Storage tiering as assets: the S3 lifecycle rules from the catalog, the tags that let
S3 expire files only old versions referenced, and the monthly storage cost report.

The rules are applied idempotently (nothing written when the bucket already has them);
on a local lake there is no lifecycle to apply and the asset says so. The cost report
reads the Delta logs only and checks itself against the seed's arithmetic.
"""

import dagster as dg

from assets.maintenance.common import maintenance_asset
from assets.maintenance.housekeeping import vacuum
from assets.resources import LakehouseResource
from assets.tables import maintenance_key
from lakehouse.catalog import CATALOG
from lakehouse.maintenance.costs import cost_chart, cost_report, seed_tiering_estimate
from lakehouse.maintenance.lifecycle import apply_lifecycle, tag_removed_files

SEED_ARITHMETIC = "reproduces_seed_arithmetic"


@dg.asset(
    **maintenance_asset(
        "s3_lifecycle",
        "Put each table's S3 lifecycle rules (Standard-IA after 30 days, Glacier Instant "
        "Retrieval after 180, expiry after retention; never `_delta_log/`) and tag the "
        "files only versions past the time-travel window reference, for S3 to expire.",
        deps=[vacuum],
        kinds=frozenset({"s3", "deltalake"}),
    )
)
def s3_lifecycle(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Apply the catalog's lifecycle rules to the lake's bucket and tag removed files."""
    settings = lakehouse.settings()
    result = apply_lifecycle(settings)
    hours = settings.maintenance_vacuum_retention_hours
    tagged = sum(
        tag_removed_files(spec, settings, retention_hours=hours)
        for spec in CATALOG.tables.values()
    )
    context.log.info(result.note or f"lifecycle rules of {result.bucket}: {len(result.added)} "
                     f"added, {len(result.changed)} changed, {len(result.unchanged)} unchanged")
    return dg.MaterializeResult(
        metadata={
            "bucket": dg.MetadataValue.text(result.bucket or "none (local lake)"),
            "rules_added": dg.MetadataValue.int(len(result.added)),
            "rules_changed": dg.MetadataValue.int(len(result.changed)),
            "rules_unchanged": dg.MetadataValue.int(len(result.unchanged)),
            "rules_removed": dg.MetadataValue.int(len(result.removed)),
            "foreign_rules_kept": dg.MetadataValue.int(result.foreign),
            "configuration_written": dg.MetadataValue.bool(result.written),
            "removed_files_tagged": dg.MetadataValue.int(tagged),
            "note": dg.MetadataValue.text(result.note or ""),
        }
    )


@dg.asset(
    **maintenance_asset(
        "storage_costs",
        "Bytes per table and age band from the Delta logs, and the monthly S3 cost with and "
        "without tiering at the documented prices.",
        deps=[s3_lifecycle],
        check_specs=[
            dg.AssetCheckSpec(
                SEED_ARITHMETIC,
                asset=maintenance_key("storage_costs"),
                description="The cost model gives the seed's $34,500 a month for 1.5 PB in "
                "S3 Standard, and its tiered figure beside the seed's $12,000.",
            )
        ],
    )
)
def storage_costs(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """The cost report of today's lake, as a chart and a table, and the seed check."""
    report = cost_report(lakehouse.settings())
    seed = seed_tiering_estimate()
    context.log.info(
        f"{report.total_bytes:,} bytes: ${report.tiered_usd:,.4f}/month tiered, "
        f"${report.standard_usd:,.4f} all Standard"
    )
    check = dg.AssetCheckResult(
        check_name=SEED_ARITHMETIC,
        passed=abs(seed.all_standard_usd - 34_500) < 0.5,
        metadata={
            "stored_tb": dg.MetadataValue.float(seed.stored_tb),
            "all_standard_usd": dg.MetadataValue.float(round(seed.all_standard_usd, 2)),
            "tiered_usd": dg.MetadataValue.float(round(seed.tiered_usd, 2)),
            "seed_tiered_usd": dg.MetadataValue.float(seed.seed_tiered_usd),
        },
    )
    return dg.MaterializeResult(
        metadata={
            "bytes": dg.MetadataValue.int(report.total_bytes),
            "usd_per_month_standard": dg.MetadataValue.float(round(report.standard_usd, 6)),
            "usd_per_month_tiered": dg.MetadataValue.float(round(report.tiered_usd, 6)),
            "report": dg.MetadataValue.md(cost_chart(report)),
        },
        check_results=[check],
    )
