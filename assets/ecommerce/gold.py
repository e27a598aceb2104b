"""E-commerce gold: user activity and 30-day features, product and session funnels, trends,
A/B test.

Thin assets over `lakehouse.transforms.ecommerce`: each rebuilds its daily partitions
(in order, for a ranged run) and reports what it wrote. The windowed snapshots depend on
the days before theirs through a time-window partition mapping.
"""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.daily import daily_asset
from assets.metadata import bar_chart, preview
from assets.tables import asset_key
from lakehouse.catalog import (
    GOLD_AB_TEST_DAILY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_TRENDING,
    GOLD_SESSION_FUNNEL_DAILY,
    GOLD_USER_ACTIVITY_DAILY,
    GOLD_USER_FEATURES,
    SILVER_CART_EVENTS,
    SILVER_CLICKSTREAM,
    SILVER_PURCHASES,
    SILVER_SEARCH,
    TableSpec,
)
from lakehouse.transforms import ecommerce


def _window(table: TableSpec, days: int) -> dg.AssetDep:
    """`table`'s partition of the day and the `days - 1` before it; days before the start
    are skipped."""
    return dg.AssetDep(
        asset_key(table),
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-(days - 1), allow_nonexistent_upstream_partitions=True
        ),
    )


_FUNNEL = [SILVER_CLICKSTREAM, SILVER_CART_EVENTS, SILVER_PURCHASES]


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


def _conversion_by_category(rows: pa.Table, days: list[date]) -> dict[str, object]:
    shown = rows.filter(pc.is_valid(rows["conversion_rate"]))
    return {
        "funnel": preview(rows, limit=25),
        "conversion_by_category": bar_chart(
            f"Sessions that viewed and went on to buy, % per category, {days[-1]}",
            shown["category"].to_pylist(),
            [round(100 * rate, 2) for rate in shown["conversion_rate"].to_pylist()],
        ),
    }


gold_user_activity_daily = daily_asset(
    GOLD_USER_ACTIVITY_DAILY,
    ecommerce.build_user_activity_daily_partition,
    deps=[*_FUNNEL, SILVER_SEARCH],
)
gold_user_features = daily_asset(
    GOLD_USER_FEATURES,
    ecommerce.build_user_features_partition,
    deps=[_window(GOLD_USER_ACTIVITY_DAILY, ecommerce.FEATURE_WINDOW_DAYS)],
    describe=_favourite_categories,
)
gold_product_daily = daily_asset(
    GOLD_PRODUCT_DAILY,
    ecommerce.build_product_daily_partition,
    deps=_FUNNEL,
    describe=_top_products,
)
gold_session_funnel_daily = daily_asset(
    GOLD_SESSION_FUNNEL_DAILY,
    ecommerce.build_session_funnel_daily_partition,
    deps=_FUNNEL,
    describe=_conversion_by_category,
)
gold_product_trending = daily_asset(
    GOLD_PRODUCT_TRENDING,
    ecommerce.build_product_trending_partition,
    deps=[_window(GOLD_PRODUCT_DAILY, ecommerce.TRENDING_BASELINE_DAYS + 1)],
    describe=_popular_and_trending,
)
gold_ab_test_daily = daily_asset(
    GOLD_AB_TEST_DAILY,
    ecommerce.build_ab_test_daily_partition,
    deps=_FUNNEL,
    describe=_experiment_readout,
)
