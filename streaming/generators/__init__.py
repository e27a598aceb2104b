"""Seeded synthetic traffic for the three domains, encoded as Kafka-ready JSON messages.

`make_generator("ecommerce" | "fraud" | "iot", seed=..., start=..., span=...)` returns a
generator whose `batches(n_events)` yields `EventBatch`es (one topic each). The event
schemas are in `lakehouse.schemas`; `docs/events.md` describes every field and the
injected patterns with their ground-truth labels.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from lakehouse.catalog import Domain
from streaming.generators.common import DomainGenerator, EventBatch
from streaming.generators.ecommerce import EcommerceGenerator
from streaming.generators.faults import Faults, FaultyGenerator
from streaming.generators.fraud import FraudGenerator
from streaming.generators.iot import IotGenerator

__all__ = ["DomainGenerator", "EventBatch", "Faults", "make_generator"]

_GENERATORS: dict[Domain, type] = {
    Domain.ECOMMERCE: EcommerceGenerator,
    Domain.FRAUD: FraudGenerator,
    Domain.IOT: IotGenerator,
}


def make_generator(domain: Domain | str, *, seed: int = 42, start: datetime | None = None,
                   span: timedelta = timedelta(days=1), live: bool = False,
                   faults: Faults | None = None, **options: Any) -> DomainGenerator:
    """The generator of one domain; `options` are that domain's knobs (see its class);
    `faults` injects data quality faults (see `streaming.generators.faults`)."""
    try:
        cls = _GENERATORS[Domain(domain)]
    except (KeyError, ValueError):
        known = ", ".join(sorted(d.value for d in _GENERATORS))
        raise ValueError(f"no generator for domain {domain!r}; known: {known}") from None
    generator = cls(seed=seed, start=start, span=span, live=live, **options)
    if faults is not None and faults.any:
        return FaultyGenerator(generator, faults, seed)
    return generator
