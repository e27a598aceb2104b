"""Spark twins of the e-commerce gold transforms give the rows their local (DuckDB) twins
give on the same input: three days of the e-commerce generator's traffic plus the edge
cases the local tests pin (views without a price or a category, users without product
views, windows' edges, a product new on the day, experiments without a control, without a
treatment, without conversions). Integers, strings, dates, booleans and lists exactly,
floating-point aggregates to test_gold_spark's relative 1e-9 (the engines add in
different orders)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyspark.sql import DataFrame, SparkSession

from lakehouse.schemas import (
    AB_TEST_DAILY,
    EVENT_SCHEMAS,
    PRODUCT_DAILY,
    PRODUCT_TRENDING,
    SESSION_FUNNEL_DAILY,
    USER_ACTIVITY_DAILY,
    USER_FEATURES,
    silver_schema,
)
from lakehouse.transforms import ecommerce, ecommerce_spark
from streaming.generators import make_generator
from streaming.ingest.decode import BatchDecoder
from tests.test_gold_ecommerce import DAY, activity, cart, daily, line, page, query, view
from tests.test_gold_spark import same_rows

TOPICS = ("clickstream", "cart_events", "search", "purchases")
FUNNEL = ("clickstream", "cart_events", "purchases")
FIRST = DAY - timedelta(days=2)  # the generated traffic covers FIRST..DAY


def _in(experiment: str, row: dict[str, object]) -> dict[str, object]:
    return {**row, "experiment_id": experiment}


# Users and products 90_000 and up: beyond the generator's ids.
EDGE_ROWS = [
    # Product views without a price or without a category, and one user whose only
    # product view has no price: priced_views below product_views, NULL price range.
    view(90_001, "e1", 90_001, "books", None),
    view(90_001, "e1", 90_002, "toys", 12.5),
    view(90_001, "e1", 90_003, None, 5.0),
    view(90_003, "e3", 90_001, "books", None),
    # Only pages and searches: an empty category list.
    page(90_002, "e2"),
    query(90_002, "e2"),
    # A product added to a cart but never viewed: no view-to-purchase rate.
    cart(90_005, "e5", 90_004, "garden"),
    # An experiment with only a control, one with only a treatment, one where nobody
    # converts and one whose control never converts (no relative lift).
    _in("solo-control", view(90_010, "x1", 90_001, "books", 10.0, variant="control")),
    _in("solo-control", line(90_010, "x1", "xo1", 90_001, "books", variant="control")),
    _in("solo-treatment", page(90_011, "x2", variant="treatment")),
    _in("nobody-converts", page(90_012, "x3", variant="control")),
    _in("nobody-converts", page(90_013, "x4", variant="treatment")),
    _in("cold-control", page(90_014, "x5", variant="control")),
    _in("cold-control", cart(90_015, "x6", 90_002, "toys", variant="treatment")),
    _in("cold-control", line(90_015, "x6", "xo2", 90_002, "toys", variant="treatment")),
]


@pytest.fixture(scope="module")
def shop() -> dict[str, pa.Table]:
    """The e-commerce generator's traffic of FIRST..DAY as silver columns per topic (no
    Kafka, no Delta): 600 users, 300 products, an A/B test; plus EDGE_ROWS on DAY."""
    generator = make_generator(
        "ecommerce",
        seed=5,
        start=datetime.combine(FIRST, time(0), UTC),
        span=timedelta(days=3),
        n_users=600,
        n_products=300,
    )
    parts: dict[str, list[pa.Table]] = {topic: [] for topic in TOPICS}
    for batch in generator.batches(20_000):
        decoder = BatchDecoder(EVENT_SCHEMAS[batch.topic], 1 << 20)
        table = decoder.decode(batch.values).table
        table = table.append_column("event_date", pc.cast(table["event_time"], pa.date32()))
        names = [name for name in silver_schema(batch.topic).names if name in table.column_names]
        parts[batch.topic].append(table.select(names))
    tables = {}
    for topic, found in parts.items():
        generated = pa.concat_tables(found)
        edge = [row for row in EDGE_ROWS if _topic(row) == topic]
        edge_table = pa.Table.from_pylist(edge, schema=silver_schema(topic))
        edge_table = edge_table.select(generated.column_names).cast(generated.schema)
        tables[topic] = pa.concat_tables([generated, edge_table])
    return tables


def _topic(row: dict[str, object]) -> str:
    if "event_type" in row:
        return "clickstream"
    if "action" in row:
        return "cart_events"
    return "purchases" if "order_id" in row else "search"


def frames(spark: SparkSession, tables: dict[str, pa.Table], names=TOPICS) -> dict[str, DataFrame]:
    return {name: spark.createDataFrame(tables[name]) for name in names}


def funnel(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return {name: tables[name] for name in FUNNEL}


def test_user_activity_daily_on_spark_equals_the_local_twin(
    spark: SparkSession, shop: dict[str, pa.Table]
) -> None:
    local = ecommerce.user_activity_daily(**shop)
    rows = {row["user_id"]: row for row in local.to_pylist() if row["event_date"] == DAY}
    assert rows[90_001]["priced_views"] == 2 < rows[90_001]["product_views"] == 3
    assert rows[90_002]["category_views"] == []
    assert rows[90_003]["min_viewed_price"] is None
    assert set(local.column("event_date").to_pylist()) >= {FIRST, DAY}
    remote = ecommerce_spark.user_activity_daily(**frames(spark, shop))
    same_rows(local, remote, USER_ACTIVITY_DAILY, ["event_date", "user_id"])


def test_user_features_on_spark_equal_the_local_twin(
    spark: SparkSession, shop: dict[str, pa.Table]
) -> None:
    window_edges = pa.Table.from_pylist(
        [
            activity(90_020, DAY - timedelta(days=29), {"books": 1, "toys": 1}, price=40.0),
            activity(90_020, DAY - timedelta(days=30), {"garden": 9}, price=500.0),
            activity(90_021, DAY - timedelta(days=30), {"books": 1}),  # idle: no row
            activity(90_022, DAY - timedelta(days=3), {}, searches=1),  # no categories
            activity(90_023, DAY + timedelta(days=1), {"toys": 1}),  # after D: no row
        ],
        schema=USER_ACTIVITY_DAILY,
    )
    daily_rows = pa.concat_tables([ecommerce.user_activity_daily(**shop), window_edges])
    local = ecommerce.user_features(daily_rows, DAY)
    rows = {row["user_id"]: row for row in local.to_pylist()}
    assert rows[90_020]["top_categories"] == ["books", "toys"]
    assert rows[90_022]["top_categories"] == []
    assert 90_021 not in rows and 90_023 not in rows
    assert any(len(row["top_categories"]) == 3 for row in rows.values())
    remote = ecommerce_spark.user_features(spark.createDataFrame(daily_rows), DAY)
    same_rows(local, remote, USER_FEATURES, ["user_id"])


def test_product_daily_on_spark_equals_the_local_twin(
    spark: SparkSession, shop: dict[str, pa.Table]
) -> None:
    local = ecommerce.product_daily(**funnel(shop))
    assert None in local.column("view_to_purchase").to_pylist()
    remote = ecommerce_spark.product_daily(**frames(spark, shop, FUNNEL))
    same_rows(local, remote, PRODUCT_DAILY, ["event_date", "product_id"])


def test_session_funnel_daily_on_spark_equals_the_local_twin(
    spark: SparkSession, shop: dict[str, pa.Table]
) -> None:
    local = ecommerce.session_funnel_daily(**funnel(shop))
    assert local.num_rows > 3
    remote = ecommerce_spark.session_funnel_daily(**frames(spark, shop, FUNNEL))
    same_rows(local, remote, SESSION_FUNNEL_DAILY, ["event_date", "category"])


@pytest.mark.parametrize("as_of", [DAY, FIRST], ids=["two-baseline-days", "no-baseline"])
def test_product_trending_on_spark_equals_the_local_twin(
    spark: SparkSession, shop: dict[str, pa.Table], as_of
) -> None:
    extra = pa.Table.from_pylist(
        [
            daily(90_030, DAY - timedelta(days=10), 1000),  # before either window
            daily(90_031, DAY, 5, cart_adds=1),  # new on DAY: a baseline of 0
        ],
        schema=PRODUCT_DAILY,
    )
    rows = pa.concat_tables([ecommerce.product_daily(**funnel(shop)), extra])
    local = ecommerce.product_trending(rows, as_of)
    by_product = {row["product_id"]: row for row in local.to_pylist()}
    if as_of == DAY:
        assert by_product[90_031]["baseline_views"] == 0.0
        assert by_product[90_031]["trending_score"] == 5.0
        assert {row["baseline_days"] for row in by_product.values()} == {2}
    else:
        assert {row["trending_rank"] for row in by_product.values()} == {None}
    remote = ecommerce_spark.product_trending(spark.createDataFrame(rows), as_of)
    same_rows(local, remote, PRODUCT_TRENDING, ["product_id"])


def test_ab_test_daily_on_spark_equals_the_local_twin(
    spark: SparkSession, shop: dict[str, pa.Table]
) -> None:
    local = ecommerce.ab_test_daily(**funnel(shop))
    rows = {
        (r["experiment_id"], r["variant"]): r for r in local.to_pylist() if r["event_date"] == DAY
    }
    assert rows["solo-control", "control"]["p_value"] is None
    assert rows["solo-treatment", "treatment"]["absolute_diff"] is None
    assert rows["nobody-converts", "treatment"]["z_score"] is None
    assert rows["cold-control", "treatment"]["relative_lift"] is None
    assert rows["cold-control", "treatment"]["z_score"] is not None
    assert rows["recs-carousel-v2", "treatment"]["p_value"] is not None
    remote = ecommerce_spark.ab_test_daily(**frames(spark, shop, FUNNEL))
    same_rows(local, remote, AB_TEST_DAILY, ["event_date", "experiment_id", "variant"])


def test_the_spark_twins_of_a_day_without_traffic_are_empty(spark: SparkSession) -> None:
    empty = {topic: silver_schema(topic).empty_table() for topic in TOPICS}
    remote = frames(spark, empty)
    outputs = [
        (ecommerce_spark.user_activity_daily(**remote), USER_ACTIVITY_DAILY),
        (ecommerce_spark.product_daily(**funnel(remote)), PRODUCT_DAILY),
        (ecommerce_spark.session_funnel_daily(**funnel(remote)), SESSION_FUNNEL_DAILY),
        (ecommerce_spark.ab_test_daily(**funnel(remote)), AB_TEST_DAILY),
    ]
    for frame, schema in outputs:
        result = frame.toArrow()
        assert result.num_rows == 0
        assert [(f.name, f.type) for f in result.schema] == [(f.name, f.type) for f in schema]
