"""E-commerce gold: user activity and 30-day features, product funnel and trends, A/B test.

Thin assets over `lakehouse.transforms.ecommerce`: each rebuilds its daily partitions
(in order, for a ranged run) and reports what it wrote. The windowed snapshots depend on
the days before theirs through a time-window partition mapping.
"""

from collections.abc import Callable
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.ecommerce.silver import (
    silver_cart_events,
    silver_clickstream,
    silver_purchases,
    silver_search,
)
from assets.metadata import bar_chart, preview, table_metadata
from assets.partitions import DAILY, SINGLE_RUN, partition_days, partition_label
from lakehouse.catalog import CATALOG
from lakehouse.settings import Settings
from lakehouse.transforms import ecommerce
from orchestration.resources import LakehouseResource

_COMMON = {
    "partitions_def": DAILY,
    "backfill_policy": SINGLE_RUN,
    "group_name": "ecommerce",
    "kinds": {"deltalake", "duckdb"},
    "owners": ["team:personalization"],
    "tags": {"layer": "gold"},
    "retry_policy": dg.RetryPolicy(max_retries=2, delay=10),
}


def _build(
    context: dg.AssetExecutionContext,
    settings: Settings,
    name: str,
    build: Callable[[Settings, date], pa.Table],
) -> tuple[dict[str, object], pa.Table]:
    """Build every day of the run in order; the metadata, and the last day's rows."""
    days = partition_days(context)
    written = 0
    rows = pa.table({})
    for day in days:
        rows = build(settings, day)
        written += rows.num_rows
        context.log.info(f"gold.{name} {day}: {rows.num_rows:,} rows")
    spec = CATALOG.table(f"gold.{name}")
    return table_metadata(spec, settings, written, partition_label(days)), rows


def _window(days: int) -> dg.TimeWindowPartitionMapping:
    """The partition's day and the `days - 1` before it; days before the start are skipped."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-(days - 1), allow_nonexistent_upstream_partitions=True
    )


@dg.asset(
    key=["gold", "user_activity_daily"],
    description=CATALOG.table("gold.user_activity_daily").description,
    deps=[silver_clickstream, silver_cart_events, silver_search, silver_purchases],
    **_COMMON,
)
def gold_user_activity_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    settings = lakehouse.settings()
    metadata, _ = _build(
        context, settings, "user_activity_daily", ecommerce.build_user_activity_daily_partition
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=["gold", "user_features"],
    description=CATALOG.table("gold.user_features").description,
    deps=[
        dg.AssetDep(
            gold_user_activity_daily,
            partition_mapping=_window(ecommerce.FEATURE_WINDOW_DAYS),
        )
    ],
    **_COMMON,
)
def gold_user_features(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    settings = lakehouse.settings()
    metadata, rows = _build(
        context, settings, "user_features", ecommerce.build_user_features_partition
    )
    if rows.num_rows:
        favourites = pc.list_flatten(pc.list_slice(rows["top_categories"], 0, 1))
        counts = (
            pa.table({"category": favourites})
            .group_by("category")
            .aggregate([("category", "count")])
            .sort_by([("category_count", "descending"), ("category", "ascending")])
        )
        metadata["favourite_categories"] = bar_chart(
            f"Users by most viewed category over 30 days, as of {_last_day(context)}",
            counts["category"].to_pylist(),
            counts["category_count"].to_pylist(),
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=["gold", "product_daily"],
    description=CATALOG.table("gold.product_daily").description,
    deps=[silver_clickstream, silver_cart_events, silver_purchases],
    **_COMMON,
)
def gold_product_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    settings = lakehouse.settings()
    metadata, rows = _build(
        context, settings, "product_daily", ecommerce.build_product_daily_partition
    )
    top = rows.sort_by([("views", "descending"), ("product_id", "ascending")]).slice(0, 10)
    metadata["top_products_by_views"] = bar_chart(
        f"Top 10 products by views, {_last_day(context)}",
        [
            f"{p} ({c})"
            for p, c in zip(top["product_id"].to_pylist(), top["category"].to_pylist(), strict=True)
        ],
        top["views"].to_pylist(),
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=["gold", "product_trending"],
    description=CATALOG.table("gold.product_trending").description,
    deps=[
        dg.AssetDep(
            gold_product_daily,
            partition_mapping=_window(ecommerce.TRENDING_BASELINE_DAYS + 1),
        )
    ],
    **_COMMON,
)
def gold_product_trending(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    settings = lakehouse.settings()
    metadata, rows = _build(
        context, settings, "product_trending", ecommerce.build_product_trending_partition
    )
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
    metadata["most_popular"] = preview(rows.select(shown))  # rows come in popularity order
    trending = rows.filter(pc.is_valid(rows["trending_rank"])).sort_by("trending_rank")
    metadata["trending"] = preview(
        trending.select(
            ["trending_rank", "product_id", "category", "views", "baseline_views", "trending_score"]
        )
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=["gold", "ab_test_daily"],
    description=CATALOG.table("gold.ab_test_daily").description,
    deps=[silver_clickstream, silver_cart_events, silver_purchases],
    **_COMMON,
)
def gold_ab_test_daily(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    settings = lakehouse.settings()
    metadata, rows = _build(
        context, settings, "ab_test_daily", ecommerce.build_ab_test_daily_partition
    )
    metadata["result"] = preview(
        rows.select(
            [
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
        )
    )
    labels = [
        f"{e} / {v}"
        for e, v in zip(rows["experiment_id"].to_pylist(), rows["variant"].to_pylist(), strict=True)
    ]
    metadata["conversion_by_variant"] = bar_chart(
        f"Users who ordered, % of active enrolled users, {_last_day(context)}",
        labels,
        [round(100 * rate, 2) for rate in rows["conversion_rate"].to_pylist()],
    )
    return dg.MaterializeResult(metadata=metadata)


def _last_day(context: dg.AssetExecutionContext) -> date:
    return partition_days(context)[-1]
