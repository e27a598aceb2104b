"""Dagster's names for catalogued tables, derived from the catalog in one place.

An asset's key is its table's (layer, name); its checks are its quality suite's checks.
Every asset, job, sensor and test asks here rather than building `AssetKey([...])` from
strings, so a table renamed in the catalog is renamed everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from lakehouse.catalog import TableSpec
from quality.suites import has_suite, suite_for


def asset_key(table: TableSpec) -> dg.AssetKey:
    """The asset that materializes (or, for bronze, observes) `table`."""
    return dg.AssetKey(list(table.path))


def asset_deps(
    upstream: Sequence[TableSpec | dg.AssetDep | dg.AssetsDefinition],
) -> list[dg.AssetKey | dg.AssetDep | dg.AssetsDefinition]:
    """`deps` for `@dg.asset`: catalogued tables become their assets' keys; an `AssetDep`
    (a partition mapping) or an asset definition passes through as it is."""
    return [asset_key(dep) if isinstance(dep, TableSpec) else dep for dep in upstream]


def check_specs(table: TableSpec) -> list[dg.AssetCheckSpec]:
    """One Dagster asset check per check of the table's suite (none if it has no suite)."""
    if not has_suite(table):
        return []
    return [
        dg.AssetCheckSpec(
            check.name,
            asset=asset_key(table),
            blocking=check.blocking,
            description=check.description,
        )
        for check in suite_for(table).checks
    ]
