"""Bronze to silver on Spark: the twin of `silver.to_silver` for days too big for one machine.

Same contract as the local twin: keep the first landed copy of each event id, split the
rows by the same declared `RULES` (their predicates are SQL both engines accept, a NULL
verdict counting as broken), drop the ingest plumbing. Only the Spark path imports this
module, so the core package still imports without pyspark.

The rejected rows' JSON carries the same fields and values as DuckDB's, in two spellings
that differ (compare parsed values, not text): timestamps are written with all six
fraction digits (`2026-11-23 12:00:00.500000+00`, DuckDB trims them: `...00.5+00`), and
non-finite floats are quoted strings (`"NaN"`, `"Infinity"`), where DuckDB writes them bare
(`NaN`, not strict JSON); large floats may use an exponent (`1.0E20`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog import CATALOG, REJECTED_ROWS
from lakehouse.delta import replace_partition
from lakehouse.schemas import silver_schema
from lakehouse.settings import Settings
from lakehouse.transforms.silver import LANDING_ORDER, PLUMBING, RULES, Rule, rejected_predicate
from lakehouse.transforms.tables import Guard, changes_nothing
from lakehouse.transforms.tables_spark import read_days, replace_day

# Every field written, nulls included (Spark drops them by default), timestamps to the
# microsecond in UTC (Spark's default keeps milliseconds).
_JSON_OPTIONS = {
    "ignoreNullFields": "false",
    "timestampFormat": "yyyy-MM-dd HH:mm:ss.SSSSSSx",
    "timeZone": "UTC",
}


@dataclass(frozen=True)
class SparkSilverResult:
    """The clean rows and the rule breakers, and the duplicates dropped: lazy DataFrames
    from `to_silver_spark`; after `build_silver_partition`, the day as written and the
    rule breakers as Arrow (as the local twin writes them, see there)."""

    rows: DataFrame
    rejected: DataFrame | pa.Table
    duplicates: int


def _keeps(rule: Rule) -> Column:
    """Whether a row passes `rule`; NULL (an unknown verdict) counts as broken."""
    return F.coalesce(F.expr(rule.predicate), F.lit(False))


def to_silver_spark(bronze: DataFrame, topic: str) -> SparkSilverResult:
    """Deduplicate `bronze` rows of one topic by event id and split them by the rules.

    Counting the duplicates runs one Spark job over the event ids; the rows and the rejected
    rows stay lazy (each pick of first copies shuffles the rows by event id once), so a
    caller that writes both may `persist()` the bronze input first.
    """
    rules = RULES[topic]
    landing = Window.partitionBy("event_id").orderBy(*LANDING_ORDER)
    firsts = (
        bronze.withColumn("_copy", F.row_number().over(landing))
        .filter(F.col("_copy") == 1)
        .drop("_copy", *PLUMBING)
    )
    # Only the ids travel for the count (a partial aggregation), not whole rows.
    copies = bronze.groupBy("event_id").count().agg(F.sum(F.col("count") - 1)).first()[0]
    duplicates = int(copies or 0)

    keeps = F.lit(True)
    for rule in rules:
        keeps = keeps & _keeps(rule)
    names = silver_schema(topic).names
    rows = firsts.filter(keeps).select(*names)  # landing order, as the local twin
    verdicts = F.array(*(F.when(~_keeps(rule), F.lit(rule.name)) for rule in rules))
    rejected = (
        firsts.filter(~keeps)
        .select(
            F.lit(topic).alias("table"),
            "event_id",
            "event_date",
            F.filter(verdicts, lambda name: name.isNotNull()).alias("broken_rules"),
            F.to_json(F.struct(*names), _JSON_OPTIONS).alias("row"),
            F.current_timestamp().alias("rejected_at"),
        )
        .orderBy("event_id")
    )
    return SparkSilverResult(rows=rows, rejected=rejected, duplicates=duplicates)


def build_silver_partition(
    settings: Settings, topic: str, day: date, guard: Guard | None = None
) -> SparkSilverResult:
    """`silver.build_silver_partition` on Spark: rebuild one day of a silver table and its
    rejected rows from that day of bronze; idempotent, and a refusing `guard` leaves both
    as they were.

    The day's bronze is read once (persisted for the duplicate count, the rows and the
    rule breakers). The rule breakers are few (bad input, not traffic) and share the
    rejected-rows table with every topic, partitioned by day only, so they are collected
    and replaced by delta-rs's predicate overwrite of (day, topic), exactly as locally:
    the bridge replaces whole day partitions.
    """
    bronze = read_days(settings, CATALOG.bronze_for_topic(topic), None, day)
    bronze = bronze.persist()  # Spark's default level: memory, then disk
    try:
        result = to_silver_spark(bronze, topic)
        written = replace_day(settings, CATALOG.silver_for_topic(topic), result.rows, day, guard)
        rejected = result.rejected.toArrow().cast(REJECTED_ROWS.schema)
    finally:
        bronze.unpersist()
    # As `replace_day` does: no rejected rows where the day holds none changes nothing
    # (collected to Arrow, the rows are counted before the log is read).
    if not changes_nothing(settings, REJECTED_ROWS, rejected, day):
        replace_partition(REJECTED_ROWS, settings, rejected, rejected_predicate(topic, day))
    return SparkSilverResult(rows=written, rejected=rejected, duplicates=result.duplicates)
