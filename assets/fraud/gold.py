"""Fraud gold: per holder and day, lifetime profiles as of each day, daily fraud stats."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_asset
from assets.metadata import bar_chart, preview
from assets.tables import asset_key
from lakehouse.catalog import (
    GOLD_FRAUD_DAILY_STATS,
    GOLD_FRAUD_USER_DAILY,
    GOLD_FRAUD_USER_PROFILES,
    SILVER_TRANSACTIONS,
)
from lakehouse.transforms.fraud import (
    build_fraud_daily_stats_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_rate_by_category,
)

# Profile D depends on every fraud_user_daily day up to and including D, and on none after
# it: a window from far before the first partition (clipped to it) to D itself. Dagster's
# AllPartitionMapping would also tie D to every later day, so a new day would mark all the
# earlier profiles stale although they are snapshots as of their own day.
_UP_TO_THIS_DAY = dg.TimeWindowPartitionMapping(start_offset=-100_000, end_offset=0)


def _fraud_count(rows: pa.Table, days: list[date]) -> dict[str, object]:
    fraud = pc.sum(rows["fraud_transactions"]).as_py() or 0
    return {"fraud_transactions_last_day": dg.MetadataValue.int(fraud)}


def _most_defrauded(profiles: pa.Table, days: list[date]) -> dict[str, object]:
    with_fraud = profiles.filter(pc.field("fraud_transactions") > 0)
    shown = [
        "user_id",
        "transactions",
        "fraud_transactions",
        "home_country",
        "distinct_countries",
        "distinct_devices",
        "avg_amount",
        "max_amount",
    ]
    ranked = with_fraud.sort_by([("fraud_transactions", "descending"), ("user_id", "ascending")])
    return {
        "holders": dg.MetadataValue.int(profiles.num_rows),
        "holders_with_fraud": dg.MetadataValue.int(with_fraud.num_rows),
        "most_defrauded_holders": preview(ranked.select(shown), limit=5),
    }


def _fraud_rate_chart(stats: pa.Table, days: list[date]) -> dict[str, object]:
    by_category = fraud_rate_by_category(stats)  # the last day of the run
    return {
        "riskiest_categories": preview(by_category, limit=5),
        "fraud_rate_by_category": bar_chart(
            f"Fraud rate by merchant category, {days[-1].isoformat()}",
            by_category["merchant_category"].to_pylist(),
            by_category["fraud_rate"].to_pylist(),
        ),
    }


gold_fraud_user_daily = daily_asset(
    GOLD_FRAUD_USER_DAILY,
    build_fraud_user_daily_partition,
    deps=[SILVER_TRANSACTIONS],
    describe=_fraud_count,
)
# In order: each day's profiles read only the daily rows up to it.
gold_fraud_user_profiles = daily_asset(
    GOLD_FRAUD_USER_PROFILES,
    build_fraud_user_profiles_partition,
    deps=[dg.AssetDep(asset_key(GOLD_FRAUD_USER_DAILY), partition_mapping=_UP_TO_THIS_DAY)],
    describe=_most_defrauded,
)
gold_fraud_daily_stats = daily_asset(
    GOLD_FRAUD_DAILY_STATS,
    build_fraud_daily_stats_partition,
    deps=[SILVER_TRANSACTIONS],
    describe=_fraud_rate_chart,
)
