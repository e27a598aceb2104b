"""What every daily table asset shares: its decorator settings, its quality checks, the
walk over the days, and the factory that makes a table's asset from its transform.

A silver or gold asset rebuilds each day of its run in order (one day, or a backfill's
range under the single-run policy). Each day's rows pass the table's quality gate before
they replace the day; a blocking failure leaves the day as it was, reports every check
and fails the step without retries (the data, not the weather, is wrong), so nothing
downstream runs on it. Otherwise the materialization carries the table's metadata, the
asset's own previews and charts of the last day, and the check results.

A day with no rows to write whose partition holds none is left alone, neither checked
nor written (`replace_day`): a backfill over a year where most tables have no input
(one imported data set) pays next to nothing for those days. The materialization counts
them (`empty_days_skipped`); where a run skipped every day, the checks judge the last
day's empty rows once, so that every check still reports a verdict.
"""

from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa
from dagster_pyspark import LazyPySparkResource

from assets.checks import check_results
from assets.metadata import table_metadata
from assets.partitions import DAILY, SINGLE_RUN, partition_days, partition_label
from assets.resources import LakehouseResource, transform_on_engine
from assets.tables import asset_deps, asset_key, check_specs
from lakehouse.catalog import TableSpec
from lakehouse.settings import Settings
from lakehouse.transforms.engine import row_count, to_arrow
from lakehouse.transforms.tables import Guard
from quality.gate import BlockedWrite, QualityGate

Build = Callable[[Settings, date, Guard], Any]
"""A day's build on the local engine (returns the day's rows as Arrow); its Spark twin of
the same name (`lakehouse.transforms.engine`) returns them as a DataFrame."""
Describe = Callable[[pa.Table, list[date]], dict[str, object]]
"""A gold asset's own metadata from the last day's rows, as Arrow."""
DescribeRows = Callable[[Any, list[date]], dict[str, object]]
"""The same from the rows as the engine's build returned them (Arrow, or a Spark
DataFrame that the describer reduces where it is, as silver's events per hour)."""
Upstream = TableSpec | dg.AssetDep
"""A dependency: a catalogued table (its asset, same day), or an `AssetDep` with a
partition mapping for the windowed snapshots."""

Results = Iterator[dg.MaterializeResult | dg.AssetCheckResult]


def daily_table(table: TableSpec, deps: Sequence[Upstream] = (), **extra: Any) -> dict[str, Any]:
    """`@dg.asset` arguments for the catalogued `table`: its key, description, owner,
    daily partitions with single-run backfills, and its quality checks."""
    return {
        "key": asset_key(table),
        "description": table.description,
        "partitions_def": DAILY,
        "backfill_policy": SINGLE_RUN,
        "group_name": table.domain.value,
        "kinds": {"deltalake", "duckdb"},
        "owners": [table.domain.owner],
        "tags": {"layer": table.layer.value},
        "retry_policy": dg.RetryPolicy(max_retries=2, delay=10),
        "check_specs": check_specs(table),
        "deps": asset_deps(deps),
        **extra,
    }


def daily_asset(
    table: TableSpec,
    build: Build,
    deps: Sequence[Upstream],
    describe: Describe | None = None,
) -> dg.AssetsDefinition:
    """The asset that keeps `table` built: each day of a run is `build(settings, day,
    guard)`, then `describe(rows of the last day, days)` adds the asset's own metadata."""

    def describe_rows(rows: Any, days: list[date]) -> dict[str, object]:
        return describe(to_arrow(rows), days) if describe is not None else {}

    @dg.asset(**daily_table(table, deps))
    def _daily(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, spark: LazyPySparkResource
    ) -> Results:
        settings = lakehouse.settings()
        engine_build = transform_on_engine(context, settings, spark, build)
        yield from materialize_days(context, settings, table, engine_build, describe_rows)

    return _daily


def materialize_days(
    context: dg.AssetExecutionContext,
    settings: Settings,
    table: TableSpec,
    build: Build,
    describe: DescribeRows | None = None,
) -> Results:
    """Build, check and write every day of the run in order; yield the materialization
    with its check results, or the failed checks and a non-retried failure. `build` is
    the engine's (`transform_on_engine`); `describe` gets the last day's rows as `build`
    returned them."""
    days = partition_days(context)
    gate = QualityGate(settings)
    written = 0
    rows: Any = pa.table({})
    try:
        for day in days:
            rows = build(settings, day, gate)
            count = row_count(rows)
            written += count
            context.log.info(f"{table.key} {day}: {count:,} rows")
        # Days with no rows to write where the table held none were left alone, unchecked.
        skipped = len(set(days) - gate.validated_days(table))
        if skipped == len(days):
            # The checks still judge the last day's (no) rows, so that each reports a
            # verdict, as Dagster requires of the asset's checks.
            gate(table, days[-1], table.schema.empty_table())
    except BlockedWrite as blocked:
        yield from check_results(gate, table)
        raise dg.Failure(description=str(blocked), allow_retries=False) from blocked
    metadata = table_metadata(table, settings, written, partition_label(days))
    metadata["empty_days_skipped"] = dg.MetadataValue.int(skipped)
    if describe is not None:
        metadata.update(describe(rows, days))
    yield dg.MaterializeResult(metadata=metadata, check_results=check_results(gate, table))
