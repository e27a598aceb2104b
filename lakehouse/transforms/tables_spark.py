"""The Spark twin of `tables`: read some days of a catalogued table, run a transform's
SQL over Spark DataFrames, and replace one day of the output table.

Gold transforms keep one SQL text for DuckDB and Spark SQL where both engines read it
the same, so the pair cannot drift apart; this runs that text on Spark and gives the
result the catalog's schema, as `run_sql` does for DuckDB. Two DuckDB spellings the
shared texts use are given to Spark here: `$name` parameters (Spark's are `:name`) and
`epoch(ts)`, seconds since 1970 as a double (Spark's is `unix_micros(ts) / 1e6`). What
cannot be given that way (struct, unnest, ordered and empty lists) is spelled in the text
by `tables.Spelling`, Spark's being `SPARK`.
"""

from __future__ import annotations

import re
from datetime import date

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lakehouse.catalog import TableSpec
from lakehouse.settings import Settings
from lakehouse.spark.delta_bridge import read_table, replace_partition
from lakehouse.spark.session import spark_session
from lakehouse.transforms.tables import Guard, Spelling, changes_nothing

# Spark's spelling of the shared texts: an ordered list is the (order, value) pairs
# sorted, then their values.
SPARK = Spelling(
    struct="struct",
    unnest="explode",
    ordered="sort_array(collect_list(struct({order}, {value})) FILTER (WHERE {where})).{value}",
    empty="array()",
)

_EPOCH = (
    "CREATE OR REPLACE TEMPORARY FUNCTION epoch(ts TIMESTAMP) RETURNS DOUBLE "
    "RETURN unix_micros(ts) / 1000000D"
)


def run_spark_sql(
    sql: str,
    schema: pa.Schema,
    params: dict[str, object] | None = None,
    **frames: DataFrame,
) -> DataFrame:
    """Run `sql` over the given DataFrames (by name) in their Spark session, with DuckDB's
    `$name` parameters bound from `params`; the result has the columns of `schema`, in
    its order and of its types.

    The names are temporary views only while the statement is analysed (Spark binds them
    then), so the caller's session keeps no views behind.
    """
    session: SparkSession = next(iter(frames.values())).sparkSession
    session.sql(_EPOCH)
    for name in params or {}:
        sql = re.sub(rf"\${name}\b", f":{name}", sql)
    for name, frame in frames.items():
        frame.createOrReplaceTempView(name)
    try:
        result = session.sql(sql, args=params)
    finally:
        for name in frames:
            session.catalog.dropTempView(name)
    return conform(result, schema)


def conform(frame: DataFrame, schema: pa.Schema) -> DataFrame:
    """`frame`'s columns of `schema`, in its order and cast to its types."""
    types = from_arrow_schema(schema, prefer_timestamp_ntz=False)
    return frame.select([F.col(field.name).cast(field.dataType) for field in types.fields])


def read_days(
    settings: Settings,
    spec: TableSpec,
    columns: list[str] | None,
    first: date,
    last: date | None = None,
) -> DataFrame:
    """`tables.read_days` on Spark: the event-date partitions `first`..`last` (inclusive;
    `last` defaults to `first`) of a catalogued table, only `columns` (all if None);
    typed and empty if it is absent. The session is the running one for the settings
    (the Dagster step's, started by dagster-pyspark's resource)."""
    spark = spark_session(settings)
    return read_table(spark, spec, settings, columns=columns, between=(first, last or first))


def replace_day(
    settings: Settings,
    spec: TableSpec,
    frame: DataFrame,
    day: date,
    guard: Guard | None = None,
) -> DataFrame:
    """`tables.replace_day` on Spark: replace one event-date partition with `frame`'s rows
    once `guard` (if any) has accepted them, in one Delta commit; return the day as
    written (read back from its files, so counting it reads only Parquet footers).

    With a guard the rows are computed once for both: persisted (Spark's default level,
    memory then disk) for the checks and the write, released after. Without one, the
    write computes them once anyway, after an `isEmpty` job where the day holds no rows
    yet (`_replace_unless_unchanged`).

    A day without rows whose partition holds none either is left alone, as locally
    (`tables.changes_nothing`): neither the guard nor the write runs, so the guard keeps
    no verdict for the day (how the asset layer counts `empty_days_skipped`), and the
    day read back is empty. A day that held rows is still replaced.
    """
    if guard is None:
        _replace_unless_unchanged(settings, spec, frame, day)
    else:
        frame = frame.persist()
        try:
            _replace_unless_unchanged(settings, spec, frame, day, guard)
        finally:
            frame.unpersist()
    return read_table(frame.sparkSession, spec, settings, days=[day])


def _replace_unless_unchanged(
    settings: Settings,
    spec: TableSpec,
    frame: DataFrame,
    day: date,
    guard: Guard | None = None,
) -> None:
    """Check and write the day, unless that would change nothing."""
    # The Delta log is asked first, and `frame` only where the day holds no rows: the log
    # costs milliseconds, while whether `frame` has a row is a Spark job that computes the
    # plan up to its first row (past a shuffle, the whole stage before it). So rebuilding
    # a day that holds rows costs no extra job; a day that holds none, one `isEmpty`
    # (whose partitions a persisted frame keeps for the checks and the write).
    if changes_nothing(settings, spec, lambda: not frame.isEmpty(), day):
        return
    if guard is not None:
        guard(spec, day, frame)
    replace_partition(frame, spec, settings, [day])
