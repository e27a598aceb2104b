"""E-commerce gold on Spark: the twins of `ecommerce`'s transforms, for a lake that outgrows
one machine; the same SQL texts (two of them in each engine's `Spelling`), so both engines
give the same rows.

The A/B test's z-tests are the one step not in SQL: Spark has no normal distribution
function, and an approximation of it would give other p-values than the local twin. The
rows to test are few (experiments x days x variants, a handful a day, however much traffic
they count), so `ab_test_daily` collects them to the driver and finishes them with the
local twin's own `with_ztests`: the same numbers, and no Python needed on the executors.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame

from lakehouse.schemas import (
    AB_TEST_DAILY,
    PRODUCT_DAILY,
    PRODUCT_TRENDING,
    SESSION_FUNNEL_DAILY,
    USER_ACTIVITY_DAILY,
    USER_FEATURES,
)
from lakehouse.transforms.ecommerce import (
    AB_VARIANTS,
    AB_VARIANTS_PARAMS,
    AB_VARIANTS_SQL,
    PRODUCT_DAILY_SQL,
    PRODUCT_TRENDING_SQL,
    SESSION_FUNNEL_SQL,
    product_trending_params,
    user_activity_sql,
    user_features_params,
    user_features_sql,
    with_ztests,
)
from lakehouse.transforms.tables_spark import SPARK, conform, run_spark_sql

_USER_ACTIVITY_SQL = user_activity_sql(SPARK)
_USER_FEATURES_SQL = user_features_sql(SPARK)


def user_activity_daily(
    clickstream: DataFrame, cart_events: DataFrame, search: DataFrame, purchases: DataFrame
) -> DataFrame:
    """`ecommerce.user_activity_daily` on Spark: one row per user and day with any event on
    any of the four silver topics."""
    return run_spark_sql(
        _USER_ACTIVITY_SQL,
        USER_ACTIVITY_DAILY,
        clickstream=clickstream,
        cart_events=cart_events,
        search=search,
        purchases=purchases,
    )


def user_features(activity: DataFrame, as_of: date) -> DataFrame:
    """`ecommerce.user_features` on Spark: per user active in the 30 days up to `as_of`,
    gold.user_activity_daily rows `activity` of that window summed (other rows ignored)."""
    params = user_features_params(as_of)
    return run_spark_sql(_USER_FEATURES_SQL, USER_FEATURES, params, activity=activity)


def product_daily(
    clickstream: DataFrame, cart_events: DataFrame, purchases: DataFrame
) -> DataFrame:
    """`ecommerce.product_daily` on Spark: one row per product and day with a view, a cart
    add or an order line."""
    return run_spark_sql(
        PRODUCT_DAILY_SQL,
        PRODUCT_DAILY,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )


def session_funnel_daily(
    clickstream: DataFrame, cart_events: DataFrame, purchases: DataFrame
) -> DataFrame:
    """`ecommerce.session_funnel_daily` on Spark: per day and category (and the whole
    shop's 'all'), the closed session funnel and its rates."""
    return run_spark_sql(
        SESSION_FUNNEL_SQL,
        SESSION_FUNNEL_DAILY,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )


def product_trending(product_daily_rows: DataFrame, as_of: date) -> DataFrame:
    """`ecommerce.product_trending` on Spark: per product of gold.product_daily rows seen on
    `as_of`, its popularity that day and its trend against the seven days before."""
    return run_spark_sql(
        PRODUCT_TRENDING_SQL,
        PRODUCT_TRENDING,
        product_trending_params(as_of),
        product_daily=product_daily_rows,
    )


def ab_test_daily(
    clickstream: DataFrame, cart_events: DataFrame, purchases: DataFrame
) -> DataFrame:
    """`ecommerce.ab_test_daily` on Spark: per experiment, day and variant, the counts
    (Spark SQL) and each treatment's z-test against its control (on the driver, see the
    module's docstring). Unlike the other twins this runs a Spark job when called: it
    collects the per-variant rows."""
    variants = run_spark_sql(
        AB_VARIANTS_SQL,
        AB_VARIANTS,
        AB_VARIANTS_PARAMS,
        clickstream=clickstream,
        cart_events=cart_events,
        purchases=purchases,
    )
    rows = with_ztests(variants.toArrow().cast(AB_VARIANTS))
    return conform(variants.sparkSession.createDataFrame(rows), AB_TEST_DAILY)
