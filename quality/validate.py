"""Run a table's suite over the rows about to be written, with Great Expectations 1.x.

GX is imported here, lazily, on the first validation (it takes about 5 to 6 s to import);
one ephemeral GX context per process serves every validation. Rows arrive as Arrow and
only the columns the expectations name go to pandas, GX's in-memory engine. Rows that
arrive as a Spark DataFrame (the Spark engine's transforms) stay in Spark: the same suite
runs on GX's Spark execution engine (`quality/spark.py`), with the same outcomes. Rows
that arrive staged in a DuckDB session (the out-of-core builds) stay there: the same suite
runs on GX's SQL execution engine over the builder's own DuckDB database
(`quality/relation.py`), in bounded memory, with the same outcomes. On every engine a
suite is counted first, and only what failed is asked for its failing values and ids.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.settings import Settings
from quality import relation, spark
from quality.checks import Check, Expect, Suite
from quality.value_sets import in_large_set

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from lakehouse.transforms.duck import Staged

    Rows = pa.Table | DataFrame | Staged

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict and what GX observed."""

    expect: Expect
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    failing_ids: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict for one day: passed only if all its expectations passed."""

    check: Check
    day: date
    expectations: tuple[ExpectationOutcome, ...]
    sample: pa.Table | None = None  # up to SAMPLE_ROWS failing rows

    @property
    def passed(self) -> bool:
        return all(outcome.success for outcome in self.expectations)


def validate(suite: Suite, rows: Rows, day: date, settings: Settings) -> list[CheckOutcome]:
    """Every check of `suite` over `rows` (the table's day `day`: an Arrow table, a Spark
    DataFrame or a day staged in a DuckDB session), in the suite's order."""
    planned = [(check, check.expectations_for(settings, day)) for check in suite.checks]
    results = _run_gx(
        suite, rows, [expect for _, expects in planned for expect in expects], settings
    )
    outcomes, position = [], 0
    for check, expects in planned:
        mine = tuple(results[position : position + len(expects)])
        position += len(expects)
        ids = [row for outcome in mine for row in outcome.failing_ids]
        outcomes.append(CheckOutcome(check, day, mine, _sample(rows, suite.id_columns, ids)))
    return outcomes


def _run_gx(
    suite: Suite, rows: Rows, expects: list[Expect], settings: Settings
) -> list[ExpectationOutcome]:
    """Each expectation's outcome, in order. Those that read only the column names (the
    schema check) run on an empty frame with every column; the rest on the columns they
    read: handing a whole 10M-row day to pandas for its names cost seconds."""
    if spark.is_spark_frame(rows):
        empty = rows.limit(0)
    elif relation.is_staged(rows):
        empty = rows.relation().limit(0).to_arrow_table()
    else:
        empty = rows.slice(0, 0)
    outcomes: dict[int, ExpectationOutcome] = {}
    for names_only, frame_rows in ((True, empty), (False, rows)):
        chosen = [i for i, e in enumerate(expects) if _reads_names_only(e) is names_only]
        if chosen:
            ran = _run_gx_batch(suite, frame_rows, [expects[i] for i in chosen], settings)
            outcomes.update(zip(chosen, ran, strict=True))
    return [outcomes[index] for index in range(len(expects))]


def _reads_names_only(expect: Expect) -> bool:
    return expect.type.startswith("ExpectTableColumns")


