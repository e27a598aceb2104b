"""What every daily table asset shares: its decorator settings, its quality checks, and
the walk over the days.

A silver or gold asset rebuilds each day of its run in order (one day, or a backfill's
range under the single-run policy). Each day's rows pass the table's quality gate before
they replace the day; a blocking failure leaves the day as it was, reports every check
and fails the step without retries (the data, not the weather, is wrong), so nothing
downstream runs on it. Otherwise the materialization carries the table's metadata, the
asset's own previews and charts of the last day, and the check results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.metadata import table_metadata
from assets.partitions import DAILY, SINGLE_RUN, partition_days, partition_label
from lakehouse.catalog import CATALOG
from lakehouse.settings import Settings
from lakehouse.transforms.tables import Guard
from quality.gate import BlockedWrite, QualityGate, check_specs

Build = Callable[[Settings, date, Guard], pa.Table]
Describe = Callable[[pa.Table, list[date]], dict[str, object]]


def daily_table(key: str, owner: str, **extra: Any) -> dict[str, Any]:
    """`@dg.asset` arguments for the catalogued table `key` (`layer.name`)."""
    spec = CATALOG.table(key)
    return {
        "key": [spec.layer.value, spec.name],
        "description": spec.description,
        "partitions_def": DAILY,
        "backfill_policy": SINGLE_RUN,
        "group_name": spec.domain.value,
        "kinds": {"deltalake", "duckdb"},
        "owners": [owner],
        "tags": {"layer": spec.layer.value},
        "retry_policy": dg.RetryPolicy(max_retries=2, delay=10),
        "check_specs": check_specs(key),
        **extra,
    }


def materialize_days(
    context: dg.AssetExecutionContext,
    settings: Settings,
    key: str,
    build: Build,
    describe: Describe | None = None,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Build, check and write every day of the run in order; yield the materialization
    with its check results, or the failed checks and a non-retried failure."""
    days = partition_days(context)
    gate = QualityGate(settings)
    written = 0
    rows = pa.table({})
    try:
        for day in days:
            rows = build(settings, day, gate)
            written += rows.num_rows
            context.log.info(f"{key} {day}: {rows.num_rows:,} rows")
    except BlockedWrite as blocked:
        yield from gate.results(key)
        raise dg.Failure(description=str(blocked), allow_retries=False) from blocked
    metadata = table_metadata(CATALOG.table(key), settings, written, partition_label(days))
    if describe is not None:
        metadata.update(describe(rows, days))
    yield dg.MaterializeResult(metadata=metadata, check_results=gate.results(key))
