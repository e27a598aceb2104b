"""The benchmark's traffic: the e-commerce generator's clickstream, with poison mixed in.

The target is for "JSON clickstream with validation and quarantine", so about 0.1% of the
messages are poison of the kinds the quarantine exists for. With a flush of 250,000
messages every batch then holds some, and the decoder's slow path (screen every message,
then judge the suspects) is what is measured, not the all-clean fast path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson

from lakehouse.catalog import Domain
from streaming.generators import DomainGenerator, EventBatch

TOPIC = "clickstream"
CLICKSTREAM_SHARE = 0.8
"""A lower bound of clickstream's share of e-commerce events (about 0.89 measured)."""


def _mutate(field_name: str, value: object) -> Callable[[bytes], bytes]:
    def poison(event: bytes) -> bytes:
        document = orjson.loads(event)
        document[field_name] = value
        return orjson.dumps(document)

    return poison


# Reason the ingest should give -> how to make such a message from a valid event.
POISONS: dict[str, Callable[[bytes], bytes]] = {
    "invalid_json": lambda event: event[: len(event) // 2],
    "invalid_encoding": lambda event: event.replace(b'"page":"', b'"page":"\xff\xfe', 1),
    "not_an_object": lambda event: b"[" + event + b"]",
    "schema_mismatch": _mutate("user_id", "seven"),
    "missing_required_field": _mutate("session_id", None),
    "empty_message": lambda _event: b"",
}


@dataclass
class PoisonedClickstream:
    """Clickstream-only batches from a domain generator, with poison inserted at random.

    `batches(n)` yields exactly n messages in total, poison included; `injected` counts
    the poison by the reason the ingest should quarantine it with. Inserting (rather than
    replacing) keeps every generated event, so the valid count is n - sum(injected).
    `max_batch` caps the batch size, which in live mode bounds how early events are stamped.
    """

    inner: DomainGenerator
    poison_rate: float = 0.001
    seed: int = 7
    max_batch: int | None = None
    injected: Counter[str] = field(default_factory=Counter)
    domain: Domain = Domain.ECOMMERCE
    topics: tuple[str, ...] = (TOPIC,)

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        """Exactly `n_events` clickstream messages, at most `batch_size` per batch."""
        if self.max_batch is not None:
            batch_size = min(batch_size, self.max_batch)
        rng = np.random.default_rng(self.seed)
        kinds = list(POISONS)
        remaining = n_events
        upstream = int(n_events / CLICKSTREAM_SHARE) + 2 * batch_size + 40_000
        for batch in self.inner.batches(upstream, batch_size):
            if batch.topic != TOPIC:
                continue
            keys, values, poisoned = self._poison(batch, rng, kinds)
            keys, values = keys[:remaining], values[:remaining]
            self.injected.update(kind for index, kind in poisoned if index < remaining)
            remaining -= len(values)
            yield EventBatch(TOPIC, keys, values)
            if remaining == 0:
                return
        raise RuntimeError(f"generator ran out with {remaining} clickstream events to go")

    def _poison(
        self, batch: EventBatch, rng: np.random.Generator, kinds: list[str]
    ) -> tuple[list[bytes], list[bytes], list[tuple[int, str]]]:
        """The batch with poison inserted, and (final index, kind) of each poison."""
        count = int(rng.binomial(len(batch.values), self.poison_rate))
        if count == 0:
            return batch.keys, batch.values, []
        positions = sorted(rng.integers(0, len(batch.values), count).tolist())
        chosen = [kinds[int(i)] for i in rng.integers(0, len(kinds), count)]
        keys, values, poisoned = [], [], []
        previous = 0
        for position, kind in zip(positions, chosen, strict=True):
            keys += batch.keys[previous:position]
            values += batch.values[previous:position]
            poisoned.append((len(values), kind))
            keys.append(batch.keys[position])
            values.append(POISONS[kind](batch.values[position]))
            previous = position
        keys += batch.keys[previous:]
        values += batch.values[previous:]
        return keys, values, poisoned

    @property
    def poison_total(self) -> int:
        return sum(self.injected.values())
