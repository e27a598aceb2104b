"""The Delta sink records offsets in the Delta log and fences writers that fell behind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.catalog import QUARANTINE, TableSpec, table_uri
from lakehouse.settings import Settings
from streaming.ingest.sink import CommitResult, PartitionedDeltaSink, PartitionRange

SPEC = TableSpec(
    name="events",
    layer=QUARANTINE.layer,
    domain=QUARANTINE.domain,
    schema=pa.schema(
        [("payload", pa.string()), ("_kafka_partition", pa.int32()), ("_kafka_offset", pa.int64())]
    ),
    description="test table",
)


def rows(partition: int, offsets: range) -> pa.Table:
    return pa.table(
        {
            "payload": [f"p{partition}-o{o}" for o in offsets],
            "_kafka_partition": pa.array([partition] * len(offsets), pa.int32()),
            "_kafka_offset": pa.array(list(offsets), pa.int64()),
        },
        schema=SPEC.schema,
    )


def landed(settings: Settings) -> list[str]:
    table = DeltaTable(table_uri(SPEC, settings)).to_pyarrow_table()
    return sorted(table.column("payload").to_pylist())


def sink(settings: Settings) -> PartitionedDeltaSink:
    return PartitionedDeltaSink(SPEC, settings, "topic", retry_backoff=lambda _: 0.01)


def test_contiguous_commits_record_the_last_offset_per_partition(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    writer = sink(settings)
    first = writer.commit_contiguous(
        pa.concat_tables([rows(0, range(0, 10)), rows(1, range(0, 5))]),
        {0: PartitionRange(None, 9), 1: PartitionRange(None, 4)},
    )
    assert first.committed == {0: 9, 1: 4} and first.fenced == {}
    second = writer.commit_contiguous(rows(0, range(10, 20)), {0: PartitionRange(9, 19)})
    assert second.committed == {0: 19}
    assert writer.recorded_offsets([0, 1, 2]) == {0: 19, 1: 4, 2: None}
    assert len(landed(settings)) == 25


def test_a_batch_whose_base_is_stale_is_fenced_and_writes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    owner, zombie = sink(settings), sink(settings)
    owner.commit_contiguous(rows(0, range(0, 10)), {0: PartitionRange(None, 9)})
    # The zombie still believes nothing landed for partition 0.
    result = zombie.commit_contiguous(rows(0, range(0, 15)), {0: PartitionRange(None, 14)})
    assert result.committed == {}
    assert result.fenced == {0: 9}
    assert len(landed(settings)) == 10


def test_fencing_is_per_partition(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    owner, zombie = sink(settings), sink(settings)
    owner.commit_contiguous(rows(0, range(0, 10)), {0: PartitionRange(None, 9)})
    result = zombie.commit_contiguous(
        pa.concat_tables([rows(0, range(0, 10)), rows(1, range(0, 3))]),
        {0: PartitionRange(None, 9), 1: PartitionRange(None, 2)},
    )
    assert result.committed == {1: 2} and result.fenced == {0: 9}
    assert len(landed(settings)) == 13


def test_racing_writers_of_the_same_range_land_it_exactly_once(
    make_settings: Callable[..., Settings],
) -> None:
    """Two owners of one partition (a zombie and its successor) race 20 times."""
    settings = make_settings()
    writers = [sink(settings), sink(settings)]
    base: int | None = None
    for round_number in range(20):
        start = 0 if base is None else base + 1
        batch = rows(0, range(start, start + 5))
        span = {0: PartitionRange(base, start + 4)}
        with ThreadPoolExecutor(max_workers=2) as pool:
            barrier = threading.Barrier(2)
            futures = [pool.submit(_race, barrier, writer, batch, span) for writer in writers]
            results = [future.result() for future in futures]
        winners = [r for r in results if r.committed]
        assert len(winners) == 1, f"round {round_number}: {results}"
        base = start + 4
    assert len(landed(settings)) == 100
    assert len(set(landed(settings))) == 100


def _race(
    barrier: threading.Barrier,
    writer: PartitionedDeltaSink,
    batch: pa.Table,
    span: dict[int, PartitionRange],
) -> CommitResult:
    barrier.wait()
    return writer.commit_contiguous(batch, span)


def test_watermark_commits_skip_rows_already_recorded(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    writer = sink(settings)
    assert writer.commit_above_watermark(rows(0, range(0, 4)), {0: 10}).rows == 4
    # A replay of offsets up to 20 (after a crash) only adds what lies above 10.
    replay = pa.concat_tables([rows(0, range(0, 4)), rows(0, range(12, 15))])
    result = writer.commit_above_watermark(replay, {0: 20})
    assert result.rows == 3 and result.committed == {0: 20}
    assert writer.commit_above_watermark(replay, {0: 20}).rows == 0
    assert len(landed(settings)) == 7
