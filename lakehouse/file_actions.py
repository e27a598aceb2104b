"""Delta add actions for Parquet files another engine wrote: size, modification time,
partition values and the statistics delta-rs itself would have written.

The statistics matter beyond bookkeeping: the platform's log-only figures (rows per
partition for the volume checks and the sensor, `lakehouse tables`) and file skipping
read them from the Delta log without opening a file. They come from the Parquet footers
(row-group statistics), so no data page is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake.transaction import AddAction
from pyarrow import fs

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class WrittenFile:
    """One data file in place under the table's folder: its path relative to the table
    root (what the Delta log records) and the filesystem it lives on."""

    filesystem: fs.FileSystem
    table_root: str
    relative_path: str

    @property
    def full_path(self) -> str:
        return f"{self.table_root}/{self.relative_path}"


def add_action(written: WrittenFile, partition_by: tuple[str, ...]) -> AddAction:
    """The add action that makes `written` part of a commit."""
    info = written.filesystem.get_file_info(written.full_path)
    with written.filesystem.open_input_file(written.full_path) as source:
        metadata = pq.ParquetFile(source).metadata
    return AddAction(
        path=written.relative_path,
        size=info.size,
        partition_values=partition_values(written.relative_path, partition_by),
        modification_time=int(info.mtime.timestamp() * 1000),
        data_change=True,
        stats=orjson.dumps(file_stats(metadata)).decode(),
    )


def partition_values(relative_path: str, partition_by: tuple[str, ...]) -> dict[str, str | None]:
    """Partition values from the `column=value` folders of a path, as the Delta log holds
    them (unescaped strings; None for Hive's null folder)."""
    folders = dict(
        segment.split("=", 1) for segment in relative_path.split("/")[:-1] if "=" in segment
    )
    values: dict[str, str | None] = {}
    for column in partition_by:
        raw = unquote(folders[column])
        values[column] = None if raw == HIVE_NULL else raw
    return values


def file_stats(metadata: pq.FileMetaData) -> dict[str, Any]:
    """Delta file statistics (`numRecords`, `minValues`, `maxValues`, `nullCount`) for the
    top-level primitive columns, from the row-group statistics of a Parquet footer.

    Timestamps are written as delta-rs writes them (milliseconds, `Z`), the minimum
    rounded down and the maximum rounded up so that a skipped file never holds a match.
    A column without statistics in some row group gets none.
    """
    schema = metadata.schema.to_arrow_schema()
    minimum: dict[str, Any] = {}
    maximum: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for position, name in _top_level_leaves(metadata):
        column = _column_stats(metadata, position)
        if column is None:
            continue
        nulls[name], low, high = column
        dtype = schema.field(name).type
        if low is not None and _json_safe(low) and _json_safe(high):
            minimum[name] = _stat_value(low, dtype, round_up=False)
            maximum[name] = _stat_value(high, dtype, round_up=True)
    return {
        "numRecords": metadata.num_rows,
        "minValues": minimum,
        "maxValues": maximum,
        "nullCount": nulls,
    }


def _top_level_leaves(metadata: pq.FileMetaData) -> list[tuple[int, str]]:
    """(leaf position, name) of the columns that are not inside a list or struct: row
    groups number leaves, so a nested column before them shifts the positions."""
    if metadata.num_row_groups == 0:
        return []
    group = metadata.row_group(0)
    paths = (group.column(position).path_in_schema for position in range(group.num_columns))
    return [(position, path) for position, path in enumerate(paths) if "." not in path]


def _column_stats(metadata: pq.FileMetaData, position: int) -> tuple[int, Any, Any] | None:
    """(null count, min, max) of one column over all row groups; None where a row group
    has no statistics for it. min and max are None for an all-null column."""
    nulls, low, high = 0, None, None
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(position).statistics
        if stats is None or not stats.has_null_count:
            return None
        nulls += stats.null_count
        if stats.has_min_max:
            low = stats.min if low is None else min(low, stats.min)
            high = stats.max if high is None else max(high, stats.max)
        elif stats.num_values:
            return None
    return nulls, low, high


def _json_safe(value: Any) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


def _stat_value(value: Any, dtype: pa.DataType, *, round_up: bool) -> Any:
    """A statistic as the Delta log's JSON holds it."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        floor = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if round_up and floor != moment:
            floor += timedelta(milliseconds=1)
        text = floor.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        return f"{text}Z" if dtype.tz else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
