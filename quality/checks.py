"""The vocabulary of data quality checks, free of Great Expectations itself.

A `Check` is what Dagster shows as one asset check: a name, why it exists, whether it is
blocking, and the GX expectations (by class name and arguments) that must all pass. Most
checks are static; a few need the lake to know what to expect (yesterday's volumes, the
products that exist), so their expectations are computed per table and day by a function.
Keeping this layer free of GX keeps the Dagster code location's import fast: GX (about
4.6 s to import) loads only when a check first runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lakehouse.catalog import TableSpec
from lakehouse.settings import Settings


@dataclass(frozen=True)
class Expect:
    """One GX expectation: its class in `great_expectations.expectations`, its arguments,
    and optionally the rows it applies to (`where`: column == value)."""

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    where: tuple[str, Any] | None = None

    def describe(self) -> str:
        """`ExpectColumnValuesToBeBetween(column=price, min_value=0, max_value=100000)`."""
        args = ", ".join(f"{key}={_short(value)}" for key, value in self.kwargs.items())
        condition = f" where {self.where[0]} == {self.where[1]!r}" if self.where else ""
        return f"{self.type}({args}){condition}"


Dynamic = Callable[[Settings, date], tuple[Expect, ...]]
"""Expectations computed for a table's day from the lake (history, reference sets)."""


@dataclass(frozen=True)
class Check:
    """One named asset check: every expectation must pass.

    `blocking` checks guard the write: rows that fail them never replace the day, and the
    run stops before anything downstream reads them. The others warn.
    """

    name: str
    description: str
    expectations: tuple[Expect, ...] | Dynamic
    blocking: bool = False

    def expectations_for(self, settings: Settings, day: date) -> tuple[Expect, ...]:
        """The concrete expectations for one day of the table."""
        if callable(self.expectations):
            return self.expectations(settings, day)
        return self.expectations


@dataclass(frozen=True)
class Suite:
    """The checks of one table, and the columns that identify a row in failure samples."""

    table: TableSpec
    checks: tuple[Check, ...]
    id_columns: tuple[str, ...]

    def check(self, name: str) -> Check:
        """A check by name, with a clear error for a wrong one."""
        for check in self.checks:
            if check.name == name:
                return check
        known = ", ".join(check.name for check in self.checks)
        raise KeyError(f"{self.table.key} has no check {name!r}; known: {known}")


def _short(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset) and len(value) > 6:
        items = sorted(value, key=str)
        return f"[{', '.join(map(str, items[:3]))}, ... {len(items)} values]"
    return str(value)