def _run_gx_batch(
    suite: Suite, rows: Rows, expects: list[Expect], settings: Settings
) -> list[ExpectationOutcome]:
    _import_gx()
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    context = _context()
    gx_suite = gx.ExpectationSuite(name=f"{suite.table.key}-{id(rows)}")
    on_spark = spark.is_spark_frame(rows)
    on_duckdb = relation.is_staged(rows)
    compound_ids: dict[int, list[dict[str, Any]]] = {}
    value_sets: dict[int, list[Any]] = {}
    outside: dict[int, tuple[int, int, list[dict[str, Any]]]] = {}
    for index, expect in enumerate(expects):
        if (on_spark or on_duckdb) and (values := in_large_set(expect)) is not None:
            value_sets[index] = values
            gx_suite.add_expectation(
                (spark if on_spark else relation).outside_set(gxe, expect, index)
            )
            continue
        kwargs = (
            spark.expectation_kwargs(expect.type, expect.kwargs)
            if on_spark
            else dict(expect.kwargs)
        )
        if expect.where is not None:
            column, value = expect.where
            kwargs["row_condition"] = Column(column) == value
        # The index travels in `meta`: GX returns results in its own order, and would
        # drop an expectation equal to one already in the suite.
        gx_suite.add_expectation(getattr(gxe, expect.type)(**kwargs, meta={"at": index}))
    columns = _columns(rows, suite, expects)
    id_columns = [column for column in suite.id_columns if column in columns]
    result_format = {
        "result_format": "SUMMARY",
        "unexpected_index_column_names": id_columns,
        "partial_unexpected_count": SAMPLE_ROWS,
    }
    if on_spark:
        set_columns = {index: expects[index].kwargs["column"] for index in value_sets}
        with (
            spark.persisted(rows, columns) as frame,
            spark.value_views(frame, value_sets, set_columns),
        ):
            batch = spark.batch_definition(context).get_batch(batch_parameters={"dataframe": frame})
            results = _counts_first(gx, gx_suite, batch, result_format)
            outside = _outside_sets(
                results, value_sets, expects, id_columns, partial(spark.outside_set_details, frame)
            )
    elif on_duckdb:
        with relation.staged(rows, columns, value_sets, settings.quality_key_hash_bytes):
            batch = relation.batch_definition(context).get_batch()
            results = _counts_first(gx, gx_suite, batch, result_format)
            outside = _outside_sets(
                results, value_sets, expects, id_columns, relation.outside_set_details
            )
            compound_ids = {
                verdict.expectation_config.meta["at"]: relation.compound_failing_ids(
                    id_columns,
                    verdict.expectation_config.kwargs["column_list"],
                    (verdict.result or {}).get("partial_unexpected_list") or [],
                    SAMPLE_ROWS,
                )
                for verdict in results
                if verdict.expectation_config.type == "expect_compound_columns_to_be_unique"
            }
    else:
        frame = _to_pandas(rows.select(columns) if columns else rows)
        batch = _batch_definition(context).get_batch(batch_parameters={"dataframe": frame})
        results = _counts_first(gx, gx_suite, batch, result_format)
    plain = spark.plain if on_spark else _plain
    verdicts = {verdict.expectation_config.meta["at"]: verdict for verdict in results}
    outcomes = []
    for index, expect in enumerate(expects):
        verdict = verdicts[index]
        details = verdict.result or {}
        if on_spark or on_duckdb:
            details = spark.result_details(details)
        message = raised(verdict)
        if message is not None:
            raise RuntimeError(f"{suite.table.key}: {expect.describe()} could not run: {message}")
        if index in outside:
            outcomes.append(_in_set_outcome(expect, verdict, *outside[index], plain))
            continue
        outcomes.append(
            ExpectationOutcome(
                expect=expect,
                success=bool(verdict.success),
                observed=plain(details.get("observed_value")),
                unexpected_count=details.get("unexpected_count"),
                unexpected_percent=details.get("unexpected_percent"),
                failing_ids=[
                    {column: plain(row.get(column)) for column in id_columns}
                    for row in (
                        compound_ids[index]
                        if index in compound_ids
                        else details.get("partial_unexpected_index_list") or []
                    )
                ],
            )
        )
    return outcomes


def _counts_first(gx: Any, gx_suite: Any, batch: Any, result_format: dict[str, Any]) -> list[Any]:
    """`gx_suite`'s verdicts over `batch`: every expectation judged first on GX's BASIC
    result format without failing values (the counts, the percents, the observed values),
    then, again on `result_format`, only those that found failing rows, for their values
    and ids. Asked for the values of every expectation at once, GX looks for each one's
    failing rows even where it has just counted none: on SQL, one more scan of the day per
    expectation that finds nothing (about 0.35 s of clickstream's suite at 10M rows on
    DuckDB, and every key's count per uniqueness expectation: 5 s of 14)."""
    counted = batch.validate(
        gx_suite,
        result_format={**result_format, "result_format": "BASIC", "partial_unexpected_count": 0},
    ).results
    failing = {
        verdict.expectation_config.meta["at"]
        for verdict in counted
        if raised(verdict) is None and (verdict.result or {}).get("unexpected_count")
    }
    if not failing:
        return counted
    again = gx.ExpectationSuite(name=f"{gx_suite.name}-failing")
    for expectation in gx_suite.expectations:
        if expectation.meta["at"] in failing:
            again.add_expectation(expectation.copy(update={"id": None}))
    detailed = {
        verdict.expectation_config.meta["at"]: verdict
        for verdict in batch.validate(again, result_format=result_format).results
    }
    return [detailed.get(verdict.expectation_config.meta["at"], verdict) for verdict in counted]


def _outside_sets(
    results: list[Any],
    value_sets: dict[int, list[Any]],
    expects: list[Expect],
    id_columns: list[str],
    details: Callable[..., tuple[int, list[dict[str, Any]]]],
) -> dict[int, tuple[int, int, list[dict[str, Any]]]]:
    """For each large in-set expectation, by its index: the rows its query (`outside_set`,
    on DuckDB or Spark) found outside its value set, then what the engine's `details`
    (`outside_set_details`) adds: the non-null values and the first failing ids."""
    found = {}
    for verdict in results:
        index = verdict.expectation_config.meta["at"]
        if index in value_sets:
            count = int((verdict.result or {}).get("observed_value") or 0)
            found[index] = (
                count,
                *details(expects[index], index, count, id_columns, SAMPLE_ROWS),
            )
    return found


