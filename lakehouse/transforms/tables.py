"""What every transform does around its SQL: read some days of a catalogued table, run
DuckDB over Arrow, and replace one day of the output table.

One home for these so that every silver and gold table is read, computed and written the
same way: in UTC, with empty (typed) inputs when a table does not exist yet, and a day's
replacement as one atomic Delta predicate overwrite.

A day need not fit in memory: `scan_days` hands DuckDB a lazy scan of the day's files
(DuckDB reads only the columns its SQL names, batch by batch), and a day staged in DuckDB
(`duck.Staged`, a view or table of a session bounded in memory) is written by DuckDB as
the day's Parquet files, checked there, and committed by delta-rs (`replace_day`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable

from lakehouse.catalog import TableSpec, table_uri
from lakehouse.delta import (
    day_holds_rows,
    ensure_table,
    open_table,
    replace_partition,
    replace_partition_files,
)
from lakehouse.settings import Settings
from lakehouse.transforms import duck

STREAM_BATCH_ROWS = 256 * 1024
"""Rows per Arrow batch when a staged day streams into its Delta commit: large enough for
DuckDB and delta-rs to work in bulk, small enough (tens of MB) to keep memory flat."""


def read_days(
    settings: Settings,
    spec: TableSpec,
    columns: list[str] | None,
    first: date,
    last: date | None = None,
) -> pa.Table:
    """The event-date partitions `first`..`last` (inclusive; `last` defaults to `first`) of
    a catalogued table, only `columns` (all if None); typed and empty if it is absent."""
    table = open_table(spec, settings)
    if table is None:
        empty = spec.schema.empty_table()
        return empty if columns is None else empty.select(columns)
    last = first if last is None else last
    window = (pc.field("event_date") >= first) & (pc.field("event_date") <= last)
    return table.to_pyarrow_dataset().to_table(columns=columns, filter=window)


def scan_days(settings: Settings, spec: TableSpec, first: date, last: date | None = None) -> Source:
    """The event-date partitions `first`..`last` of a catalogued table as a lazy scan:
    nothing is read until DuckDB runs over it, and then only the columns and files its SQL
    needs, batch by batch. What the builds of days too large for memory read; typed and
    empty if the table is absent.

    Where DuckDB can read the day's files itself (`ParquetDays`: a lake in a local folder,
    a table without deletion vectors or column mapping, every catalogued column in the
    files), it does, under its session's memory limit; otherwise the scan is an Arrow
    dataset (an S3 lake: DuckDB's S3 reader is an extension this platform cannot fetch),
    which costs about 1 GiB of Arrow's read-ahead beyond the limit (measured on a 2M-row
    day: 1.65 GiB peak instead of 0.76 GiB under a 512 MB limit).
    """
    table = open_table(spec, settings)
    if table is None:
        return spec.schema.empty_table()
    last = first if last is None else last
    if not settings.lake_is_s3 and not table.protocol().reader_features:
        days = _parquet_days(table, spec, settings, first, last)
        if days is not None:
            return days
    window = (pc.field("event_date") >= first) & (pc.field("event_date") <= last)
    return table.to_pyarrow_dataset().filter(window)


@dataclass(frozen=True)
class ParquetDays:
    """Some event-date partitions of a Delta table as the Parquet files of its current
    snapshot, by day, for DuckDB's own Parquet reader (`register`). The partition column
    is not in the files (Delta keeps it in the log): each day's files get it as a constant."""

    files: dict[date, tuple[str, ...]]
    columns: tuple[str, ...]
    rows: int | None  # from the log's file statistics, when every file has them


Source = pa.Table | ds.Dataset | ParquetDays
"""What a transform's SQL reads a table as: Arrow in memory, or a lazy scan of files
(`register` makes any of them a table name in a DuckDB session)."""


def _parquet_days(
    table: DeltaTable, spec: TableSpec, settings: Settings, first: date, last: date
) -> ParquetDays | None:
    """The days' files, or None when DuckDB's reader would not see the table's rows as
    Delta does: a day without files (the dataset gives the typed empty table), or files
    lacking a catalogued column (added since they were written: the dataset fills NULLs)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    days = actions["partition.event_date"]
    wanted = actions.filter(pc.and_(pc.greater_equal(days, first), pc.less_equal(days, last)))
    if wanted.num_rows == 0:
        return None
    root = Path(table_uri(spec, settings))
    files: dict[date, list[str]] = {}
    for day, path in zip(
        wanted["partition.event_date"].to_pylist(), wanted["path"].to_pylist(), strict=True
    ):
        files.setdefault(day, []).append(str(root / unquote(path)))
    columns = tuple(name for name in spec.schema.names if name != "event_date")
    every_file = (path for paths in files.values() for path in paths)
    if not all(set(columns) <= set(pq.read_schema(path).names) for path in every_file):
        return None
    rows = pc.sum(wanted["num_records"]).as_py() if wanted["num_records"].null_count == 0 else None
    return ParquetDays({day: tuple(paths) for day, paths in files.items()}, columns, rows)


def register(connection: duckdb.DuckDBPyConnection, name: str, source: Source) -> None:
    """Make `source` readable as `name` in `connection`: Arrow is registered as it is, a
    `ParquetDays` becomes a view over DuckDB's reader of its files."""
    if not isinstance(source, ParquetDays):
        connection.register(name, source)
        return
    columns = ", ".join(f'"{column}"' for column in source.columns)
    days = " UNION ALL ".join(
        f"SELECT {columns}, DATE '{day.isoformat()}' AS event_date "
        f"FROM read_parquet({_sql_list(paths)}, union_by_name = true)"
        for day, paths in sorted(source.files.items())
    )
    connection.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {days}')


