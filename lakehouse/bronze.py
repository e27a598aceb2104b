"""What the bronze layer holds, from the Delta logs alone: the event days landed, and
whether anything has landed at all.

The schedules ask for the landed days (the weekly reprocessing covers them all), the
command line for the default range of `materialize` and `train`, and the demo whether a
lake belongs to an earlier broker.
"""

from __future__ import annotations

from datetime import date

from lakehouse.catalog import CATALOG, Domain, Layer
from lakehouse.delta import open_table, partitions_added_since
from lakehouse.settings import Settings


def lake_has_landed(settings: Settings, domain: Domain | None = None) -> bool:
    """Whether any bronze table (of `domain`, if given) records landed Kafka offsets.

    A table committed past its creation belongs to some broker's topics: a broker started
    just now holds empty in-memory topics, so such a lake is ahead of it; and the same
    generator seed would land the same event ids again.
    """
    for spec in CATALOG.in_layer(Layer.BRONZE):  # the quarantine records offsets too
        if domain is not None and spec.domain is not domain:
            continue
        table = open_table(spec, settings)
        if table is not None and table.version() > 0:
            return True
    return False


def landed_days(settings: Settings) -> list[date]:
    """Every event day any bronze event table holds, from the Delta logs alone."""
    days: set[date] = set()
    for spec in CATALOG.landed_tables():
        days.update(partitions_added_since(spec, settings, version=None))
    return sorted(days)
