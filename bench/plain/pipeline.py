"""One day of bronze e-commerce to silver and gold, as a data engineer writes it in Polars.

The yardstick for the platform (issue 16, "As fast as a hand-written pipeline"): the same
rows as the project's four e-commerce silver tables, `product_daily` and
`user_activity_daily`, but it does less. Rule breakers are simply dropped (no
rejected-rows table), the outputs are plain Parquet files (no Delta transaction, no
partition replacement, no metadata) and nothing is checked (no GX suites). Only the table
locations, schemas and vocabularies come from the project; the work is plain Polars.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.catalog import CATALOG
from lakehouse.schemas import PRODUCT_DAILY, USER_ACTIVITY_DAILY, VOCABULARIES, silver_schema

TOPICS = ("clickstream", "cart_events", "search", "purchases")
c = pl.col


def _known(topic: str, column: str, nullable: bool = False) -> pl.Expr:
    known = c(column).is_in(VOCABULARIES[topic][column])
    return c(column).is_null() | known if nullable else known


# silver.RULES, one Polars expression per topic; a null verdict drops the row, as there.
RULES: dict[str, pl.Expr] = {
    "clickstream": pl.all_horizontal(
        c("user_id") > 0,
        _known("clickstream", "event_type"),
        _known("clickstream", "page"),
        _known("clickstream", "device", nullable=True),
        _known("clickstream", "variant", nullable=True),
        c("price").is_null() | (c("price") >= 0),
        (c("event_type") != "product_view") | c("product_id").is_not_null(),
    ),
    "cart_events": pl.all_horizontal(
        c("user_id") > 0,
        _known("cart_events", "action"),
        _known("cart_events", "variant", nullable=True),
        c("quantity") > 0,
        c("price") >= 0,
    ),
    "search": pl.all_horizontal(
        c("user_id") > 0,
        c("query").str.strip_chars(" ").str.len_chars() > 0,
        c("results_count") >= 0,
    ),
    "purchases": pl.all_horizontal(
        c("user_id") > 0,
        _known("purchases", "variant", nullable=True),
        c("quantity") > 0,
        c("unit_price") >= 0,
        (c("total_amount") - c("unit_price") * c("quantity")).abs() < 0.01,
        c("currency").str.contains("^[A-Z]{3}$"),
    ),
}


def polars_schema(schema: pa.Schema) -> pl.Schema:
    return pl.DataFrame(schema.empty_table()).schema


def bronze_day(lake_root: str, topic: str, day: date) -> pl.LazyFrame:
    """The day's bronze files of a topic; `event_date` is in the Delta log, not the files."""
    spec = CATALOG.bronze_for_topic(topic)
    table = DeltaTable(f"{lake_root}/{spec.layer}/{spec.name}")
    files = table.file_uris(file_pruning_predicate=[("event_date", "=", day)])
    return pl.scan_parquet(files).with_columns(event_date=pl.lit(day))


def silver(bronze: pl.LazyFrame, topic: str) -> pl.LazyFrame:
    """First landed copy of each event, rule breakers dropped, in landing order (as the
    project writes silver: not sorted by event time)."""
    return (
        bronze.sort("_ingested_at", "_kafka_partition", "_kafka_offset")
        .filter(c("event_id").is_first_distinct())  # 2x faster than .unique(keep="first")
        .filter(RULES[topic])
        .select(polars_schema(silver_schema(topic)).keys())
        .cast(polars_schema(silver_schema(topic)))
    )


