"""Data quality faults on demand: the switch that lets tests (and demos) prove that each
data quality check fires on the fault it exists for.

The faults are the ones that slip past ingest's validation (the message still parses and
carries every required field) and past silver's row rules, so only the quality checks in
`quality/` can catch them:

- `nulls`: a field the consumers expect but the schema allows to be missing is null;
- `out_of_range`: a number far outside what the domain makes possible (a price in the
  millions, a 10^6 sensor reading, a card payment of tens of millions);
- `duplicates`: an event sent again under a new event id (a producer retry that minted a
  fresh id), so deduplication by id cannot see it: only the natural key can;
- `schema_drift`: a producer renamed a field; ingest ignores the unknown name, so the
  old column arrives empty.

Each rate is the share of a topic's messages given that fault. Faults are applied to the
encoded JSON of the chosen messages only (a few percent of a batch), one message at a
time: rare by design, and far simpler than threading them through the columnar encoders.
The choice of messages is seeded, so a faulty run is as reproducible as a clean one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import orjson

from streaming.generators.common import DomainGenerator, EventBatch


@dataclass(frozen=True)
class FieldFaults:
    """Where each fault lands in one topic's events."""

    null: str  # a nullable field consumers rely on
    out_of_range: tuple[tuple[str, ...], float]  # numeric fields scaled together, and by how much
    drift: tuple[str, str]  # old name -> new name


TOPIC_FAULTS: dict[str, FieldFaults] = {
    "clickstream": FieldFaults(
        null="device",
        out_of_range=(("price",), 10_000.0),
        drift=("price", "item_price"),
    ),
    "cart_events": FieldFaults(
        null="category",
        out_of_range=(("quantity",), 1_000.0),
        drift=("category", "product_category"),
    ),
    "search": FieldFaults(
        null="category",
        out_of_range=(("results_count",), 100_000.0),
        drift=("category", "search_category"),
    ),
    "purchases": FieldFaults(
        null="payment_method",
        # Both, so the line still adds up and silver's total_matches_lines rule passes it.
        out_of_range=(("unit_price", "total_amount"), 10_000.0),
        drift=("payment_method", "paymentMethod"),
    ),
    "transactions": FieldFaults(
        null="city",
        out_of_range=(("amount",), 10_000.0),
        drift=("city", "town"),
    ),
    "sensor_readings": FieldFaults(
        null="plant",
        out_of_range=(("value",), 100_000.0),
        drift=("plant", "site"),
    ),
}


@dataclass(frozen=True)
class Faults:
    """Share of each topic's messages given each fault (0 = none)."""

    nulls: float = 0.0
    out_of_range: float = 0.0
    duplicates: float = 0.0
    schema_drift: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            rate = getattr(self, item.name)
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"fault rate {item.name}={rate} must be in [0, 1)")

    @classmethod
    def parse(cls, text: str) -> Faults:
        """`nulls=0.05,duplicates=0.01` (the CLI's --faults) into rates, with clear errors."""
        rates: dict[str, float] = {}
        known = {item.name for item in fields(cls)}
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            name, _, value = part.partition("=")
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            try:
                rates[name] = float(value)
            except ValueError:
                raise ValueError(f"fault {name!r} needs a rate, e.g. {name}=0.01") from None
        return cls(**rates)

    @property
    def any(self) -> bool:
        """Whether any fault is switched on."""
        return any(getattr(self, item.name) > 0 for item in fields(self))


class FaultyGenerator:
    """Wraps a domain generator and injects `faults` into the batches it yields."""

    def __init__(self, generator: DomainGenerator, faults: Faults, seed: int) -> None:
        self.generator = generator
        self.faults = faults
        self.domain = generator.domain
        self.topics = generator.topics
        self._rng = np.random.default_rng([seed, 0xFA017])

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        """The wrapped generator's batches, faults applied (duplicates add messages)."""
        for batch in self.generator.batches(n_events, batch_size):
            yield self._inject(batch)

    def _inject(self, batch: EventBatch) -> EventBatch:
        where = TOPIC_FAULTS[batch.topic]
        keys, values = list(batch.keys), list(batch.values)
        for index in self._pick(len(values), self.faults.nulls):
            event = orjson.loads(values[index])
            event[where.null] = None
            values[index] = orjson.dumps(event)
        names, factor = where.out_of_range
        for index in self._pick(len(values), self.faults.out_of_range):
            event = orjson.loads(values[index])
            if all(event.get(name) is not None for name in names):  # only where it is carried
                for name in names:
                    event[name] = _scaled(event[name], factor)
                values[index] = orjson.dumps(event)
        old, new = where.drift
        for index in self._pick(len(values), self.faults.schema_drift):
            event = orjson.loads(values[index])
            event[new] = event.pop(old, None)
            values[index] = orjson.dumps(event)
        for index in self._pick(len(batch.values), self.faults.duplicates):
            event = orjson.loads(values[index])
            event["event_id"] = self._rng.bytes(16).hex()
            keys.append(keys[index])
            values.append(orjson.dumps(event))
        return EventBatch(batch.topic, keys, values)

    def _pick(self, size: int, rate: float) -> list[int]:
        if rate <= 0 or size == 0:
            return []
        return np.flatnonzero(self._rng.random(size) < rate).tolist()


def _scaled(value: float | int, factor: float) -> float | int:
    scaled = value * factor
    return int(scaled) if isinstance(value, int) else round(scaled, 2)
