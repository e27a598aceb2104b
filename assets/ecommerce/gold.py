"""E-commerce gold: user activity and 30-day features, product funnel and trends, A/B test.

Thin assets over `lakehouse.transforms.ecommerce`: each rebuilds its daily partitions
(in order, for a ranged run) and reports what it wrote. The windowed snapshots depend on
the days before theirs through a time-window partition mapping.
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_table, materialize_days
from assets.ecommerce.silver import (
    silver_cart_events,
    silver_clickstream,
    silver_purchases,
    silver_search,
)
from assets.metadata import bar_chart, preview
from lakehouse.transforms import ecommerce
from orchestration.resources import LakehouseResource

_OWNER = "team:personalization"


def _window(days: int) -> dg.TimeWindowPartitionMapping:
    """The partition's day and the `days - 1` before it; days before the start are skipped."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-(days - 1), allow_nonexistent_upstream_partitions=True
    )


_Results = Iterator[dg.MaterializeResult | dg.AssetCheckResult]


@dg.asset(
    **daily_table(
        "gold.user_activity_daily",
        _OWNER,
        deps=[silver_clickstream, silver_cart_events, silver_search, silver_purchases],
    )
)
def gold_user_activity_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> _Results:
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.user_activity_daily",
        ecommerce.build_user_activity_daily_partition,
    )


@dg.asset(
    **daily_table(
        "gold.user_features",
        _OWNER,
        deps=[
            dg.AssetDep(
                gold_user_activity_daily,
                partition_mapping=_window(ecommerce.FEATURE_WINDOW_DAYS),
            )
        ],
    )
)
def gold_user_features(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> _Results:
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.user_features",
        ecommerce.build_user_features_partition,
        _favourite_categories,
    )


def _favourite_categories(rows: pa.Table, days: list[date]) -> dict[str, object]:
    if not rows.num_rows:
        return {}
    favourites = pc.list_flatten(pc.list_slice(rows["top_categories"], 0, 1))
    counts = (
        pa.table({"category": favourites})
        .group_by("category")
        .aggregate([("category", "count")])
        .sort_by([("category_count", "descending"), ("category", "ascending")])
    )
    return {
        "favourite_categories": bar_chart(
            f"Users by most viewed category over 30 days, as of {days[-1]}",
            counts["category"].to_pylist(),
            counts["category_count"].to_pylist(),
        )
    }


@dg.asset(
    **daily_table(
        "gold.product_daily",
        _OWNER,
        deps=[silver_clickstream, silver_cart_events, silver_purchases],
    )
)
def gold_product_daily(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> _Results:
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.product_daily",
        ecommerce.build_product_daily_partition,
        _top_products,
    )


def _top_products(rows: pa.Table, days: list[date]) -> dict[str, object]:
    top = rows.sort_by([("views", "descending"), ("product_id", "ascending")]).slice(0, 10)
    labels = [
        f"{product} ({category})"
        for product, category in zip(
            top["product_id"].to_pylist(), top["category"].to_pylist(), strict=True
        )
    ]
    return {
        "top_products_by_views": bar_chart(
            f"Top 10 products by views, {days[-1]}", labels, top["views"].to_pylist()
        )
    }


@dg.asset(
    **daily_table(
        "gold.product_trending",
        _OWNER,
        deps=[
            dg.AssetDep(
                gold_product_daily,
                partition_mapping=_window(ecommerce.TRENDING_BASELINE_DAYS + 1),
            )
        ],
    )
)
def gold_product_trending(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> _Results:
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.product_trending",
        ecommerce.build_product_trending_partition,
        _popular_and_trending,
    )


def _popular_and_trending(rows: pa.Table, days: list[date]) -> dict[str, object]:
    shown = [
        "popularity_rank",
        "product_id",
        "category",
        "views",
        "purchases",
        "revenue",
        "popularity_score",
        "trending_score",
    ]
    trending = rows.filter(pc.is_valid(rows["trending_rank"])).sort_by("trending_rank")
    return {
        "most_popular": preview(rows.select(shown)),  # rows come in popularity order
        "trending": preview(
            trending.select(
                [
                    "trending_rank",
                    "product_id",
                    "category",
                    "views",
                    "baseline_views",
                    "trending_score",
                ]
            )
        ),
    }


@dg.asset(
    **daily_table(
        "gold.ab_test_daily",
        _OWNER,
        deps=[silver_clickstream, silver_cart_events, silver_purchases],
    )
)
def gold_ab_test_daily(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> _Results:
    yield from materialize_days(
        context,
        lakehouse.settings(),
        "gold.ab_test_daily",
        ecommerce.build_ab_test_daily_partition,
        _experiment_readout,
    )


def _experiment_readout(rows: pa.Table, days: list[date]) -> dict[str, object]:
    columns = [
        "experiment_id",
        "variant",
        "users",
        "converting_users",
        "conversion_rate",
        "revenue_per_user",
        "relative_lift",
        "p_value",
        "significant",
    ]
    labels = [
        f"{experiment} / {variant}"
        for experiment, variant in zip(
            rows["experiment_id"].to_pylist(), rows["variant"].to_pylist(), strict=True
        )
    ]
    return {
        "result": preview(rows.select(columns)),
        "conversion_by_variant": bar_chart(
            f"Users who ordered, % of active enrolled users, {days[-1]}",
            labels,
            [round(100 * rate, 2) for rate in rows["conversion_rate"].to_pylist()],
        ),
    }
