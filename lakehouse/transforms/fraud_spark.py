"""Fraud gold on Spark: the twins of `fraud`'s transforms, for a lake that outgrows one
machine; the same SQL texts, so both engines give the same rows."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame

from lakehouse.schemas import FRAUD_DAILY_STATS, FRAUD_USER_DAILY, FRAUD_USER_PROFILES
from lakehouse.transforms.fraud import STATS_SQL, daily_sql, profile_sql
from lakehouse.transforms.tables_spark import SPARK, run_spark_sql

_DAILY_SQL = daily_sql(SPARK)
_PROFILE_SQL = profile_sql(SPARK)


def fraud_user_daily(transactions: DataFrame) -> DataFrame:
    """`fraud.fraud_user_daily` on Spark: one row per card holder and event date of silver
    `transactions`."""
    return run_spark_sql(_DAILY_SQL, FRAUD_USER_DAILY, txns=transactions)


def fraud_user_profiles(daily: DataFrame, as_of: date) -> DataFrame:
    """`fraud.fraud_user_profiles` on Spark: the lifetime profile, as of `as_of`
    (inclusive), of every holder in gold.fraud_user_daily rows `daily`."""
    return run_spark_sql(_PROFILE_SQL, FRAUD_USER_PROFILES, {"as_of": as_of}, daily=daily)


def fraud_daily_stats(transactions: DataFrame) -> DataFrame:
    """`fraud.fraud_daily_stats` on Spark: per event date, UTC hour (the session's time
    zone must be UTC), merchant category and channel."""
    return run_spark_sql(STATS_SQL, FRAUD_DAILY_STATS, txns=transactions)
