"""Delta tables read and written from Spark without the delta-spark jars.

Two paths, chosen by what the session's classpath holds (`delta_jars_available`):

- delta-spark (EMR, Databricks, images built with its jars): its reader and its writer,
  with `replaceWhere` for the partition replacement the local engine does with a
  predicate overwrite. Not exercised by the tests: the jars cannot be fetched here.
- the bridge (everywhere else, and in the tests): delta-rs lists the current snapshot's
  live files and Spark reads them as Parquet; Spark writes Parquet under a staging folder
  in the table, the files are moved beside the table's own and committed by delta-rs in
  ONE overwrite transaction of exactly the given days, with the statistics the
  platform's log-only figures and file skipping read.

Either way a partition written twice holds the second write exactly, and a failed job
commits nothing. Only a driver killed outright can leave staged or moved files behind,
which no reader sees (docs/spark.md says how to clean them up).
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from functools import reduce
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.transaction import AddAction
from pyarrow import fs

from lakehouse import storage
from lakehouse.catalog import TableSpec, table_uri
from lakehouse.delta import ensure_table, open_table, retry_on_conflict
from lakehouse.file_actions import WrittenFile, add_action
from lakehouse.settings import Settings
from lakehouse.spark.session import delta_jars_available

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

STAGING_FOLDER = "_spark_staging"  # leading underscore: Delta readers and VACUUM skip it
COMMIT_METADATA = {"engine": "spark", "writer": "lakehouse.spark.delta_bridge"}
"""In the commitInfo of every bridge commit: the table's history says which engine wrote
each version (delta-rs's own writes carry none)."""


def read_table(
    spark: SparkSession,
    spec: TableSpec,
    settings: Settings,
    *,
    days: list[date] | None = None,
    columns: list[str] | None = None,
    between: tuple[date, date] | None = None,
) -> DataFrame:
    """The table's current snapshot as a Spark DataFrame with the catalog's columns in
    the catalog's order (only `columns` if given), only the day partitions in `days` or
    `between` (first, last), inclusive, if given; an empty typed DataFrame if the table
    is absent or holds none of them.

    Partition values are not in the Parquet files: each group of files with the same
    partition values is read on its own and given them as typed literal columns.
    """
    wanted = _day_filter(days, between)
    if delta_jars_available(spark):
        return _read_with_delta_spark(spark, spec, settings, days, between, columns)
    table = open_table(spec, settings)
    groups = _files_by_partition(table, spec, wanted) if table is not None else {}
    schema = spark_schema(spec.schema)
    data_schema = spark_schema(_data_schema(spec))
    frames = [
        _read_group(spark, data_schema, spec, files, values) for values, files in groups.items()
    ]
    if frames:
        frame = reduce(lambda left, right: left.unionByName(right), frames)
    else:
        frame = spark.createDataFrame([], schema)
    return frame.select(*(columns or spec.schema.names))


def replace_partition(
    frame: DataFrame, spec: TableSpec, settings: Settings, predicate_days: list[date]
) -> int:
    """Replace the day partitions `predicate_days` of a table with `frame`'s rows in one
    Delta commit; return the table's version after it.

    Every row must fall in one of those days (refused before anything is committed
    otherwise). A day in `predicate_days` without rows is emptied, as the local engine's
    predicate overwrite does. Re-running with the same rows leaves the same contents.
    """
    column = _day_column(spec)
    if delta_jars_available(frame.sparkSession):
        return _replace_with_delta_spark(frame, spec, settings, column, predicate_days)
    table = ensure_table(spec, settings)
    _check_columns(spec, table)
    filesystem, root = storage.filesystem(settings, table_uri(spec, settings))
    staging = f"{root}/{STAGING_FOLDER}/{uuid.uuid4()}"
    moved: list[WrittenFile] = []
    try:
        _typed(frame, spec).write.mode("errorifexists").partitionBy(*spec.partition_by).parquet(
            _spark_uri(settings, staging)
        )
        moved = _move_into_table(filesystem, root, staging)
        actions = [add_action(written, spec.partition_by) for written in moved]
        _check_days(spec, column, actions, predicate_days)
        return _commit(table, spec, column, actions, predicate_days)
    except BaseException:
        _remove_uncommitted(table, moved)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            filesystem.delete_dir(staging)


def spark_schema(schema: pa.Schema) -> StructType:
    """The Spark schema of a catalog schema (timestamps with a time zone as Spark's
    TimestampType, the lake's UTC instants)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=True)


# --- reading --------------------------------------------------------------------------


DayFilter = Callable[[date], bool] | None
"""Which day partitions to read; None for all."""


def _day_filter(days: list[date] | None, between: tuple[date, date] | None) -> DayFilter:
    if days is not None and between is not None:
        raise ValueError("read_table takes `days` or `between`, not both")
    if days is not None:
        return set(days).__contains__
    if between is not None:
        first, last = between
        return lambda day: first <= day <= last
    return None


def _files_by_partition(
    table: DeltaTable, spec: TableSpec, wanted: DayFilter
) -> dict[tuple[object, ...], list[str]]:
    """The snapshot's live file URIs grouped by their (typed) partition values, only the
    wanted days. `file_uris()` lists the files in the order of the add actions."""
    actions = pa.table(table.get_add_actions(flatten=True))
    uris = table.file_uris()
    columns = [actions[f"partition.{name}"].to_pylist() for name in spec.partition_by]
    day_position = spec.partition_by.index(_day_column(spec)) if wanted is not None else 0
    groups: dict[tuple[object, ...], list[str]] = defaultdict(list)
    for position, uri in enumerate(uris):
        values = tuple(column[position] for column in columns)
        if wanted is None or wanted(values[day_position]):
            groups[values].append(uri)
    return groups


def _read_group(
    spark: SparkSession,
    data_schema: StructType,
    spec: TableSpec,
    files: list[str],
    values: tuple[object, ...],
) -> DataFrame:
    from pyspark.sql import functions as F

    frame = spark.read.schema(data_schema).parquet(*(_spark_path(uri) for uri in files))
    for name, value in zip(spec.partition_by, values, strict=True):
        dtype = spark_schema(pa.schema([spec.schema.field(name)]))[name].dataType
        frame = frame.withColumn(name, F.lit(value).cast(dtype))
    return frame


def _data_schema(spec: TableSpec) -> pa.Schema:
    """The columns the Parquet files hold: all but the partition columns."""
    return pa.schema([field for field in spec.schema if field.name not in spec.partition_by])


def _spark_path(uri: str) -> str:
    """A delta-rs file URI as Spark's Hadoop filesystems name it (S3 is `s3a://`)."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


# --- writing --------------------------------------------------------------------------


def _day_column(spec: TableSpec) -> str:
    column = spec.date_partition
    if column is None:
        raise ValueError(f"{spec.key} has no day partition to replace")
    return column


def _check_columns(spec: TableSpec, table: DeltaTable) -> None:
    """The bridge commits with the table's schema; a column the catalog added since the
    table was created is merged by a rebuild on the local engine (or on delta-spark)."""
    missing = set(spec.schema.names) - set(pa.schema(table.schema().to_arrow()).names)
    if missing:
        raise ValueError(
            f"{spec.key} lacks the catalogued columns {sorted(missing)}: rebuild one day "
            "with LAKEHOUSE_ENGINE=local to merge the schema first"
        )


def _typed(frame: DataFrame, spec: TableSpec) -> DataFrame:
    """The catalog's columns in its order and types (so the files match the Delta
    schema: a Spark `int` sum is a `bigint`, an Arrow `int32` column an `int`)."""
    from pyspark.sql import functions as F

    schema = spark_schema(spec.schema)
    return frame.select(*(F.col(field.name).cast(field.dataType) for field in schema))


def _spark_uri(settings: Settings, path: str) -> str:
    """A pyarrow filesystem path as Spark names it."""
    return f"s3a://{path}" if settings.lake_is_s3 else path


def _move_into_table(filesystem: fs.FileSystem, root: str, staging: str) -> list[WrittenFile]:
    """Move the Parquet files Spark wrote under `staging` to the same partition folders in
    the table, where the table's other data files live (Spark's file names carry its job's
    UUID, so they cannot collide). Spark's `_SUCCESS` and checksum files stay behind."""
    selector = fs.FileSelector(staging, recursive=True)
    moved = []
    for info in filesystem.get_file_info(selector):
        name = info.base_name
        if info.type != fs.FileType.File or not name.endswith(".parquet") or name[0] in "._":
            continue
        relative = info.path.removeprefix(f"{staging}/")
        target = WrittenFile(filesystem, root, relative)
        filesystem.create_dir(target.full_path.rsplit("/", 1)[0], recursive=True)
        filesystem.move(info.path, target.full_path)
        moved.append(target)
    return moved


def _check_days(spec: TableSpec, column: str, actions: list[AddAction], days: list[date]) -> None:
    """Refuse rows outside the replaced days: the overwrite would keep them beside the
    days' old rows, which is not a replacement."""
    allowed = {day.isoformat() for day in days}
    for action in actions:
        value = action.partition_values[column]
        if value not in allowed:
            raise ValueError(f"{spec.key}: a row of {column}={value} outside the replaced days")


def _commit(
    table: DeltaTable,
    spec: TableSpec,
    column: str,
    actions: list[AddAction],
    days: list[date],
    attempts: int = 5,
) -> int:
    """One delta-rs transaction: remove every live file of `days`, add `actions`.

    Retried on a fresh snapshot when a concurrent commit (the nightly compaction of one of
    the days) conflicts: the overwrite replaces the whole days, so the result is the same.
    """
    filters = [(column, "in", [day.isoformat() for day in days])]
    return retry_on_conflict(table, lambda: _transaction(table, spec, actions, filters), attempts)


def _transaction(
    table: DeltaTable, spec: TableSpec, actions: list[AddAction], filters: list
) -> int:
    table.create_write_transaction(
        actions=actions,
        mode="overwrite",
        schema=table.schema(),
        partition_by=list(spec.partition_by),
        partition_filters=filters,
        commit_properties=CommitProperties(custom_metadata=COMMIT_METADATA),
    )
    return table.version()


def _remove_uncommitted(table: DeltaTable, moved: list[WrittenFile]) -> None:
    """Delete moved files that no commit references (a failed job or a refused commit),
    so a failure leaves no orphans. A file the log does list (a commit whose reply was
    lost) is kept."""
    if not moved:
        return
    table.update_incremental()
    live = set(pa.table(table.get_add_actions()).column("path").to_pylist())
    for written in moved:
        if written.relative_path not in live:
            written.filesystem.delete_file(written.full_path)


# --- delta-spark, where its jars are on the classpath (not testable here: no Maven) ---


def _read_with_delta_spark(
    spark: SparkSession,
    spec: TableSpec,
    settings: Settings,
    days: list[date] | None,
    between: tuple[date, date] | None,
    columns: list[str] | None,
) -> DataFrame:
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").load(_spark_path(table_uri(spec, settings)))
    day = F.col(_day_column(spec))
    if days is not None:
        frame = frame.where(day.isin(days))
    if between is not None:
        frame = frame.where(day.between(*between))
    return frame.select(*(columns or spec.schema.names))


def _replace_with_delta_spark(
    frame: DataFrame, spec: TableSpec, settings: Settings, column: str, days: list[date]
) -> int:
    listed = ", ".join(f"DATE'{day.isoformat()}'" for day in days)
    uri = table_uri(spec, settings)
    (
        _typed(frame, spec)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} IN ({listed})")
        .partitionBy(*spec.partition_by)
        .save(_spark_path(uri))
    )
    return DeltaTable(uri, storage_options=settings.storage_options()).version()
