"""What every maintenance asset shares: its key, group, owner, tags and pool.

All of them run in one Dagster concurrency pool (`table_maintenance`, limit 1 in both
profiles' instance config), so two maintenance steps never work on the lake at once: a
compaction holds a whole partition in memory, and two compactions of one table would
duplicate its rows (delta-rs 1.6.6). The pool orders Dagster's own runs; the per-table
lock in `lakehouse.maintenance.locks` also covers `lakehouse maintain` from a shell.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from assets.tables import MAINTENANCE_LAYER, maintenance_key
from lakehouse.catalog import Domain

MAINTENANCE_POOL = "table_maintenance"


def maintenance_asset(
    name: str,
    description: str,
    deps: Sequence[dg.AssetKey | dg.AssetsDefinition] = (),
    kinds: frozenset[str] = frozenset({"deltalake"}),
    **extra: Any,
) -> dict[str, Any]:
    """`@dg.asset` arguments for the maintenance asset `maintenance/<name>`."""
    return {
        "key": maintenance_key(name),
        "description": description,
        "group_name": MAINTENANCE_LAYER,
        "owners": [Domain.PLATFORM.owner],
        "tags": {"layer": MAINTENANCE_LAYER},
        "kinds": set(kinds),
        "pool": MAINTENANCE_POOL,
        "deps": list(deps),
        **extra,
    }

