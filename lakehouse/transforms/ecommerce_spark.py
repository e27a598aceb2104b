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

from datetime import date, timedelta

from pyspark.sql import DataFrame

from lakehouse.catalog import (
    GOLD_AB_TEST_DAILY,
    GOLD_PRODUCT_DAILY,
    GOLD_PRODUCT_TRENDING,
    GOLD_SESSION_FUNNEL_DAILY,
    GOLD_USER_ACTIVITY_DAILY,
    GOLD_USER_FEATURES,
    TableSpec,
)
from lakehouse.schemas import (
    AB_TEST_DAILY,
    PRODUCT_DAILY,
    PRODUCT_TRENDING,
    SESSION_FUNNEL_DAILY,
    USER_ACTIVITY_DAILY,
    USER_FEATURES,
)
from lakehouse.settings import Settings
from lakehouse.transforms.ecommerce import (
    AB_VARIANTS,
    AB_VARIANTS_PARAMS,
    AB_VARIANTS_SQL,
    ALL_TOPICS,
    FEATURE_WINDOW_DAYS,
    FUNNEL,
    PRODUCT_DAILY_SQL,
    PRODUCT_TRENDING_SQL,
    SESSION_FUNNEL_SQL,
    SILVER_COLUMNS,
    TRENDING_BASELINE_DAYS,
    product_trending_params,
    user_activity_sql,
    user_features_params,
    user_features_sql,
    with_ztests,
)
from lakehouse.transforms.tables import Guard
from lakehouse.transforms.tables_spark import SPARK, conform, read_days, replace_day, run_spark_sql

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


# --- the day's builds, the twins of `ecommerce.build_*_partition` ----------------------


def build_user_activity_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """Rebuild one day of gold.user_activity_daily from the day's four silver tables."""
    rows = user_activity_daily(**silver_day(settings, day, ALL_TOPICS))
    return replace_day(settings, GOLD_USER_ACTIVITY_DAILY, rows, day, guard)


def build_user_features_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """Rebuild gold.user_features as of `day` from user_activity_daily's 30-day window."""
    first = day - timedelta(days=FEATURE_WINDOW_DAYS - 1)
    activity = read_days(settings, GOLD_USER_ACTIVITY_DAILY, USER_ACTIVITY_DAILY.names, first, day)
    return replace_day(settings, GOLD_USER_FEATURES, user_features(activity, day), day, guard)


def build_product_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """Rebuild one day of gold.product_daily from the day's silver tables."""
    rows = product_daily(**silver_day(settings, day, FUNNEL))
    return replace_day(settings, GOLD_PRODUCT_DAILY, rows, day, guard)


def build_session_funnel_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """Rebuild one day of gold.session_funnel_daily from the day's silver tables."""
    rows = session_funnel_daily(**silver_day(settings, day, FUNNEL))
    return replace_day(settings, GOLD_SESSION_FUNNEL_DAILY, rows, day, guard)


def build_product_trending_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """Rebuild gold.product_trending as of `day` from product_daily's D-7..D."""
    first = day - timedelta(days=TRENDING_BASELINE_DAYS)
    daily = read_days(settings, GOLD_PRODUCT_DAILY, PRODUCT_DAILY.names, first, day)
    return replace_day(settings, GOLD_PRODUCT_TRENDING, product_trending(daily, day), day, guard)


def build_ab_test_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """Rebuild one day of gold.ab_test_daily from the day's silver tables."""
    rows = ab_test_daily(**silver_day(settings, day, FUNNEL))
    return replace_day(settings, GOLD_AB_TEST_DAILY, rows, day, guard)


def silver_day(
    settings: Settings, day: date, tables: tuple[TableSpec, ...]
) -> dict[str, DataFrame]:
    """`ecommerce.silver_day` on Spark: one day of each silver table, only the columns the
    transforms read, by the name their SQL knows it by."""
    return {spec.name: read_days(settings, spec, SILVER_COLUMNS[spec], day) for spec in tables}
