"""The DuckDB side of a validation: a day a build staged in a DuckDB session (a
`duck.Staged` table, as the out-of-core builds hand it over) runs the same suites on GX's
SQL execution engine, through duckdb-engine (DuckDB's SQLAlchemy dialect), where it
lies: GX connects to the builder's own database through a cursor of its connection and
reads a view of the columns the expectations name. Each expectation is a query that
DuckDB answers under the session's memory limit and spill folder; nothing is copied
(streaming the columns into a database of the validation's own cost 1.8 to 4.3 s at
10M rows, more than every expectation but the two uniqueness ones together).

Two documented workarounds make GX 1.24 and duckdb-engine 0.17 agree:
- duckdb-engine's cursors all run on one DuckDB connection, so the rollback SQLAlchemy
  issues when GX hands a connection back (before GX fetches the rows, which it does) closes
  the result: fetchall() returns [] or "No open result set". GX only reads, so the
  connection it gets ignores begin, commit, rollback and close.
- duckdb-engine's table reflection queries `pg_catalog.pg_collation`, which DuckDB lacks
  under SQLAlchemy 2.1: GX reads a query asset (`SELECT * FROM <view>`), whose columns
  it takes from the query's result instead of reflecting.

Two where GX's SQL engine judges compound uniqueness unlike its pandas engine:
- It joins each row to its key's count with `=`, so a row with a null in any key column
  joins nothing and is never counted, where pandas counts duplicates with nulls alike
  (`duplicated(keep=False)`). On DuckDB the join is null-safe (`IS NOT DISTINCT FROM`),
  and only the duplicated keys join back (a left join; half the time at 1M rows).
- It returns no failing ids for compound uniqueness on SQL (GX skips them there), only
  the failing key values: the rows with those keys are found again for their ids.

And one for speed: GX counts a uniqueness expectation's failing rows by joining every
row back to its key's count (5.3 s for `event_id` at 10M rows, 4.0 s for the clickstream's
natural key). On DuckDB the question is first whether any two rows share their key's
hash: a hash collision can only merge distinct keys, never split equal ones, so no
repeated hash means no repeated key, and only when a hash repeats are the keys counted
exactly. DuckDB hashes the keys; Polars counts the distinct hashes where they fit the
settings' `quality_key_hash_bytes` (0.37 s to hash and fetch a key at 10M rows, 0.23 s to
count: 0.6 s against 1.2 s for DuckDB's `count(DISTINCT ...)`, whose hash table is built
for groups it does not need here), and DuckDB's aggregate, which spills, past it. The
same scan counts the rows that hold a value in a compound key's columns, the judged rows
GX would count in a scan of its own for the percent (0.2 s at 10M rows).

And one for large reference sets: an in-set expectation over thousands of values (the
products shoppers viewed) cost GX 1.8 to 3 s for 91K purchases, whatever the rows: GX
re-serialises the expectation, value set included, a hundred times or more per
validation, and the SQL engine binds every value into each query. On DuckDB such an
expectation (`value_sets.in_large_set`) runs as GX's `UnexpectedRowsExpectation`, a
query of the rows whose value is outside the set, kept in a table of the day's cursor;
its outcome is told as the in-set expectation's (the count, the percent of non-null
values, the first failing ids), which the equality tests hold against the pandas engine.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pyarrow as pa

from lakehouse.transforms.duck import Staged
from quality.checks import Expect

VIEW = "_gx_rows"
_HASH_BYTES_PER_ROW = 16
"""What counting a key's distinct hashes in Polars holds per row: the 8-byte hash DuckDB
hands over, and Polars' contiguous copy of it."""
_lock = threading.Lock()  # one staged day per process at a time: validations take turns


@dataclass(frozen=True)
class _KeyScan:
    """What one scan of a uniqueness key's columns over the staged day tells."""

    repeated_hash: bool  # two rows share their key's hash
    judged_rows: int  # rows with a value in at least one of the key's columns


@dataclass(frozen=True)
class _StagedDay:
    cursor: Any  # the cursor of the staged day's session that GX reads through
    key_hash_bytes: int  # what a uniqueness check may hold outside DuckDB
    key_scans: dict[tuple[tuple[str, ...], bool], _KeyScan] = field(default_factory=dict)


_day: _StagedDay | None = None


