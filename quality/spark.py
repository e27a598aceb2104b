"""The Spark side of a validation: rows that arrive as a `pyspark.sql.DataFrame` (the
Spark engine's transforms) run the same suites through GX's Spark execution engine.

Nothing here imports pyspark at module import: the code location loads without Spark, and
a DataFrame is recognised by its class's module. The frame the expectations read is
persisted for the validation (GX runs a Spark job per map expectation and one for the
bundled aggregates) and released after it; GX's own persist is off, since it never
releases what it caches.
"""

from __future__ import annotations

from collections.abc import Iterator
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
def persisted(frame: Any) -> Iterator[Any]:
    """`frame` cached while GX reads it, then released."""
    frame = frame.persist()
    try:
        yield frame
    finally:
        frame.unpersist()


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
    """Up to `limit` whole rows of `frame` whose `column` is among `values`, as Arrow."""
    from pyspark.sql import functions as F

    return frame.filter(F.col(column).isin(values)).limit(limit).toArrow()