def product_daily(clicks: pl.LazyFrame, carts: pl.LazyFrame, buys: pl.LazyFrame) -> pl.LazyFrame:
    keys = ["event_date", "product_id", "category", "user_id"]
    touches = pl.concat(
        [
            clicks.filter(c("event_type") == "product_view", c("product_id").is_not_null()).select(
                *keys, views=1, cart_adds=0, order_id=pl.lit(None, pl.String), units=0, revenue=0.0
            ),
            carts.filter(c("action") == "add").select(
                *keys, views=0, cart_adds=1, order_id=pl.lit(None, pl.String), units=0, revenue=0.0
            ),
            buys.select(
                *keys,
                views=0,
                cart_adds=0,
                order_id=c("order_id"),
                units=c("quantity"),
                revenue=c("total_amount"),
            ),
        ],
        how="vertical_relaxed",
    )
    per_user = touches.group_by("event_date", "product_id", "user_id").agg(
        c("category").max(),
        c("views", "cart_adds", "units", "revenue").sum(),
        orders=c("order_id").drop_nulls().n_unique(),
    )
    viewed, bought = c("views") > 0, c("orders") > 0
    return (
        per_user.group_by("event_date", "product_id")
        .agg(
            c("category").max(),
            c("views").sum(),
            viewers=viewed.sum(),
            cart_adds=c("cart_adds").sum(),
            purchases=c("orders").sum(),
            buyers=bought.sum(),
            units=c("units").sum(),
            revenue=c("revenue").sum().round(2, "half_away_from_zero"),
            view_to_purchase=(viewed & bought).sum() / pl.when(viewed.sum() > 0).then(viewed.sum()),
        )
        .cast(polars_schema(PRODUCT_DAILY))
        .select(PRODUCT_DAILY.names)
        .sort("event_date", "product_id")
    )


def user_activity_daily(
    clicks: pl.LazyFrame, carts: pl.LazyFrame, searches: pl.LazyFrame, buys: pl.LazyFrame
) -> pl.LazyFrame:
    user = ["event_date", "user_id"]
    touches = pl.concat([t.select(*user, "session_id") for t in (clicks, carts, searches, buys)])
    viewed = c("event_type") == "product_view"
    seen = c("price").filter(viewed)
    parts = [
        clicks.group_by(user).agg(
            page_views=pl.len(),
            product_views=viewed.sum(),
            min_viewed_price=seen.min(),
            max_viewed_price=seen.max(),
            viewed_price_sum=seen.sum(),
            priced_views=seen.count(),
        ),
        clicks.filter(viewed, c("category").is_not_null())
        .group_by(*user, "category")
        .agg(views=pl.len().cast(pl.Int64))
        .group_by(user)
        .agg(
            category_views=pl.struct("category", "views").sort_by(
                "views", "category", descending=[True, False]
            )
        ),
        carts.group_by(user).agg(cart_adds=(c("action") == "add").sum()),
        buys.group_by(user).agg(
            purchases=c("order_id").drop_nulls().n_unique(),
            units=c("quantity").sum(),
            revenue=c("total_amount").sum(),
        ),
        searches.group_by(user).agg(searches=pl.len()),
    ]
    activity = touches.group_by(user).agg(sessions=c("session_id").drop_nulls().n_unique())
    for part in parts:
        activity = activity.join(part, on=user, how="left")
    schema = polars_schema(USER_ACTIVITY_DAILY)
    counts = ["page_views", "product_views", "cart_adds", "purchases", "units", "searches"]
    return (
        activity.with_columns(
            c(*counts, "viewed_price_sum", "priced_views", "revenue").fill_null(0),
            c("category_views").fill_null(pl.lit([], schema["category_views"])),
        )
        .with_columns(c("revenue").round(2, "half_away_from_zero"))
        .cast(schema)
        .select(schema.keys())
        .sort(user)
    )


def run_plain(lake_root: str, day: date, out_dir: Path) -> dict[str, float]:
    """Write the day's silver and gold as Parquet under `out_dir`; seconds per table."""
    seconds: dict[str, float] = {}
    for topic in TOPICS:
        started = time.perf_counter()
        silver(bronze_day(lake_root, topic, day), topic).sink_parquet(
            out_dir / "silver" / f"{topic}.parquet", mkdir=True, engine="streaming"
        )
        seconds[f"silver/{topic}"] = time.perf_counter() - started
    clicks, carts, searches, buys = (
        pl.scan_parquet(out_dir / "silver" / f"{topic}.parquet") for topic in TOPICS
    )
    gold = {
        "product_daily": product_daily(clicks, carts, buys),
        "user_activity_daily": user_activity_daily(clicks, carts, searches, buys),
    }
    for name, frame in gold.items():
        started = time.perf_counter()
        frame.sink_parquet(out_dir / "gold" / f"{name}.parquet", mkdir=True, engine="streaming")
        seconds[f"gold/{name}"] = time.perf_counter() - started
    seconds["total"] = sum(seconds.values())
    return seconds
