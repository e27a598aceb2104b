"""The quality gate between a transform and its table.

The gate is the `guard` a table asset hands to `replace_day`: it validates the day's rows
against the table's suite before they are written. A blocking failure refuses the write
(the day keeps its previous rows) by raising `BlockedWrite`, so nothing downstream reads
the bad day. Every verdict is kept, passed or not, for whoever reports them: the asset
layer turns them into Dagster asset check results (`assets/checks.py`); this package
knows nothing of Dagster, so a service or a Spark job can run the same gate.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehouse.catalog import TableSpec
from lakehouse.settings import Settings
from quality.suites import suite_for
from quality.validate import CheckOutcome, validate  # GX itself loads on first use

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from lakehouse.transforms.duck import Staged


class BlockedWrite(Exception):
    """Rows failed a blocking check; the day was not written."""

    def __init__(self, table: TableSpec, day: date, failed: list[str]) -> None:
        super().__init__(
            f"{table.key} {day}: blocking checks failed: {', '.join(failed)}; the day was "
            "not written and downstream assets will not run. The checks' results show the "
            "failing rows."
        )
        self.table, self.day, self.failed = table, day, failed


class QualityGate:
    """Validates each day a run writes; keeps every outcome for the check results."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._outcomes: dict[str, list[CheckOutcome]] = defaultdict(list)

    def __call__(
        self, table: TableSpec, day: date, rows: pa.Table | DataFrame | Staged
    ) -> None:
        """The guard: validate, remember, and refuse the write on a blocking failure.
        `rows` is an Arrow table, a Spark DataFrame where the engine is Spark, or a table
        of a DuckDB session where the build staged the day in DuckDB."""
        outcomes = validate(suite_for(table), rows, day, self.settings)
        self._outcomes[table.key].extend(outcomes)
        failed = [o.check.name for o in outcomes if o.check.blocking and not o.passed]
        if failed:
            raise BlockedWrite(table, day, failed)

    def validated_days(self, table: TableSpec) -> set[date]:
        """The days of `table` the gate validated in this run. A day the write left alone
        (no rows for a day that held none: `transforms.tables.replace_day`, or its
        Spark twin) is not among them, and has no verdict."""
        return {outcome.day for outcome in self._outcomes[table.key]}

    def outcomes(self, table: TableSpec) -> list[CheckOutcome]:
        """Every outcome for `table` in this run, in the order the days were validated."""
        return list(self._outcomes[table.key])