def _in_set_outcome(
    expect: Expect,
    verdict: Any,
    count: int,
    nonnull: int,
    failing_ids: list[dict[str, Any]],
    plain: Callable[[Any], Any],
) -> ExpectationOutcome:
    """An in-set expectation's outcome from the verdict of the query DuckDB or Spark ran
    in its place (`outside_set`), as GX's in-set expectation states it: the failing
    `count`, its percent of the non-null values (None without any) and the first ids,
    their values made `plain` as the engine's own failing ids are."""
    return ExpectationOutcome(
        expect=expect,
        success=bool(verdict.success),
        unexpected_count=count,
        unexpected_percent=count / nonnull * 100 if nonnull else None,
        failing_ids=[
            {column: plain(value) for column, value in row.items()} for row in failing_ids
        ],
    )


def raised(verdict: Any) -> str | None:
    """The message of an error GX met computing `verdict`, or None. GX reports an
    expectation's own error flat (`raised_exception`, `exception_message`) and a metric's
    error keyed by the metric: a verdict that could not be computed is an error to raise,
    never a failed check (it reported `success: false` and no counts, and a blocking check
    would have refused the day for a reason that was not the data's)."""
    info = verdict.exception_info or {}
    found = [info, *(value for value in info.values() if isinstance(value, dict))]
    messages = [
        str(part.get("exception_message")) for part in found if part.get("raised_exception")
    ]
    return "; ".join(messages) if messages else None


def _to_pandas(rows: pa.Table) -> Any:
    """Strings as pandas categoricals: GX's pandas engine filters and takes rows many times
    per suite, and codes move faster than strings (25 s instead of 32 s for the
    clickstream suite at 10M rows; object strings take 46 s)."""
    return rows.to_pandas(strings_to_categorical=True)


@cache
def _import_gx() -> None:
    """Import GX once, without PySpark's import-time warnings. GX imports PySpark where it
    is installed (for its Spark engine), and PySpark 4.0 then warns twice that it does not
    fully support pandas 3: about its own pandas conversions, which a local validation
    never makes (the Spark engine's equality tests run on this pandas). Left alone, the
    two FutureWarnings headed every `lakehouse materialize` and every step's compute log.
    A process that imports PySpark itself (the Spark engine) still gets them."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "PySpark does not yet fully support pandas", category=FutureWarning
        )
        import great_expectations  # noqa: F401


@cache
def _context() -> Any:
    """The process's ephemeral GX context, quiet: no progress bars on stderr, and no data
    docs site (GX's default ephemeral context makes a temporary one, and logs an INFO line
    saying so into every run's output, for docs the gate never builds)."""
    _import_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory batch by hashing the whole dataframe, twice per
    # validation, for a batch marker we never read; it skips that itself above 1 GB. At
    # 10M rows the hashing cost more than all the expectations (docs/benchmarks.md), so
    # the threshold is lowered to skip it always. There is no public switch for it.
    pandas_execution_engine.HASH_THRESHOLD = 0
    in_memory = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    context = gx.get_context(
        mode="ephemeral", project_config=DataContextConfig(store_backend_defaults=in_memory)
    )
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@cache
def _batch_definition(context: Any) -> Any:
    """A whole-dataframe batch definition: each validation hands it that day's rows."""
    source = context.data_sources.add_pandas("lakehouse")
    return source.add_dataframe_asset("rows").add_batch_definition_whole_dataframe("day")


def _columns(rows: Rows, suite: Suite, expects: list[Expect]) -> list[str]:
    """The columns the expectations read, plus the id columns; all when a whole-table
    expectation (the schema check, which `_run_gx` gives an empty frame) needs them."""
    if spark.is_spark_frame(rows):
        names = list(rows.columns)
    elif relation.is_staged(rows):
        names = list(rows.relation().columns)
    else:
        names = rows.schema.names
    if any(_reads_names_only(expect) for expect in expects):
        return names
    wanted = set(suite.id_columns)
    for expect in expects:
        for key in ("column", "column_A", "column_B"):
            if key in expect.kwargs:
                wanted.add(expect.kwargs[key])
        wanted.update(expect.kwargs.get("column_list", []))
        if expect.where is not None:
            wanted.add(expect.where[0])
    return [name for name in names if name in wanted]


def _sample(rows: Rows, id_columns: tuple[str, ...], ids: list[dict[str, Any]]) -> pa.Table | None:
    """Up to SAMPLE_ROWS whole failing rows, found again by their ids."""
    if not ids or not id_columns:
        return None
    first = id_columns[0]
    values = list(dict.fromkeys(row[first] for row in ids if first in row))
    if not values:
        return None
    if spark.is_spark_frame(rows):
        return spark.sample(rows, first, values, SAMPLE_ROWS)
    if relation.is_staged(rows):
        return relation.sample(rows, first, values, SAMPLE_ROWS)
    wanted = pa.array(values)
    matches = rows.filter(
        pc.is_in(rows[first], value_set=wanted.cast(rows.schema.field(first).type))
    )
    return matches.slice(0, SAMPLE_ROWS)


def _plain(value: Any) -> Any:
    """numpy scalars and NaN to plain Python, so metadata serializes."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value
