"""The DuckDB side of a validation: rows that arrive as a `duckdb.DuckDBPyRelation` (the
out-of-core builds stage a day in DuckDB) run the same suites on GX's SQL execution
engine, through duckdb-engine (DuckDB's SQLAlchemy dialect), so the day never goes to
pandas: each expectation is a query that DuckDB answers in bounded memory.

A relation does not expose its connection, and a relation of one connection cannot be
read by another except as a stream: the columns the expectations read are streamed once
(Arrow batches) into a table of this module's own DuckDB connection, whose memory limit
and spill folder bound it, and GX queries that table. The copy also keeps GX's queries
off the builder's connection and its transaction.

Two documented workarounds make GX 1.24 and duckdb-engine 0.17 agree:
- duckdb-engine's cursors all run on one DuckDB connection, so the rollback SQLAlchemy
  issues when GX hands a connection back (before GX fetches the rows, which it does) closes
  the result: fetchall() returns [] or "No open result set". GX only reads, so the
  connection it gets ignores begin, commit and rollback.
- duckdb-engine's table reflection queries `pg_catalog.pg_collation`, which DuckDB lacks
  under SQLAlchemy 2.1: GX reads a query asset (`SELECT * FROM <table>`), whose columns
  it takes from the query's result instead of reflecting.

And two where GX's SQL engine judges compound uniqueness unlike its pandas engine:
- It joins each row to its key's count with `=`, so a row with a null in any key column
  joins nothing and is never counted, where pandas counts duplicates with nulls alike
  (`duplicated(keep=False)`). On DuckDB the join is null-safe (`IS NOT DISTINCT FROM`),
  and only the duplicated keys join back (a left join; half the time at 1M rows).
- It returns no failing ids for compound uniqueness on SQL (GX skips them there), only
  the failing key values: the rows with those keys are found again for their ids.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import pyarrow as pa

TABLE = "gx_rows"
MEMORY_LIMIT = "1GB"  # the copy and GX's queries; beyond it DuckDB spills to SPILL_DIRECTORY
STREAM_BATCH_ROWS = 256 * 1024
_lock = threading.Lock()  # one staged table per process: validations take turns


def is_relation(rows: Any) -> bool:
    """Whether `rows` is a DuckDB relation, without importing duckdb."""
    kind = type(rows)
    return kind.__name__ == "DuckDBPyRelation" and kind.__module__.split(".")[0] in (
        "duckdb",
        "_duckdb",
    )


@cache
def connection() -> Any:
    """This process's DuckDB connection for validations: bounded memory, spilling to a
    temporary folder."""
    import duckdb

    spill = tempfile.mkdtemp(prefix="gx-duckdb-spill-")
    return duckdb.connect(
        config={
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": spill,
        }
    )


@cache
def batch_definition(context: Any) -> Any:
    """A whole-table batch definition of a query asset over the staged table, on a SQL
    datasource whose engine reuses this process's DuckDB connection."""
    from sqlalchemy.pool import StaticPool

    _null_safe_compound_uniqueness()

    source = context.data_sources.add_sql(
        "lakehouse-duckdb",
        connection_string="duckdb:///:memory:",
        kwargs={
            "creator": _read_only_connection,
            "poolclass": StaticPool,
            "pool_reset_on_return": None,
        },
    )
    asset = source.add_query_asset("rows", query=f"SELECT * FROM {TABLE}")
    return asset.add_batch_definition_whole_table("day")


def _read_only_connection() -> Any:
    from duckdb_engine import ConnectionWrapper

    class ReadOnly(ConnectionWrapper):
        """GX only reads: no transaction to begin or end (see the module's notes)."""

        def begin(self) -> None:
            pass

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

    return ReadOnly(connection().cursor())


@contextmanager
def staged(rows: Any, columns: list[str]) -> Iterator[None]:
    """`rows`' `columns` (all if none) as this process's staged table while GX reads it,
    streamed in Arrow batches; dropped after."""
    chosen = rows.select(*[f'"{name}"' for name in columns]) if columns else rows
    reader = chosen.to_arrow_reader(STREAM_BATCH_ROWS)
    with _lock:
        own = connection()
        own.register("gx_stream", reader)
        try:
            own.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM gx_stream")
        finally:
            own.unregister("gx_stream")
        try:
            yield
        finally:
            own.execute(f"DROP TABLE IF EXISTS {TABLE}")


def sample(rows: Any, column: str, values: list[Any], limit: int) -> pa.Table:
    """Up to `limit` whole rows of `rows` whose `column` is among `values`, as Arrow; a
    failing row without an id (None) matches rows whose id is null, as Arrow's `is_in`
    does."""
    import duckdb

    target = duckdb.ColumnExpression(column)
    known = [duckdb.ConstantExpression(value) for value in values if value is not None]
    wanted = target.isin(*known) if known else duckdb.ConstantExpression(False)
    if len(known) < len(values):
        wanted = wanted | target.isnull()
    found = rows.filter(wanted).limit(limit).to_arrow_table()
    return found.cast(_utc(found.schema))


def _utc(schema: pa.Schema) -> pa.Schema:
    """DuckDB hands a TIMESTAMPTZ to Arrow in its session's zone (`Etc/UTC` here); the
    lake's timestamps say `UTC`. The same instants, under the lake's name."""
    return pa.schema(
        field.with_type(pa.timestamp(field.type.unit, "UTC"))
        if pa.types.is_timestamp(field.type) and field.type.tz is not None
        else field
        for field in schema
    )


