"""gold.product_daily on Spark for the engine comparison, through one switch.

The Spark twins of the e-commerce gold transforms (`lakehouse.transforms.ecommerce_spark`,
same function names as `lakehouse.transforms.ecommerce`) are used when that module is
present. Until it is, `product_daily` here is the same SQL text as the local transform's,
respelled for Spark SQL (`FILTER (WHERE ...)`, typed literals), run by the platform's
`run_spark_sql`: a stand-in the benchmark checks row for row against DuckDB's answer.
The JSON records which one ran (`gold_transform`).
"""

from __future__ import annotations

import importlib.util

from pyspark.sql import DataFrame

from lakehouse.schemas import PRODUCT_DAILY
from lakehouse.transforms.tables_spark import run_spark_sql

_TWINS = "lakehouse.transforms.ecommerce_spark"

_PRODUCT_DAILY_SQL = """
WITH touches AS (
    SELECT event_date, product_id, category, user_id,
           1 AS views, 0 AS cart_adds, CAST(NULL AS STRING) AS order_id, 0 AS units,
           0.0D AS revenue
    FROM clickstream WHERE event_type = 'product_view' AND product_id IS NOT NULL
    UNION ALL
    SELECT event_date, product_id, category, user_id, 0, 1, NULL, 0, 0.0D
    FROM cart_events WHERE action = 'add'
    UNION ALL
    SELECT event_date, product_id, category, user_id, 0, 0, order_id, quantity, total_amount
    FROM purchases
),
per_user AS (
    SELECT event_date, product_id, user_id, max(category) AS category,
           sum(views) AS views, sum(cart_adds) AS cart_adds,
           count(DISTINCT order_id) AS orders, sum(units) AS units, sum(revenue) AS revenue
    FROM touches GROUP BY event_date, product_id, user_id
)
SELECT event_date, product_id, max(category) AS category,
       sum(views) AS views,
       count(*) FILTER (WHERE views > 0) AS viewers,
       sum(cart_adds) AS cart_adds,
       sum(orders) AS purchases,
       count(*) FILTER (WHERE orders > 0) AS buyers,
       sum(units) AS units,
       round(sum(revenue), 2) AS revenue,
       count(*) FILTER (WHERE views > 0 AND orders > 0)
           / nullif(count(*) FILTER (WHERE views > 0), 0) AS view_to_purchase
FROM per_user
GROUP BY event_date, product_id
"""


def twins_available() -> bool:
    """Whether the e-commerce Spark twins are importable (then they are what runs)."""
    return importlib.util.find_spec(_TWINS) is not None


def transform_name() -> str:
    return f"{_TWINS}.product_daily" if twins_available() else "bench.engines.spark_gold"


def product_daily(
    clickstream: DataFrame, cart_events: DataFrame, purchases: DataFrame
) -> DataFrame:
    """gold.product_daily rows of the given silver rows (the twin's, where it exists)."""
    if twins_available():
        twins = importlib.import_module(_TWINS)
        return twins.product_daily(clickstream, cart_events, purchases)
    return run_spark_sql(
        _PRODUCT_DAILY_SQL,
        PRODUCT_DAILY,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )
