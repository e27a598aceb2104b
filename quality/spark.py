"""The Spark side of a validation: rows that arrive as a `pyspark.sql.DataFrame` (the
Spark engine's transforms) run the same suites through GX's Spark execution engine.

Nothing here imports pyspark at module import: the code location loads without Spark, and
a DataFrame is recognised by its class's module. The frame the expectations read is
persisted for the validation (GX runs a Spark job per map expectation and one for the
bundled aggregates) and released after it; GX's own persist is off, since it never
releases what it caches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pyarrow as pa


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
