"""Machinery shared by the domain generators: the batch type, simulated time, ids, encoding.

Every generator simulates its domain in fixed-size chunks of events (independent of the
caller's batch size, so the bytes produced depend only on the seed, start, span, event
count and options), builds one columnar frame per topic and chunk (`jsonl.Frame`), and
hands it to `ChunkedGenerator.batches`, which encodes it column-wise to compact JSON lines.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import ClassVar, Protocol

import numpy as np

from lakehouse.catalog import CATALOG, Domain
from streaming.generators import jsonl

CHUNK_EVENTS = 20_000
"""Events simulated per chunk; a fixed size keeps the output independent of batch_size."""

US = 1_000_000
"""Microseconds per second: simulated time is carried as int64 microseconds since the epoch."""


@dataclass(frozen=True)
class EventBatch:
    """One batch of encoded messages for one topic, ready to hand to a Kafka producer."""

    topic: str
    keys: list[bytes]
    values: list[bytes]

    def __len__(self) -> int:
        return len(self.values)


class DomainGenerator(Protocol):
    """What the CLI and the producer need from a generator: its topics and its batches."""

    domain: Domain
    topics: tuple[str, ...]

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        """Yield `n_events` events in total across `topics`, in batches of one topic each."""
        ...


def default_start(live: bool) -> datetime:
    """Midnight UTC of the previous day, or now when generating live traffic."""
    now = datetime.now(UTC)
    if live:
        return now
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=1)


def to_us(moment: datetime) -> int:
    """A datetime as integer microseconds since the epoch (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def now_us() -> int:
    """The wall clock in microseconds, for live event times."""
    return to_us(datetime.now(UTC))


@dataclass(frozen=True)
class Timeline:
    """Simulated time: maps a fraction of the run to a moment, with an optional daily cycle.

    Human traffic (shopping, card payments) peaks in the evening and dips at night; the
    diurnal timeline packs more events into busy hours while keeping all of them inside
    [start, start + span]. Machines report evenly, so IoT uses the linear timeline.
    """

    start_us: int
    span_us: int
    diurnal: bool = False

    @property
    def end_us(self) -> int:
        return self.start_us + self.span_us

    def at(self, fractions: np.ndarray) -> np.ndarray:
        """Moments (int64 µs) for fractions in [0, 1] of the run's traffic."""
        if not self.diurnal:
            return self.start_us + (np.asarray(fractions) * self.span_us).astype(np.int64)
        grid, cumulative = _warp(self.start_us, self.span_us)
        return self.start_us + np.interp(fractions, cumulative, grid).astype(np.int64)

    def clamp(self, moments: np.ndarray) -> np.ndarray:
        """Keep moments that spill past the end of the run (long sessions) inside it."""
        return np.minimum(moments, self.end_us - 1)


@lru_cache(maxsize=16)
def _warp(start_us: int, span_us: int) -> tuple[np.ndarray, np.ndarray]:
    """The diurnal timeline's grid of moments and the traffic share before each."""
    grid = np.linspace(0.0, float(span_us), 2049)
    hours = ((start_us + grid) / (3600 * US)) % 24
    # Busiest around 19:00 UTC, quietest around 07:00: a 4:1 swing.
    intensity = 1.0 + 0.6 * np.cos(2 * np.pi * (hours - 19.0) / 24.0)
    steps = (intensity[1:] + intensity[:-1]) / 2
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    return grid, cumulative / cumulative[-1]


@dataclass(frozen=True)
class Chunk:
    """One simulation step: its index, how many events it holds and its share of the run."""

    index: int
    size: int
    first: float
    last: float


def plan_chunks(n_events: int, chunk_events: int) -> list[Chunk]:
    """Split a run of `n_events` into consecutive chunks covering fractions of the span."""
    chunks = []
    for index in range(math.ceil(n_events / chunk_events)):
        lo = index * chunk_events
        hi = min(lo + chunk_events, n_events)
        chunks.append(Chunk(index, hi - lo, lo / n_events, hi / n_events))
    return chunks


def stable_hash(values: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of integers with a salt: a stable, seed-independent assignment by id."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pick_within(groups: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mark `counts[g]` items chosen at random among the items of each group `g`.

    `groups` holds each item's group index, sorted ascending; the result is a boolean mask
    over the items. Used to choose, per session, which product views become cart adds.
    """
    if groups.size == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(groups + rng.random(groups.size), kind="stable")
    sorted_groups = groups[order]
    first = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.empty(groups.size, dtype=np.int64)
    rank[order] = np.arange(groups.size) - first
    return rank < counts[groups]


ARRIVAL_DELAY_US = 500_000
"""Mean network delay between an event happening and reaching Kafka: the source of the
small out-of-order jitter in every stream."""


class TimeOrder:
    """Releases simulated events in the order they would reach Kafka.

    A chunk's sessions or fraud incidents may run past the chunk's slice of time; those
    events are held back until the chunk whose slice contains them, so the stream stays in
    event-time order apart from a small arrival jitter (and any deliberately late events).
    """

    def __init__(self) -> None:
        self.pending: dict[str, jsonl.Frame] = {}

    def release(self, frames: dict[str, jsonl.Frame], horizon_us: int | None,
                rng: np.random.Generator) -> dict[str, jsonl.Frame]:
        """The events stamped before `horizon_us` (all of them when None), in arrival order."""
        out = {}
        for topic, frame in frames.items():
            if topic in self.pending:
                frame = jsonl.concat([self.pending.pop(topic), frame])
            times = _event_times(frame)
            if horizon_us is not None:
                later = times >= horizon_us
                if later.any():
                    self.pending[topic] = jsonl.take(frame, later)
                    frame, times = jsonl.take(frame, ~later), times[~later]
            arrival = times + rng.exponential(ARRIVAL_DELAY_US, times.size).astype(np.int64)
            out[topic] = jsonl.take(frame, np.argsort(arrival, kind="stable"))
        return out


def _event_times(frame: jsonl.Frame) -> np.ndarray:
    column = frame["event_time"]
    assert isinstance(column, jsonl.Times)
    return column.values


class ChunkedGenerator(ABC):
    """Base of the domain generators: chunked simulation, live stamping, encoding, batching.

    A subclass declares its domain and message keys and implements `_frames`, which yields,
    per chunk, one frame per topic with exactly the event schema's fields. Everything else
    (the determinism contract, live mode, the JSON encoding and slicing into batches)
    lives here once.
    """

    domain: ClassVar[Domain]
    keys: ClassVar[dict[str, str]]  # topic -> the field used as the message key

    def __init__(self, *, seed: int, start: datetime | None, span: timedelta, live: bool) -> None:
        if span <= timedelta(0):
            raise ValueError(f"span must be positive, got {span}")
        self.seed = seed
        self.live = live
        self.start = start if start is not None else default_start(live)
        self.span = span
        self.topics = tuple(topic.name for topic in CATALOG.generated_topics(self.domain))
        self._events = {topic: CATALOG.topic(topic).event for topic in self.topics}

    def timeline(self, diurnal: bool) -> Timeline:
        """The run's simulated time, from `start` over `span`."""
        span_us = self.span // timedelta(microseconds=1)
        return Timeline(to_us(self.start), span_us, diurnal)

    def rng(self, *stream: int) -> np.random.Generator:
        """An independent random stream for (seed, *stream): per catalogue, per chunk."""
        return np.random.default_rng([self.seed, *stream])

    def batches(self, n_events: int, batch_size: int = 20_000) -> Iterator[EventBatch]:
        """Yield exactly `n_events` encoded events, at most `batch_size` per batch.

        In simulated mode the bytes depend only on (seed, start, span, n_events, options);
        in live mode every chunk is stamped with the wall clock when it is generated, and a
        chunk is at most `batch_size` events so that stamps stay close to send times.
        """
        if n_events < 0:
            raise ValueError(f"n_events must be >= 0, got {n_events}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n_events == 0:
            return
        chunk_events = min(CHUNK_EVENTS, batch_size) if self.live else CHUNK_EVENTS
        for frames in self._frames(plan_chunks(n_events, chunk_events)):
            stamp = now_us() if self.live else None
            for topic, frame in frames.items():
                size = jsonl.rows(frame)
                if size == 0:
                    continue
                if stamp is not None:
                    frame = {**frame, "event_time": jsonl.Times(np.full(size, stamp))}
                values = jsonl.encode(frame, self._events[topic].schema.names)
                keys = jsonl.key_bytes(frame[self.keys[topic]])
                for lo in range(0, size, batch_size):
                    hi = lo + batch_size
                    yield EventBatch(topic, keys[lo:hi], values[lo:hi])

    @abstractmethod
    def _frames(self, chunks: list[Chunk]) -> Iterator[dict[str, jsonl.Frame]]:
        """Per chunk, one frame per topic; over the run they hold exactly the chunks' events."""
