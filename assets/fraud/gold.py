"""Fraud gold: per holder and day, lifetime profiles as of each day, daily fraud stats."""

import dagster as dg
import pyarrow.compute as pc

from assets.fraud.silver import silver_transactions
from assets.metadata import bar_chart, preview, table_metadata
from assets.partitions import DAILY, SINGLE_RUN, partition_days, partition_label
from lakehouse.catalog import CATALOG
from lakehouse.transforms.fraud import (
    build_fraud_daily_stats_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_rate_by_category,
)
from orchestration.resources import LakehouseResource

_GOLD = {
    "partitions_def": DAILY,
    "backfill_policy": SINGLE_RUN,
    "group_name": "fraud",
    "kinds": {"deltalake", "duckdb"},
    "owners": ["team:risk"],
    "tags": {"layer": "gold"},
    "retry_policy": dg.RetryPolicy(max_retries=2, delay=10),
}


@dg.asset(key=["gold", "fraud_user_daily"], deps=[silver_transactions], **_GOLD)
def gold_fraud_user_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per card holder and day: amount sums, distinct countries/merchants/devices/cards, fraud."""
    settings = lakehouse.settings()
    days = partition_days(context)
    written = fraud = 0
    for day in days:
        rows = build_fraud_user_daily_partition(settings, day)
        written += rows.num_rows
        fraud += pc.sum(rows["fraud_transactions"]).as_py() or 0
    metadata = table_metadata(
        CATALOG.table("gold.fraud_user_daily"), settings, written, partition_label(days)
    )
    metadata["fraud_transactions"] = dg.MetadataValue.int(fraud)
    return dg.MaterializeResult(metadata=metadata)


# Profile D depends on every fraud_user_daily day up to and including D, and on none after
# it: a window from far before the first partition (clipped to it) to D itself. Dagster's
# AllPartitionMapping would also tie D to every later day, so a new day would mark all the
# earlier profiles stale although they are snapshots as of their own day.
_UP_TO_THIS_DAY = dg.TimeWindowPartitionMapping(start_offset=-100_000, end_offset=0)


@dg.asset(
    key=["gold", "fraud_user_profiles"],
    deps=[dg.AssetDep(gold_fraud_user_daily, partition_mapping=_UP_TO_THIS_DAY)],
    **_GOLD,
)
def gold_fraud_user_profiles(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Lifetime profile per card holder as of each day, for the online fraud service."""
    settings = lakehouse.settings()
    days = partition_days(context)
    written = 0
    for day in days:  # in order: each day's profiles read only the daily rows up to it
        profiles = build_fraud_user_profiles_partition(settings, day)
        written += profiles.num_rows
    metadata = table_metadata(
        CATALOG.table("gold.fraud_user_profiles"), settings, written, partition_label(days)
    )
    with_fraud = profiles.filter(pc.field("fraud_transactions") > 0)
    metadata["holders"] = dg.MetadataValue.int(profiles.num_rows)
    metadata["holders_with_fraud"] = dg.MetadataValue.int(with_fraud.num_rows)
    metadata["most_defrauded_holders"] = preview(
        with_fraud.sort_by([("fraud_transactions", "descending"), ("user_id", "ascending")]).select(
            [
                "user_id",
                "transactions",
                "fraud_transactions",
                "home_country",
                "distinct_countries",
                "distinct_devices",
                "avg_amount",
                "max_amount",
            ]
        ),
        limit=5,
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(key=["gold", "fraud_daily_stats"], deps=[silver_transactions], **_GOLD)
def gold_fraud_daily_stats(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per day, merchant category and channel: volumes, fraud rate, counts per fraud pattern."""
    settings = lakehouse.settings()
    days = partition_days(context)
    written = 0
    for day in days:
        stats = build_fraud_daily_stats_partition(settings, day)
        written += stats.num_rows
    metadata = table_metadata(
        CATALOG.table("gold.fraud_daily_stats"), settings, written, partition_label(days)
    )
    by_category = fraud_rate_by_category(stats)  # the last day of the run
    metadata["riskiest_categories"] = preview(by_category, limit=5)
    metadata["fraud_rate_by_category"] = bar_chart(
        f"Fraud rate by merchant category, {days[-1].isoformat()}",
        by_category["merchant_category"].to_pylist(),
        by_category["fraud_rate"].to_pylist(),
    )
    return dg.MaterializeResult(metadata=metadata)