def is_staged(rows: Any) -> bool:
    """Whether `rows` is a day staged in a DuckDB session."""
    return isinstance(rows, Staged)


@cache
def batch_definition(context: Any) -> Any:
    """A whole-table batch definition of a query asset over the staged view, on a SQL
    datasource whose one connection reads through the staged day's cursor, whichever day
    that is. Made while a day is staged: GX tries a connection when it is added."""
    from sqlalchemy.pool import StaticPool

    _null_safe_compound_uniqueness()
    _uniqueness_from_key_scans()

    source = context.data_sources.add_sql(
        "lakehouse-duckdb",
        connection_string="duckdb:///:memory:",
        kwargs={
            "creator": _day_connection,
            "poolclass": StaticPool,
            "pool_reset_on_return": None,
        },
    )
    asset = source.add_query_asset("rows", query=f"SELECT * FROM {VIEW}")
    return asset.add_batch_definition_whole_table("day")


def _day_connection() -> Any:
    from duckdb_engine import ConnectionWrapper, CursorWrapper

    class DayConnection(ConnectionWrapper):
        """The pool's one connection, kept for the process: every statement runs on the
        cursor of the day staged now. One DuckDB cursor per day, so each query's result
        is released by the next (a cursor per query kept every result until the day was
        done: out of memory under a 64 MB limit). GX only reads: no transaction to begin
        or end, nothing to close (see the module's notes)."""

        def __init__(self) -> None:
            self.notices = []

        def cursor(self) -> Any:
            return CursorWrapper(_cursor(), self)

        def __getattr__(self, name: str) -> Any:
            return getattr(_cursor(), name)

        def begin(self) -> None:
            pass

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            pass

    return DayConnection()


def _staged_day() -> _StagedDay:
    if _day is None:
        raise RuntimeError("no staged day to validate: GX connected outside `staged`")
    return _day


def _cursor() -> Any:
    """The staged day's cursor."""
    return _staged_day().cursor


@contextmanager
def staged(
    rows: Staged,
    columns: list[str],
    value_sets: dict[int, list[Any]] | None = None,
    key_hash_bytes: int = 0,
) -> Iterator[None]:
    """`rows`' `columns` (all if none) as the view GX reads, in the staged day's own
    session, through a cursor of its connection, while the block runs, with each of
    `value_sets` (large in-set expectations' values, by the expectation's index) as the
    table `outside_set` queries; the view, the tables and the cursor are gone after.
    Uniqueness checks may hold `key_hash_bytes` outside DuckDB (the module's notes)."""
    global _day
    selected = ", ".join(f'"{name}"' for name in columns) if columns else "*"
    with _lock:
        rows.connection.execute(
            f'CREATE OR REPLACE VIEW {VIEW} AS SELECT {selected} FROM "{rows.table}"'
        )
        cursor = rows.connection.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            for index, values in (value_sets or {}).items():
                known = [value for value in values if value is not None]
                cursor.register(_value_table(index), pa.table({"value": known}))
            _day = _StagedDay(cursor, key_hash_bytes)
            yield
        finally:
            _day = None
            cursor.close()
            rows.connection.execute(f"DROP VIEW IF EXISTS {VIEW}")


def outside_set(gxe: Any, expect: Expect, index: int) -> Any:
    """GX's `UnexpectedRowsExpectation` for in-set `expect` (the `index`th of the suite):
    the rows whose non-null value is not in its value table (`staged`'s `value_sets`)."""
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {_outside(expect, index)}",
        meta={"at": index},
    )


