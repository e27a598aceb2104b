"""Which engine runs a transform: its local twin (DuckDB over Arrow, delta-rs) or its
Spark twin, chosen by `LAKEHOUSE_ENGINE`.

Each module of heavy transforms (`ecommerce`) has a Spark module beside it
(`ecommerce_spark`) whose functions carry the same names and take the same arguments, so
the pair is read and changed together and a caller never names an engine: it hands over
the local function and gets the engine's. The light transforms (a few thousand rows of
alerts, one row of decision quality a day) have no twin and run locally on either
engine; `has_spark_twin` says which is which, and the asset log says it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.dataset as ds

from lakehouse.settings import Settings
from lakehouse.transforms.tables import ParquetDays, run_sql

Transform = TypeVar("Transform", bound=Callable[..., Any])

SPARK_SUFFIX = "_spark"


def on_engine(transform: Transform, settings: Settings) -> Transform:
    """`transform` itself on the local engine; on Spark, the function of the same name
    in its module's Spark twin, or `transform` itself if it has none (a light one)."""
    if settings.lakehouse_engine == "local":
        return transform
    return _spark_twin(transform) or transform


def has_spark_twin(transform: Callable[..., Any]) -> bool:
    """Whether `transform` runs on Spark when the engine is Spark."""
    return _spark_twin(transform) is not None


def _spark_twin(transform: Callable[..., Any]) -> Any:
    try:
        module = importlib.import_module(transform.__module__ + SPARK_SUFFIX)
    except ModuleNotFoundError as missing:
        if missing.name != transform.__module__ + SPARK_SUFFIX:
            raise  # the twin exists but needs something absent (pyspark): say so
        return None
    return getattr(module, transform.__name__, None)


def row_count(rows: Any) -> int:
    """Rows of a transform's output on either engine: an Arrow table's length, a lazy
    scan's or a Spark DataFrame's count (from the written files' footers when either
    reads a day back)."""
    if isinstance(rows, pa.Table):
        return rows.num_rows
    if isinstance(rows, ds.Dataset):
        return rows.count_rows()
    if isinstance(rows, ParquetDays):
        if rows.rows is not None:
            return rows.rows
        return run_sql("SELECT count(*) AS n FROM day", day=rows)["n"][0].as_py()
    return rows.count()


def to_arrow(rows: Any) -> pa.Table:
    """A transform's output as Arrow: what the gold metadata previews and charts read (a
    lazy scan is read, a Spark DataFrame collected to the driver: gold rows are
    aggregates)."""
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, ds.Dataset):
        return rows.to_table()
    if isinstance(rows, ParquetDays):
        return run_sql("SELECT * FROM day", day=rows)
    return rows.toArrow()
