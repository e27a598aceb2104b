"""The Spark side of a validation: rows that arrive as a `pyspark.sql.DataFrame` (the
Spark engine's transforms) run the same suites through GX's Spark execution engine.

Nothing here imports pyspark at module import: the code location loads without Spark, and
a DataFrame is recognised by its class's module. The frame the expectations read is
persisted for the validation (GX runs a Spark job per map expectation and one for the
bundled aggregates) and released after it; GX's own persist is off, since it never
releases what it caches.

An in-set expectation over a large reference set (`value_sets.in_large_set`: purchases'
known products, thousands of values) runs as GX's `UnexpectedRowsExpectation`, as on
DuckDB: a Spark SQL query of the rows whose non-null value is not in a temporary view of
the values, instead of GX's in-set expectation, whose value set GX re-serialised through
pydantic for about 2 s per validation. Its outcome is reported as the in-set
expectation's (the count, the percent of non-null values, the first failing ids). The
views live in the frame's session for the validation, under fixed names: as GX's own
query metrics on Spark, which register the batch as one session-wide `tmp_view`, two
validations must not run at once on one session.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pyarrow as pa

from quality.checks import Expect


def is_spark_frame(rows: Any) -> bool:
    """Whether `rows` is a Spark DataFrame, classic or Connect, without importing pyspark."""
    return any(
        kind.__name__ == "DataFrame" and kind.__module__.startswith("pyspark.sql.")
        for kind in type(rows).__mro__
    )


@cache
def batch_definition(context: Any) -> Any:
    """A whole-dataframe batch definition on a Spark datasource of the GX context."""
    source = context.data_sources.add_spark("lakehouse-spark", persist=False)
    return source.add_dataframe_asset("rows").add_batch_definition_whole_dataframe("day")


@contextmanager
def persisted(frame: Any, columns: list[str]) -> Iterator[Any]:
    """`frame`'s `columns` (all if none), cached while GX reads them, then released; read
    from `frame`'s own cache when the caller persisted it (`tables_spark.replace_day`
    does, for the gate and the write)."""
    chosen = frame.select(*columns) if columns else frame
    if frame.is_cached:
        yield chosen
        return
    chosen = chosen.persist()
    try:
        yield chosen
    finally:
        chosen.unpersist()


VIEW = "_gx_rows"
"""The frame under validation, as the failing ids' query of a large in-set reads it."""


def outside_set(gxe: Any, expect: Expect, index: int) -> Any:
    """GX's `UnexpectedRowsExpectation` for in-set `expect` (the `index`th of the suite):
    the rows whose non-null value is not in its value view (`value_views`)."""
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=_outside_query(expect, index, "{batch}"), meta={"at": index}
    )


@contextmanager
def value_views(
    frame: Any, value_sets: Mapping[int, list[Any]], columns: Mapping[int, str]
) -> Iterator[None]:
    """Each of `value_sets` (large in-set expectations' values, by the expectation's index)
    as the view `outside_set` queries, typed as its column of `frame` (`columns`, by the
    same index) so values and column compare alike, and `frame` as VIEW, while the block
    runs; the views are dropped after. Nothing is registered without a large set."""
    if not value_sets:
        yield
        return
    from pyspark.sql.types import StructField, StructType

    session = frame.sparkSession
    names = []
    try:
        frame.createOrReplaceTempView(VIEW)
        names.append(VIEW)
        for index, values in value_sets.items():
            kind = StructType([StructField("value", frame.schema[columns[index]].dataType)])
            known = [(value,) for value in values if value is not None]
            session.createDataFrame(known, kind).createOrReplaceTempView(_value_view(index))
            names.append(_value_view(index))
        yield
    finally:
        for name in names:
            session.catalog.dropTempView(name)


def outside_set_details(
    frame: Any, expect: Expect, index: int, failing_rows: int, id_columns: list[str], limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """What GX's in-set expectation reports besides its count (`failing_rows`, the
    verdict of `outside_set`): the non-null values of `frame` (the percent's denominator)
    and the ids of up to `limit` failing rows, looked for only when there are some (a
    clean day's search would read the whole day again for nothing)."""
    from pyspark.sql import functions as F

    nonnull = frame.select(F.count(frame[expect.kwargs["column"]])).first()[0]
    failing: list[dict[str, Any]] = []
    if id_columns and failing_rows:
        outside = frame.sparkSession.sql(_outside_query(expect, index, VIEW))
        failing = [row.asDict() for row in outside.select(*id_columns).limit(limit).collect()]
    return int(nonnull), failing


def _outside_query(expect: Expect, index: int, rows: str) -> str:
    column = f"`{expect.kwargs['column']}`"
    return (
        f"SELECT * FROM {rows} WHERE {column} IS NOT NULL"
        f" AND {column} NOT IN (SELECT value FROM {_value_view(index)})"
    )


def _value_view(index: int) -> str:
    return f"_gx_values_{int(index)}"


# Expectations that GX's Spark engine judges in Python, on a value collected from Spark.
_COLLECTED_BOUNDS = ("ExpectColumnMaxToBeBetween", "ExpectColumnMinToBeBetween")


def expectation_kwargs(type_: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """An expectation's arguments for GX's Spark engine. A column's maximum (or minimum)
    comes back from Spark as a naive datetime in the Python process's local time, which
    GX cannot compare with an aware bound (the bronze freshness check's): such a bound is
    handed over as the same instant in that local time, naive."""
    kwargs = dict(kwargs)
    if type_ in _COLLECTED_BOUNDS:
        for key in ("min_value", "max_value"):
            value = kwargs.get(key)
            if isinstance(value, datetime) and value.tzinfo is not None:
                kwargs[key] = value.astimezone().replace(tzinfo=None)
    return kwargs


def result_details(details: dict[str, Any]) -> dict[str, Any]:
    """GX's result as the pandas engine gives it: on an empty frame Spark's sum of
    unexpected rows is null where pandas counts 0."""
    if details.get("element_count") == 0 and details.get("unexpected_count", 0) is None:
        return {**details, "unexpected_count": 0}
    return details


def plain(value: Any) -> Any:
    """A value GX collected from Spark, as the pandas engine reports it. Spark hands a
    timestamp column's values to Python as naive datetimes in the Python process's local
    time (not the session's time zone); the lake's timestamps are UTC instants, so they
    become aware UTC datetimes again (equal to the pandas engine's `pd.Timestamp`s)."""
    if hasattr(value, "item"):  # a numpy scalar, should GX hand one back
        value = value.item()
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.astimezone(UTC)
    if isinstance(value, float) and value != value:  # NaN, as on pandas
        return None
    return value


def sample(frame: Any, column: str, values: list[Any], limit: int) -> pa.Table:
    """Up to `limit` whole rows of `frame` whose `column` is among `values`, as Arrow. A
    failing row without an id (None) matches rows whose id is null, as Arrow's `is_in`
    does; Spark's `isin` never matches a null."""
    from pyspark.sql import functions as F

    known = [value for value in values if value is not None]
    wanted = F.col(column).isin(known)
    if len(known) < len(values):
        wanted = wanted | F.col(column).isNull()
    return frame.filter(wanted).limit(limit).toArrow()