def _sql_list(paths: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + path.replace("'", "''") + "'" for path in paths) + "]"


@dataclass(frozen=True)
class Spelling:
    """What DuckDB and Spark SQL spell differently in the gold SQL texts, filled in per
    engine (Spark's is `tables_spark.SPARK`) so that both run one text: the struct of some
    columns (fields named after them), flattening a list into rows, a list aggregated in
    an order (`ordered`, a format of `value`, `order` and `where`; `value` a column name,
    since Spark has no ORDER BY inside an aggregate and sorts (order, value) structs) and
    the empty list."""

    struct: str
    unnest: str
    ordered: str
    empty: str


DUCKDB = Spelling(
    struct="struct_pack",
    unnest="unnest",
    ordered="list({value} ORDER BY {order}) FILTER (WHERE {where})",
    empty="[]",
)


def run_sql(
    sql: str,
    schema: pa.Schema | None = None,
    params: dict[str, object] | None = None,
    *,
    deterministic: bool = False,
    **tables: Source,
) -> pa.Table:
    """Run `sql` over the given Arrow tables or scans (by name) in a fresh DuckDB session
    (`duck.session`: UTC, bounded by the enclosing build's settings).

    `deterministic` runs on one thread: floating-point sums then add up in the same order
    every time, so a rebuilt partition is bit-for-bit what it was (parallel aggregation
    reorders the additions). Worth it for small outputs that are compared across
    rebuilds; the large scans stay parallel.
    """
    with duck.session() as connection:
        if deterministic:
            connection.execute("SET threads = 1")
        for name, table in tables.items():
            register(connection, name, table)
        result = connection.sql(sql, params=params or None).to_arrow_table()
    return result if schema is None else result.select(schema.names).cast(schema)


Guard = Callable[[TableSpec, date, Any], None]
"""Called with (table, day, rows) before a day is replaced; raises to refuse the write.
The rows are an Arrow table, a `duck.Staged` table (a day staged out of core,
`replace_day`), or on the Spark engine a Spark DataFrame (`tables_spark`).

The data quality checks (`quality/`) are guards: rows that fail a blocking check never
replace the day's good rows, so a bad batch costs freshness, never correctness."""


def replace_day(
    settings: Settings,
    spec: TableSpec,
    rows: pa.Table | duck.Staged,
    day: date,
    guard: Guard | None = None,
) -> pa.Table | duck.Staged:
    """Replace one event-date partition of a catalogued table with `rows` once `guard`
    (if any) has accepted them; return the rows.

    `rows` in Arrow are checked and written as they are. A staged day (a table or view of
    a `duck.session`, larger than memory if need be) is first written by DuckDB as the
    Parquet files the day will be made of (`staged_day_files`), the guard checks those
    files, and only then are they committed: moved into the table's folder and added in
    one delta-rs transaction, or, where DuckDB cannot write into the lake (S3), streamed
    into delta-rs's predicate overwrite. A refused day's files are deleted unread.

    A day without rows whose partition holds none either is left alone (`changes_nothing`):
    the write would change nothing but add a commit and an empty file, so neither the
    guard nor the write runs, and the guard keeps no verdict for the day (which is how
    the asset layer tells and reports it). A backfill over days where the inputs are
    empty costs next to nothing that way; a day that held rows is still replaced.
    """
    if changes_nothing(settings, spec, rows, day):
        return rows
    predicate = f"event_date = '{day.isoformat()}'"
    if isinstance(rows, pa.Table):
        if guard is not None:
            guard(spec, day, rows)
        replace_partition(spec, settings, rows, predicate)
        return rows
    in_place = not settings.lake_is_s3 and spec.partition_by == ("event_date",)
    root = Path(table_uri(spec, settings))
    # In the table's own folder the files are moved, not copied, into the day's folder.
    parent = root / "_staging" if in_place else settings.duckdb_spill
    file_bytes = settings.maintenance_target_file_bytes
    with staged_day_files(rows, spec, day, parent, file_bytes) as (files, written):
        if guard is not None:
            guard(spec, day, written)
        if in_place:
            folder = root / f"event_date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            moved = [file.rename(folder / file.name) for file in files]
            replace_partition_files(spec, settings, moved, {"event_date": day.isoformat()})
        else:
            relation = written.relation()
            replace_partition(spec, settings, lambda: stream(relation, spec.schema), predicate)
    return rows


