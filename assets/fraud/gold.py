"""Fraud gold: per holder and day, lifetime profiles as of each day, daily fraud stats."""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_table, materialize_days
from assets.fraud.silver import silver_transactions
from assets.metadata import bar_chart, preview
from lakehouse.transforms.fraud import (
    build_fraud_daily_stats_partition,
    build_fraud_user_daily_partition,
    build_fraud_user_profiles_partition,
    fraud_rate_by_category,
)
from orchestration.resources import LakehouseResource

_OWNER = "team:risk"
_Results = Iterator[dg.MaterializeResult | dg.AssetCheckResult]


@dg.asset(**daily_table("gold.fraud_user_daily", _OWNER, deps=[silver_transactions]))
def gold_fraud_user_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> _Results:
    """Per card holder and day: amount sums, distinct countries/merchants/devices/cards, fraud."""
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.fraud_user_daily",
        build_fraud_user_daily_partition,
        _fraud_count,
    )


def _fraud_count(rows: pa.Table, days: list[date]) -> dict[str, object]:
    fraud = pc.sum(rows["fraud_transactions"]).as_py() or 0
    return {"fraud_transactions_last_day": dg.MetadataValue.int(fraud)}


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
) -> _Results:
    """Lifetime profile per card holder as of each day, for the online fraud service."""
    # In order: each day's profiles read only the daily rows up to it.
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.fraud_user_profiles",
        build_fraud_user_profiles_partition,
        _most_defrauded,
    )


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


@dg.asset(**daily_table("gold.fraud_daily_stats", _OWNER, deps=[silver_transactions]))
def gold_fraud_daily_stats(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> _Results:
    """Per day, merchant category and channel: volumes, fraud rate, counts per fraud pattern."""
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.fraud_daily_stats",
        build_fraud_daily_stats_partition,
        _fraud_rate_chart,
    )


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
