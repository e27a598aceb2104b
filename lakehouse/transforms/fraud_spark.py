"""Fraud gold on Spark: the twins of `fraud`'s transforms, for a lake that outgrows one
machine; the same SQL texts, so both engines give the same rows."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame

from lakehouse.catalog import (
    GOLD_FRAUD_DAILY_STATS,
    GOLD_FRAUD_USER_DAILY,
    GOLD_FRAUD_USER_PROFILES,
    SILVER_TRANSACTIONS,
)
from lakehouse.schemas import FRAUD_DAILY_STATS, FRAUD_USER_DAILY, FRAUD_USER_PROFILES
from lakehouse.settings import Settings
from lakehouse.transforms.fraud import STATS_SQL, TXN_COLUMNS, daily_sql, profile_sql
from lakehouse.transforms.tables import Guard
from lakehouse.transforms.tables_spark import SPARK, read_days, replace_day, run_spark_sql

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


def build_fraud_user_daily_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """`fraud.build_fraud_user_daily_partition` on Spark: one day of
    gold.fraud_user_daily from silver; idempotent."""
    transactions = read_days(settings, SILVER_TRANSACTIONS, TXN_COLUMNS, day)
    return replace_day(settings, GOLD_FRAUD_USER_DAILY, fraud_user_daily(transactions), day, guard)


def build_fraud_user_profiles_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """`fraud.build_fraud_user_profiles_partition` on Spark: the profiles as of `day` from
    every gold.fraud_user_daily day up to it."""
    daily = read_days(settings, GOLD_FRAUD_USER_DAILY, FRAUD_USER_DAILY.names, date.min, day)
    rows = fraud_user_profiles(daily, day)
    return replace_day(settings, GOLD_FRAUD_USER_PROFILES, rows, day, guard)


def build_fraud_daily_stats_partition(
    settings: Settings, day: date, guard: Guard | None = None
) -> DataFrame:
    """`fraud.build_fraud_daily_stats_partition` on Spark: one day of
    gold.fraud_daily_stats from silver; idempotent."""
    transactions = read_days(settings, SILVER_TRANSACTIONS, TXN_COLUMNS, day)
    return replace_day(
        settings, GOLD_FRAUD_DAILY_STATS, fraud_daily_stats(transactions), day, guard
    )
