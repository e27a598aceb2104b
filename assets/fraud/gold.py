"""Fraud gold: per holder and day, lifetime profiles as of each day, daily fraud stats."""

import dagster as dg
import pyarrow.compute as pc

from assets.daily import build_each_day, daily_table
from assets.fraud.silver import silver_transactions
from assets.metadata import bar_chart, preview
from assets.partitions import partition_days
from lakehouse.transforms.fraud import (
    build_fraud_daily_stats_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_rate_by_category,
)
from orchestration.resources import LakehouseResource

_OWNER = "team:risk"


@dg.asset(**daily_table("gold.fraud_user_daily", _OWNER, deps=[silver_transactions]))
def gold_fraud_user_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per card holder and day: amount sums, distinct countries/merchants/devices/cards, fraud."""
    settings = lakehouse.settings()
    metadata, rows = build_each_day(
        context, settings, "gold.fraud_user_daily", build_fraud_user_daily_partition
    )
    fraud = pc.sum(rows["fraud_transactions"]).as_py() or 0
    metadata["fraud_transactions_last_day"] = dg.MetadataValue.int(fraud)
    return dg.MaterializeResult(metadata=metadata)


# Profile D depends on every fraud_user_daily day up to and including D, and on none after
# it: a window from far before the first partition (clipped to it) to D itself. Dagster's
# AllPartitionMapping would also tie D to every later day, so a new day would mark all the
# earlier profiles stale although they are snapshots as of their own day.
_UP_TO_THIS_DAY = dg.TimeWindowPartitionMapping(start_offset=-100_000, end_offset=0)


@dg.asset(
    **daily_table(
        "gold.fraud_user_profiles",
        _OWNER,
        deps=[dg.AssetDep(gold_fraud_user_daily, partition_mapping=_UP_TO_THIS_DAY)],
    )
)
def gold_fraud_user_profiles(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Lifetime profile per card holder as of each day, for the online fraud service."""
    settings = lakehouse.settings()
    # In order: each day's profiles read only the daily rows up to it.
    metadata, profiles = build_each_day(
        context, settings, "gold.fraud_user_profiles", build_fraud_user_profiles_partition
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


@dg.asset(**daily_table("gold.fraud_daily_stats", _OWNER, deps=[silver_transactions]))
def gold_fraud_daily_stats(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    """Per day, merchant category and channel: volumes, fraud rate, counts per fraud pattern."""
    settings = lakehouse.settings()
    metadata, stats = build_each_day(
        context, settings, "gold.fraud_daily_stats", build_fraud_daily_stats_partition
    )
    days = partition_days(context)
    by_category = fraud_rate_by_category(stats)  # the last day of the run
    metadata["riskiest_categories"] = preview(by_category, limit=5)
    metadata["fraud_rate_by_category"] = bar_chart(
        f"Fraud rate by merchant category, {days[-1].isoformat()}",
        by_category["merchant_category"].to_pylist(),
        by_category["fraud_rate"].to_pylist(),
    )
    return dg.MaterializeResult(metadata=metadata)