def outside_set_details(
    expect: Expect, index: int, failing_rows: int, id_columns: list[str], limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """What GX's in-set expectation reports besides its count (`failing_rows`, the
    verdict of `outside_set`): the non-null values (the percent's denominator) and the ids
    of up to `limit` failing rows, looked for only when there are some (a clean day's
    search would scan the whole day again for nothing)."""
    column = expect.kwargs["column"]
    nonnull = _cursor().execute(f'SELECT count("{column}") FROM {VIEW}').fetchone()[0]
    failing: list[dict[str, Any]] = []
    if id_columns and failing_rows:
        selected = ", ".join(f'"{name}"' for name in id_columns)
        found = (
            _cursor()
            .execute(
                f"SELECT {selected} FROM {VIEW} WHERE {_outside(expect, index)} LIMIT {int(limit)}"
            )
            .fetchall()
        )
        failing = [dict(zip(id_columns, row, strict=True)) for row in found]
    return int(nonnull), failing


def _outside(expect: Expect, index: int) -> str:
    column = f'"{expect.kwargs["column"]}"'
    return f"{column} IS NOT NULL AND {column} NOT IN (SELECT value FROM {_value_table(index)})"


def _value_table(index: int) -> str:
    return f"_gx_values_{int(index)}"


def sample(rows: Staged, column: str, values: list[Any], limit: int) -> pa.Table:
    """Up to `limit` whole rows of `rows` whose `column` is among `values`, as Arrow; a
    failing row without an id (None) matches rows whose id is null, as Arrow's `is_in`
    does."""
    import duckdb

    target = duckdb.ColumnExpression(column)
    known = [duckdb.ConstantExpression(value) for value in values if value is not None]
    wanted = target.isin(*known) if known else duckdb.ConstantExpression(False)
    if len(known) < len(values):
        wanted = wanted | target.isnull()
    found = rows.relation().filter(wanted).limit(limit).to_arrow_table()
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
        _cursor()
        .execute(
            f"SELECT {selected} FROM {VIEW} WHERE {matches} LIMIT {int(limit)}",
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


@cache
def _uniqueness_from_key_scans() -> None:
    """Re-register, for SQL, the two uniqueness metrics a key's scan answers on DuckDB
    (see the module's notes; other dialects, and domains the scan does not cover, keep
    GX's own): the unexpected count of both uniqueness metrics, by the hashed aggregate,
    and a compound key's judged rows (its `filtered_row_count`, the percent's
    denominator). GX still builds each metric's condition and uses it for failing values
    and ids."""
    from great_expectations.core.metric_function_types import (
        MetricFunctionTypes,
        SummarizationMetricNameSuffixes,
    )
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine
    from great_expectations.expectations.metrics.column_map_metrics.column_values_unique import (
        ColumnValuesUnique,
    )
    from great_expectations.expectations.metrics.map_metric_provider.map_condition_auxilliary_methods import (  # noqa: E501
        _sqlalchemy_map_condition_unexpected_count_value,
    )
    from great_expectations.expectations.metrics.map_metric_provider.multicolumn_map_condition_auxilliary_methods import (  # noqa: E501
        _sqlalchemy_multicolumn_map_condition_filtered_row_count,
    )
    from great_expectations.expectations.metrics.multicolumn_map_metrics.compound_columns_unique import (  # noqa: E501
        CompoundColumnsUnique,
    )
    from great_expectations.expectations.registry import register_metric

    def register(metric_class: Any, suffix: str, value_keys: tuple, provider: Any) -> None:
        register_metric(
            metric_name=f"{metric_class.condition_metric_name}.{suffix}",
            metric_domain_keys=metric_class.condition_domain_keys,
            metric_value_keys=value_keys,
            execution_engine=SqlAlchemyExecutionEngine,
            metric_class=metric_class,
            metric_provider=provider,
            metric_fn_type=MetricFunctionTypes.VALUE,
        )

    for metric_class in (ColumnValuesUnique, CompoundColumnsUnique):
        register(
            metric_class,
            SummarizationMetricNameSuffixes.UNEXPECTED_COUNT.value,
            metric_class.condition_value_keys,
            _on_duckdb(_sqlalchemy_map_condition_unexpected_count_value, _repeated_key_rows),
        )
    register(
        CompoundColumnsUnique,
        SummarizationMetricNameSuffixes.FILTERED_ROW_COUNT.value,
        (*CompoundColumnsUnique.condition_value_keys, "result_format"),
        _on_duckdb(_sqlalchemy_multicolumn_map_condition_filtered_row_count, _judged_rows),
    )


def _on_duckdb(gx_own: Any, answer: Any) -> Any:
    """A GX metric provider of a map metric's summary: `answer(execution_engine, domain)`
    on DuckDB, where it gives a value, else GX's own provider `gx_own`."""

    def provider(
        cls: Any,
        execution_engine: Any,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        if execution_engine.dialect_name == "duckdb":
            _, compute_domain, accessor_domain = metrics["unexpected_condition"]
            found = answer(execution_engine, {**compute_domain, **accessor_domain})
            if found is not None:
                return found
        return gx_own(
            cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, **kwargs
        )

    return provider


def _repeated_key_rows(execution_engine: Any, domain: dict[str, Any]) -> int:
    """The rows of the domain whose key (its `column`, nulls left out as GX leaves them
    out of a column's uniqueness, or its `column_list`, nulls alike) occurs more than once:
    GX's unexpected count of a uniqueness expectation."""
    import sqlalchemy as sa
    from great_expectations.util import get_sqlalchemy_selectable

    names = [domain["column"]] if "column" in domain else list(domain["column_list"])
    if not _any_repeated_hash(names, nulls_left_out="column" in domain):
        return 0
    keys = [sa.column(name) for name in names]
    rows = get_sqlalchemy_selectable(execution_engine.get_domain_records(domain_kwargs=domain))
    groups = (
        sa.select(sa.func.count().label("n"))
        .select_from(rows)
        .where(keys[0].is_not(None) if "column" in domain else sa.true())
        .group_by(*keys)
        .having(sa.func.count() > 1)
        .subquery()
    )
    total = sa.select(sa.func.coalesce(sa.func.sum(groups.c.n), 0))
    return int(execution_engine.execute_query(total).scalar())


def _any_repeated_hash(columns: list[str], nulls_left_out: bool) -> bool:
    """Whether two staged rows share the hash of their key (`columns`; rows whose one
    column is null `nulls_left_out`), in the whole staged day, GX's batch: without a
    uniqueness domain's row filters (a compound key's rows of nulls only, a row
    condition), since more rows can only add repeats, so none there means none in the
    domain (the filter cost 0.8 s of 2.0 at 10M)."""
    return _key_scan(columns, nulls_left_out).repeated_hash


def _key_scan(columns: list[str], nulls_left_out: bool) -> _KeyScan:
    """One scan of the staged day's key `columns` (rows whose one column is null
    `nulls_left_out`), kept for the day: whether a hash repeats, and how many rows hold a
    value in a key column (a compound key's judged rows, which GX would count in a scan
    of its own: 0.2 s of clickstream's suite at 10M rows). The hashes are counted by
    Polars when they fit the staged day's `key_hash_bytes`, else by DuckDB (the module's
    notes)."""
    day = _staged_day()
    remembered = (tuple(columns), nulls_left_out)
    if remembered in day.key_scans:
        return day.key_scans[remembered]
    key = ", ".join(f'"{column}"' for column in columns)
    judged = " OR ".join(f'"{column}" IS NOT NULL' for column in columns)
    where = f' WHERE "{columns[0]}" IS NOT NULL' if nulls_left_out else ""
    hashes = f"SELECT hash({key}) AS h, ({judged}) AS judged FROM {VIEW}{where}"
    [(staged_rows,)] = day.cursor.execute(f"SELECT count(*) FROM {VIEW}").fetchall()
    if staged_rows * _HASH_BYTES_PER_ROW <= day.key_hash_bytes:
        # Imported here, as GX is: 0.4-0.6 s that every Dagster step process importing the
        # gate would pay, checks or not.
        import polars as pl

        found = pl.from_arrow(day.cursor.sql(hashes).to_arrow_table())
        scan = _KeyScan(found["h"].n_unique() != found.height, int(found["judged"].sum()))
    else:
        [(keyed, distinct, judged_rows)] = day.cursor.execute(
            f"SELECT count(*), count(DISTINCT h), count(*) FILTER (WHERE judged) FROM ({hashes})"
        ).fetchall()
        scan = _KeyScan(int(keyed) != int(distinct), int(judged_rows))
    day.key_scans[remembered] = scan
    return scan


def _judged_rows(execution_engine: Any, domain: dict[str, Any]) -> int | None:
    """A compound key's judged rows (those with a value in a key column, GX's default
    `ignore_row_if`) from the key's scan, for a domain over the whole staged day; None
    for any other domain (a row condition, another `ignore_row_if`), which GX counts."""
    whole_day = not domain.get("row_condition") and not domain.get("filter_conditions")
    if not whole_day or domain.get("ignore_row_if") != "all_values_are_missing":
        return None
    return _key_scan(list(domain["column_list"]), nulls_left_out=False).judged_rows
