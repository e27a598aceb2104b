"""What every transform does around its SQL: read some days of a catalogued table, run
DuckDB over Arrow tables, and replace one day of the output table.

One home for these so that every silver and gold table is read, computed and written the
same way: in UTC, with empty (typed) inputs when a table does not exist yet, and a day's
replacement as one atomic Delta predicate overwrite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import TableSpec
from lakehouse.delta import open_table, replace_partition
from lakehouse.settings import Settings


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
    **tables: pa.Table,
) -> pa.Table:
    """Run `sql` over the given Arrow tables (by name) in a fresh UTC DuckDB session.

    `deterministic` runs on one thread: floating-point sums then add up in the same order
    every time, so a rebuilt partition is bit-for-bit what it was (parallel aggregation
    reorders the additions). Worth it for small outputs that are compared across
    rebuilds; the large scans stay parallel.
    """
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        if deterministic:
            connection.execute("SET threads = 1")
        for name, table in tables.items():
            connection.register(name, table)
        result = connection.sql(sql, params=params or None).to_arrow_table()
    finally:
        connection.close()
    return result if schema is None else result.select(schema.names).cast(schema)


Guard = Callable[[TableSpec, date, Any], None]
"""Called with (table, day, rows) before a day is replaced; raises to refuse the write.
The rows are an Arrow table, or on the Spark engine a Spark DataFrame (`tables_spark`).

The data quality checks (`quality/`) are guards: rows that fail a blocking check never
replace the day's good rows, so a bad batch costs freshness, never correctness."""


def replace_day(
    settings: Settings, spec: TableSpec, rows: pa.Table, day: date, guard: Guard | None = None
) -> pa.Table:
    """Replace one event-date partition of a catalogued table with `rows` once `guard`
    (if any) has accepted them; return the rows."""
    if guard is not None:
        guard(spec, day, rows)
    replace_partition(spec, settings, rows, f"event_date = '{day.isoformat()}'")
    return rows
