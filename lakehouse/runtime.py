"""Bring the local runtime up: broker (local profile only), topics and bronze tables.

Shared by `lakehouse up` and `lakehouse demo`. Against real Kafka nothing is started;
missing topics are created and the lake's bronze tables made ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from lakehouse import broker
from lakehouse.catalog import CATALOG, Domain, Layer
from lakehouse.delta import ensure_table, open_table, partitions_added_since
from lakehouse.settings import Settings


@dataclass
class Runtime:
    """What `bring_up` found or did."""

    bootstrap: str
    managed: bool
    started: bool
    topics_created: list[str] = field(default_factory=list)


def bring_up(settings: Settings) -> Runtime:
    """Start the embedded broker if it is ours to run, then create topics and tables."""
    settings.home.mkdir(parents=True, exist_ok=True)
    started = False
    managed = broker.is_local_kafka(settings)
    if managed:
        _, started = broker.start_local_broker(settings)
    created = broker.ensure_topics(settings)
    for spec in CATALOG.in_layer(Layer.BRONZE):
        ensure_table(spec, settings)
    return Runtime(settings.kafka_bootstrap_servers, managed, started, created)


def lake_has_landed(settings: Settings, domain: Domain | None = None) -> bool:
    """Whether any bronze table (of `domain`, if given) records landed Kafka offsets.

    A table committed past its creation belongs to some broker's topics: a broker started
    just now holds empty in-memory topics, so such a lake is ahead of it; and the same
    generator seed would land the same event ids again.
    """
    for spec in CATALOG.in_layer(Layer.BRONZE):
        if domain is not None and spec.domain is not domain:
            continue
        table = open_table(spec, settings)
        if table is not None and table.version() > 0:
            return True
    return False


def landed_days(settings: Settings) -> list[date]:
    """Every event day any bronze event table holds, from the Delta logs alone."""
    days: set[date] = set()
    for spec in CATALOG.in_layer(Layer.BRONZE):
        if spec.source_topic is not None:
            days.update(partitions_added_since(spec, settings, version=None))
    return sorted(days)
