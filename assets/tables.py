"""Dagster's names for catalogued tables, derived from the catalog in one place.

An asset's key is its table's (layer, name); its checks are its quality suite's checks.
Every asset, job, sensor and test asks here rather than building `AssetKey([...])` from
strings, so a table renamed in the catalog is renamed everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from lakehouse.catalog import Domain, TableSpec
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


ONLINE_LAYER = "online"
"""The layer of the assets that publish to the online stores."""


def online_key(name: str) -> dg.AssetKey:
    """`online/<name>`: something published to a serving store."""
    return dg.AssetKey([ONLINE_LAYER, name])


def online_spec(
    key: dg.AssetKey, domain: Domain, description: str, deps: Sequence, kinds: set[str]
) -> dg.AssetSpec:
    """An online asset of `domain` (key from `online_key`): what a nightly run publishes to
    a serving store, downstream of `deps`."""
    return dg.AssetSpec(
        key,
        description=description,
        group_name=domain.value,
        owners=[domain.owner],
        tags={"layer": ONLINE_LAYER},
        kinds=kinds,
        deps=asset_deps(deps),
    )


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


MAINTENANCE_LAYER = "maintenance"
"""The layer (and group) of the assets that keep the tables healthy: compaction, vacuum,
retention, storage tiering and its cost."""


def maintenance_key(name: str) -> dg.AssetKey:
    """`maintenance/<name>`: work on the tables' files that changes none of their rows."""
    return dg.AssetKey([MAINTENANCE_LAYER, name])
