"""Fraud gold: per holder and day, lifetime profiles as of each day, daily fraud stats, and
the decision service's daily precision and recall against the ground truth."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_asset
from assets.metadata import bar_chart, preview
from assets.tables import asset_key
from lakehouse.catalog import (
    GOLD_FRAUD_DAILY_STATS,
    GOLD_FRAUD_DECISION_QUALITY,
    GOLD_FRAUD_USER_DAILY,
    GOLD_FRAUD_USER_PROFILES,
    SILVER_FRAUD_DECISIONS,
    SILVER_TRANSACTIONS,
)
from lakehouse.transforms.fraud import (
    DECISIONS,
    build_fraud_daily_stats_partition,
    build_fraud_decision_quality_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_rate_by_category,
)

# Profile D depends on every fraud_user_daily day up to and including D, and on none after
# it: a window from far before the first partition (clipped to it) to D itself. Dagster's
# AllPartitionMapping would also tie D to every later day, so a new day would mark all the
# earlier profiles stale although they are snapshots as of their own day.
_UP_TO_THIS_DAY = dg.TimeWindowPartitionMapping(start_offset=-100_000, end_offset=0)
# A day's decisions are judged with the labels of that day's transactions and the day
# before's (a payment just before midnight may be decided after it).
_THIS_DAY_AND_THE_DAY_BEFORE = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)


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


def _decision_quality(rows: pa.Table, days: list[date]) -> dict[str, object]:
    if rows.num_rows == 0:
        return {"decisions_last_day": dg.MetadataValue.int(0)}
    (day,) = rows.to_pylist()

    def share(name: str) -> dg.MetadataValue:
        value = day[name]
        return dg.MetadataValue.float(value) if value is not None else dg.MetadataValue.null()

    shown = ("block", "review_or_block")
    return {
        "decisions_last_day": dg.MetadataValue.int(day["decisions"]),
        "labelled_last_day": dg.MetadataValue.int(day["labelled"]),
        **{f"{kind}_{measure}": share(f"{kind}_{measure}")
           for kind in shown for measure in ("precision", "recall")},
        "block_false_positive_rate": share("block_false_positive_rate"),
        "decisions_by_kind": bar_chart(
            f"Decisions, {days[-1].isoformat()}",
            list(DECISIONS),
            [day["approved"], day["reviewed"], day["blocked"]],
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
gold_fraud_decision_quality = daily_asset(
    GOLD_FRAUD_DECISION_QUALITY,
    build_fraud_decision_quality_partition,
    deps=[
        SILVER_FRAUD_DECISIONS,
        dg.AssetDep(asset_key(SILVER_TRANSACTIONS), partition_mapping=_THIS_DAY_AND_THE_DAY_BEFORE),
    ],
    describe=_decision_quality,
)
