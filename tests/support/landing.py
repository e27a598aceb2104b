"""Generated traffic straight into bronze, as ingest would have landed it, without Kafka.

Training, benchmarks and tests need days or weeks of data in minutes; going through the
broker would only measure the broker again (the ingest benchmark does that). The rows are
decoded by the ingest sidecar's own decoder and carry the same provenance columns, so
every layer above bronze sees exactly what a real landing produces.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.catalog import CATALOG
from lakehouse.delta import ensure_table
from lakehouse.settings import Settings
from streaming.generators.common import DomainGenerator
from streaming.ingest.decode import BatchDecoder
from streaming.ingest.provenance import with_provenance
from streaming.ingest.sink import BRONZE_PARQUET


def land_in_bronze(
    settings: Settings,
    generator: DomainGenerator,
    events: int,
    *,
    batch_size: int = 200_000,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Generate `events` events, decode them and append them to their bronze tables in
    commits of `ingest_flush_rows` (as ingest sizes them); return the events landed per
    topic. `on_batch(n)` reports progress.

    Generated traffic is clean, so a decoding reject is a bug and raises.
    """
    decoders: dict[str, BatchDecoder] = {}
    offsets: dict[str, int] = {}
    buffers: dict[str, list[pa.Table]] = {}
    for batch in generator.batches(events, batch_size):
        topic = batch.topic
        decoder = decoders.setdefault(
            topic, BatchDecoder(CATALOG.topic(topic).event, settings.ingest_max_message_bytes)
        )
        decoded = decoder.decode(batch.values)
        if decoded.rejects:
            raise ValueError(f"generated {topic} traffic was rejected: {decoded.rejects[:1]}")
        first = offsets.get(topic, 0)
        offsets[topic] = first + len(batch.values)
        # One partition, offsets in order, as a single-partition topic would have them.
        rows = with_provenance(
            decoded.table,
            np.zeros(decoded.table.num_rows, np.int32),
            first + decoded.indices.astype(np.int64),
            datetime.now(UTC),
        )
        buffers.setdefault(topic, []).append(rows)
        if sum(part.num_rows for part in buffers[topic]) >= settings.ingest_flush_rows:
            _flush(settings, topic, buffers)
        if on_batch is not None:
            on_batch(len(batch.values))
    for topic in buffers:
        _flush(settings, topic, buffers)
    return offsets


def _flush(settings: Settings, topic: str, buffers: dict[str, list[pa.Table]]) -> None:
    if not buffers[topic]:
        return
    spec = CATALOG.bronze_for_topic(topic)
    rows = pa.concat_tables(buffers[topic]).cast(spec.schema)
    # The sink's Parquet settings, so that what the builds and benchmarks read is bronze
    # as the ingest sidecar writes it (zstd, delta-encoded ids and times).
    write_deltalake(ensure_table(spec, settings), rows, mode="append",
                    partition_by=list(spec.partition_by), writer_properties=BRONZE_PARQUET)
    buffers[topic] = []


def bronze_messages(topic: str, values: list[bytes]) -> pa.Table:
    """Bronze rows of `values` (messages of `topic`, such as the ones a platform service
    produces), decoded by the ingest decoder as ingest would land them from a single
    partition; a reject raises, as these messages are the test's own."""
    decoded = BatchDecoder(CATALOG.topic(topic).event, 1 << 20).decode(values)
    if decoded.rejects:
        raise ValueError(f"{topic} messages rejected by ingest: {decoded.rejects[:1]}")
    rows = with_provenance(
        decoded.table,
        np.zeros(decoded.table.num_rows, np.int32),
        decoded.indices.astype(np.int64),
        datetime.now(UTC),
    )
    return rows.cast(CATALOG.bronze_for_topic(topic).schema)


def land_messages(settings: Settings, topic: str, values: list[bytes]) -> int:
    """Append `values` (messages of `topic`) to its bronze table in one commit; return how
    many landed."""
    if not values:
        return 0
    spec = CATALOG.bronze_for_topic(topic)
    write_deltalake(ensure_table(spec, settings), bronze_messages(topic, values),
                    mode="append", partition_by=list(spec.partition_by))
    return len(values)