HasRows = Callable[[], bool]
"""Whether a day has rows to write, for rows dear to ask: a Spark plan, which a job
computes up to its first row to answer (`tables_spark.replace_day`)."""


def changes_nothing(
    settings: Settings,
    spec: TableSpec,
    rows: pa.Table | duck.Staged | duckdb.DuckDBPyRelation | HasRows,
    day: date,
) -> bool:
    """Whether replacing the day of `spec` with `rows` would change nothing, so that no
    check, commit or file is owed: no rows to write, and the table already empty for the
    day (`_already_empty`). The cheaper question is asked first: rows in Arrow or DuckDB
    before the Delta log (they read no log); rows asked through `HasRows` after it, and
    only if the day is empty (the log costs milliseconds, a Spark job far more)."""
    if callable(rows):
        return _already_empty(settings, spec, day) and not rows()
    return not _has_rows(rows) and _already_empty(settings, spec, day)


def _has_rows(rows: pa.Table | duck.Staged | duckdb.DuckDBPyRelation) -> bool:
    """Whether a day's rows (Arrow, staged in DuckDB, or a relation) hold any row: a
    staged day is asked for its first row only, not counted."""
    if isinstance(rows, pa.Table):
        return rows.num_rows > 0
    relation = rows.relation() if isinstance(rows, duck.Staged) else rows
    return bool(relation.limit(1).fetchall())


def _already_empty(settings: Settings, spec: TableSpec, day: date) -> bool:
    """Whether replacing the event-date partition `day` of a catalogued table with no
    rows would change nothing, from the Delta log alone: the day holds no rows and the
    table has every catalogued column (else the write adds the new ones: the schema
    merge of `replace_partition`). The table is created (empty) if absent: a run leaves
    every table it builds in the lake, as the write would have."""
    table = ensure_table(spec, settings)
    columns = {field.name for field in table.schema().fields}
    return set(spec.schema.names) <= columns and not day_holds_rows(table, day)


@contextmanager
def staged_day_files(
    rows: duck.Staged, spec: TableSpec, day: date, parent: Path, file_bytes: int
) -> Iterator[tuple[list[Path], duck.Staged]]:
    """The staged day written by DuckDB, under its session's memory limit, as Parquet
    files (snappy, about `file_bytes` each: the compaction's target file size) in a fresh
    folder under `parent`, and a view of the session over them, in the table's columns:
    what the checks read and the commit adds. The folder (with any file left in it) and
    the view are gone on exit.

    Writing the day's files first, from the rows as they are computed, is what keeps a
    day's build linear in its rows: the day is never a table of the session, which past
    the memory limit DuckDB spilled uncompressed and read back for the write and again
    for every check, while the checks read only the columns they need from the files."""
    staging = parent / uuid.uuid4().hex
    staging.mkdir(parents=True)
    view = f"{rows.table}_files"
    try:
        stored = ", ".join(f'"{name}"' for name in spec.schema.names if name != "event_date")
        rows.relation().query(
            "day_rows",
            f"COPY (SELECT {stored} FROM day_rows) TO '{_sql_text(staging)}' "
            f"(FORMAT parquet, COMPRESSION snappy, FILE_SIZE_BYTES {int(file_bytes)}, "
            "FILENAME_PATTERN 'part-{uuid}')",
        )
        files = sorted(staging.glob("*.parquet"))
        # event_date is the partition's value, in the folder's name, not in the files.
        columns = ", ".join(
            f"DATE '{day.isoformat()}' AS event_date" if name == "event_date" else f'"{name}"'
            for name in spec.schema.names
        )
        listing = ", ".join(f"'{_sql_text(file)}'" for file in files)
        rows.connection.execute(
            f'CREATE OR REPLACE VIEW "{view}" AS SELECT {columns} FROM read_parquet([{listing}])'
        )
        yield files, duck.Staged(rows.connection, view)
    finally:
        rows.connection.execute(f'DROP VIEW IF EXISTS "{view}"')
        shutil.rmtree(staging, ignore_errors=True)


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def stream(relation: duckdb.DuckDBPyRelation, schema: pa.Schema) -> pa.RecordBatchReader:
    """A relation's rows as Arrow batches in `schema` (its column order and types)."""
    reader = relation.select(*[duckdb.ColumnExpression(name) for name in schema.names])
    return reader.to_arrow_reader(STREAM_BATCH_ROWS).cast(schema)
