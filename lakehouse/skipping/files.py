"""Which live files of a Delta table can hold a row matching a statement's bounds.

The Delta log keeps per file `min`/`max` per column (and the partition values), which
delta-rs returns as one Arrow table. DuckDB itself evaluates the bounds over that table in
the query's own connection, so constants are cast, strings ordered and time zones applied
exactly as the query will do it. A file is skipped only when its statistics prove that
no row can match; a missing statistic proves nothing. Two corrections make the logged
statistics safe bounds: timestamps are stored truncated to milliseconds (the range is
widened by a millisecond each way, as delta-rs's own dataset does), and a string maximum
of 32 characters or more may be a truncated prefix (Spark's writer truncates to 32), so
it bounds nothing.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse.catalog import TableSpec
from lakehouse.skipping.predicates import Bound, Conjunction

TRUNCATED_STRING_CHARS = 32
_STATS_RELATION = "__skipping_stats"


def kept_files(
    connection: duckdb.DuckDBPyConnection,
    table: DeltaTable,
    spec: TableSpec,
    conjunctions: tuple[Conjunction, ...],
) -> pa.Array | None:
    """Positions, in `table.file_uris()` order, of the files some conjunction may match;
    None when nothing can be decided (no bounds, or DuckDB refused the bounds)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if not conjunctions or actions.num_rows == 0:
        return None
    columns = sorted({bound.column for conjunction in conjunctions for bound in conjunction})
    stats: dict[str, pa.Array] = {"position": pa.array(range(actions.num_rows), pa.int64())}
    for index, column in enumerate(columns):
        low, high, empty = _range(actions, spec, column)
        stats[f"lo{index}"], stats[f"hi{index}"], stats[f"none{index}"] = low, high, empty
    slots = {column: index for index, column in enumerate(columns)}
    keep = " OR ".join(
        "(" + " AND ".join(_may_match(bound, slots[bound.column]) for bound in conjunction) + ")"
        for conjunction in conjunctions
    )
    connection.register(_STATS_RELATION, pa.table(stats))
    try:
        kept = connection.sql(
            f"SELECT position FROM {_STATS_RELATION} WHERE {keep} ORDER BY position"
        ).to_arrow_table()
    except duckdb.Error:
        return None
    finally:
        connection.unregister(_STATS_RELATION)
    return kept.column("position").combine_chunks()


def _range(actions: pa.Table, spec: TableSpec, column: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Per file: a lower and an upper bound of the column's non-null values (null when
    unknown) and whether every value is null."""
    dtype = spec.schema.field(column).type
    rows = actions.num_rows
    if column in spec.partition_by:
        values = _column(actions, f"partition.{column}", dtype)
        return values, values, pc.is_null(values)
    low = _column(actions, f"min.{column}", dtype)
    high = _column(actions, f"max.{column}", dtype)
    if pa.types.is_timestamp(dtype):
        millisecond = pa.scalar(timedelta(milliseconds=1), pa.duration(dtype.unit))
        low, high = pc.subtract(low, millisecond), pc.add(high, millisecond)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        truncated = pc.greater_equal(pc.utf8_length(high), TRUNCATED_STRING_CHARS)
        high = pc.if_else(pc.fill_null(truncated, False), pa.nulls(rows, dtype), high)
    nulls = _column(actions, f"null_count.{column}", pa.int64())
    records = _column(actions, "num_records", pa.int64())
    empty = pc.fill_null(pc.equal(nulls, records), False)
    return low, high, empty


def _column(actions: pa.Table, name: str, dtype: pa.DataType) -> pa.Array:
    """One add-action column as `dtype`, all null if the log has no such statistic."""
    if name not in actions.column_names:
        return pa.nulls(actions.num_rows, dtype)
    return actions.column(name).combine_chunks().cast(dtype)


def _may_match(bound: Bound, slot: int) -> str:
    """SQL that is false only when the file's range proves no row meets `bound`."""
    low, high, empty = f"lo{slot}", f"hi{slot}", f"none{slot}"
    values = [f"({value})" for value in bound.values]
    if bound.op == "=":
        proof = _outside(low, high, values[0])
    elif bound.op == "in":
        proof = " AND ".join(f"({_outside(low, high, value)})" for value in values)
    elif bound.op == "between":
        proof = f"{high} < {values[0]} OR {low} > {values[1]}"
    else:
        proof = {
            "<": f"{low} >= {values[0]}",
            "<=": f"{low} > {values[0]}",
            ">": f"{high} <= {values[0]}",
            ">=": f"{high} < {values[0]}",
        }[bound.op]
    return f"NOT coalesce({empty} OR ({proof}), false)"


def _outside(low: str, high: str, value: str) -> str:
    return f"{low} > {value} OR {high} < {value}"