def compound_failing_ids(
    id_columns: list[str], key_columns: list[str], keys: list[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """The ids of up to `limit` staged rows whose `key_columns` equal (nulls alike) one of
    `keys`, GX's failing key values of a compound uniqueness: every row with a duplicated
    key fails, so these are failing rows, and all of them when there are `limit` or fewer."""
    if not keys or not id_columns:
        return []
    values = [[key.get(column) for column in key_columns] for key in keys]
    matches = " OR ".join(
        "(" + " AND ".join(f'"{c}" IS NOT DISTINCT FROM ?' for c in key_columns) + ")"
        for _ in values
    )
    selected = ", ".join(f'"{column}"' for column in id_columns)
    found = (
        connection()
        .cursor()
        .execute(
            f"SELECT {selected} FROM {TABLE} WHERE {matches} LIMIT {int(limit)}",
            [value for key in values for value in key],
        )
        .fetchall()
    )
    return [dict(zip(id_columns, row, strict=True)) for row in found]


@cache
def _null_safe_compound_uniqueness() -> None:
    """Re-register GX's `compound_columns.count` map for SQL with a null-safe join on
    DuckDB (other engines and dialects keep GX's own); see the module's notes."""
    import sqlalchemy as sa
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine
    from great_expectations.expectations.metrics.map_metric_provider.multicolumn_function_partial import (  # noqa: E501
        multicolumn_function_partial,
    )
    from great_expectations.expectations.metrics.multicolumn_map_metrics.compound_columns_unique import (  # noqa: E501
        CompoundColumnsUnique,
    )

    # GX logs a warning when a metric's provider is replaced: here that is the point.
    logging.getLogger("great_expectations.expectations.registry").setLevel(logging.ERROR)
    original = inspect.unwrap(CompoundColumnsUnique.__dict__["_sqlalchemy_function"])

    class NullSafeCompoundColumnsUnique(CompoundColumnsUnique):
        @multicolumn_function_partial(engine=SqlAlchemyExecutionEngine)
        def _sqlalchemy_function(self, column_list: list[Any], **kwargs: Any) -> Any:
            engine = kwargs.get("_sqlalchemy_engine")
            if getattr(getattr(engine, "dialect", None), "name", "") != "duckdb":
                return original(self, column_list, **kwargs)
            names, table = kwargs["_column_names"], kwargs["_table"]
            rows = (
                sa.select(*[sa.column(c) for c in kwargs["_table_columns"]])
                .select_from(table)
                .alias("original_table_clause")
            )
            # Only the duplicated keys join back: a unique row's count is null, which
            # GX's condition (`_num_rows < 2`, negated for the unexpected) counts as
            # expected, and the day's rows probe a small table instead of all its keys.
            duplicated = (
                sa.select(*column_list, sa.func.count().label("_num_rows"))
                .group_by(*column_list)
                .having(sa.func.count() > 1)
                .select_from(rows)
                .alias("group_counts_subquery")
            )
            same_key = sa.and_(*(duplicated.c[n].is_not_distinct_from(rows.c[n]) for n in names))
            return (
                sa.select(rows, duplicated.c._num_rows.label("_num_rows"))
                .select_from(rows.outerjoin(duplicated, onclause=same_key))
                .alias("records_with_grouped_column_counts_subquery")
            )

    return None


_UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def unique_beforehand(gx: Any, gx_suite: Any, batch: Any) -> dict[int, Any]:
    """Judge `gx_suite`'s uniqueness expectations first with GX's BOOLEAN_ONLY result
    format, which counts the duplicated rows and nothing else; those that hold leave the
    suite, and their outcome is returned (by the expectation's `meta["at"]`) as a function
    of the `Expect`. On SUMMARY, GX would compute each key's count twice more over the
    whole day for failing values and ids that a unique key does not have (5 s of 14 at
    10M rows). Failing ones stay, for SUMMARY's counts, values and ids."""
    from quality.validate import ExpectationOutcome

    chosen = [
        e
        for e in gx_suite.expectations
        if e.expectation_type in _UNIQUENESS and not e.row_condition
    ]
    if not chosen:
        return {}
    first = gx.ExpectationSuite(name=f"{gx_suite.name}-unique")
    for expectation in chosen:
        first.add_expectation(expectation.copy(update={"id": None}))
    held = {}
    for verdict in batch.validate(first, result_format="BOOLEAN_ONLY").results:
        if verdict.success and not (verdict.exception_info or {}).get("raised_exception"):
            config = verdict.expectation_config
            columns = config.kwargs.get("column_list") or [config.kwargs["column"]]
            percent = 0.0 if _judged_rows(columns) else None

            def outcome(expect: Any, percent: float | None = percent) -> Any:
                return ExpectationOutcome(expect, True, None, 0, percent, [])

            held[config.meta["at"]] = outcome
    for expectation in list(gx_suite.expectations):
        if expectation.meta["at"] in held:
            gx_suite.delete_expectation(expectation)
    return held


def _judged_rows(columns: list[str]) -> int:
    """The staged rows a uniqueness expectation judges: those with a value in at least
    one of its columns (GX's default `ignore_row_if`), the denominator of its percent."""
    some = " OR ".join(f'"{column}" IS NOT NULL' for column in columns)
    found = connection().cursor().execute(f"SELECT count(*) FROM {TABLE} WHERE {some}")
    return int(found.fetchone()[0])
