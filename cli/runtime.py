"""Bring the local runtime up: broker (local profile only), topics and bronze tables;
and the settings a long-running process starts with.

Shared by `lakehouse up` and `lakehouse demo`. Against real Kafka nothing is started;
missing topics are created and the lake's bronze tables made ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lakehouse import broker
from lakehouse.catalog import CATALOG, Layer
from lakehouse.delta import ensure_table
from lakehouse.logs import configure_logging
from lakehouse.settings import Settings, get_settings


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


def process_settings(json_logs: bool, **given: object) -> Settings:
    """Configure logging for a long-running command and return its settings: the
    environment's, with the command-line options that were given (None: not given)."""
    configure_logging(json=json_logs)
    update = {name: value for name, value in given.items() if value is not None}
    settings = get_settings()
    return settings.model_copy(update=update) if update else settings
