"""The Delta sink records offsets in the Delta log and fences writers that fell behind."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse.catalog import QUARANTINE, TableSpec, table_uri
from lakehouse.settings import Settings
from streaming.ingest.sink import CommitResult, PartitionedDeltaSink, PartitionRange, SinkError
from tests.conftest import s3_lake_options
from tests.support.net import free_port
from tests.support.proxy import CuttableProxy

SPEC = TableSpec(
    name="events",
    layer=QUARANTINE.layer,
    domain=QUARANTINE.domain,
    schema=pa.schema(
        [("payload", pa.string()), ("_kafka_partition", pa.int32()), ("_kafka_offset", pa.int64())]
    ),
    description="test table",
)


# A stand-in for bronze.quarantine: its own table, partition and offset columns unprefixed.
POISON_SPEC = TableSpec(
    name="poison",
    layer=QUARANTINE.layer,
    domain=QUARANTINE.domain,
    schema=pa.schema(
        [("payload", pa.string()), ("partition", pa.int32()), ("offset", pa.int64())]
    ),
    description="test quarantine",
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


def poison(partition: int, offsets: range | list[int]) -> pa.Table:
    return pa.table(
        {
            "payload": [f"bad-p{partition}-o{o}" for o in offsets],
            "partition": pa.array([partition] * len(offsets), pa.int32()),
            "offset": pa.array(list(offsets), pa.int64()),
        },
        schema=POISON_SPEC.schema,
    )


def landed(settings: Settings, spec: TableSpec = SPEC) -> list[str]:
    table = DeltaTable(table_uri(spec, settings)).to_pyarrow_table()
    return sorted(table.column("payload").to_pylist())


def sink(settings: Settings) -> PartitionedDeltaSink:
    return PartitionedDeltaSink(SPEC, settings, "topic", retry_backoff=lambda _: 0.01)


def quarantine_sink(settings: Settings, cls: type = PartitionedDeltaSink) -> PartitionedDeltaSink:
    return cls(
        POISON_SPEC,
        settings,
        "topic",
        partition_column="partition",
        offset_column="offset",
        retry_backoff=lambda _: 0.01,
    )


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


def test_quarantine_commits_skip_rows_already_recorded(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    data, quarantine = sink(settings), quarantine_sink(settings)
    first = quarantine.commit_above_watermark(poison(0, range(0, 4)), span(None, 10), data)
    assert first.rows == 4 and first.committed == {0: 10}
    # The process crashed before its data commit; the replay after the restart reads the
    # same offsets and more (up to 20): only the poison above 10 is added.
    replay = pa.concat_tables([poison(0, range(0, 4)), poison(0, range(12, 15))])
    result = quarantine.commit_above_watermark(replay, span(None, 20), data)
    assert result.rows == 3 and result.committed == {0: 20}
    assert quarantine.commit_above_watermark(replay, span(None, 20), data).rows == 0
    assert len(landed(settings, POISON_SPEC)) == 7


def span(base: int | None, last: int, partition: int = 0) -> dict[int, PartitionRange]:
    return {partition: PartitionRange(base, last)}


def test_a_quarantine_commit_is_refused_until_the_data_reaches_the_batch_base(
    make_settings: Callable[..., Settings],
) -> None:
    """The admission rule: the quarantine takes a batch's poison for a partition only while
    the data table records exactly the batch's base."""
    settings = make_settings()
    data, quarantine = sink(settings), quarantine_sink(settings)
    data.commit_contiguous(rows(0, range(0, 10)), {0: PartitionRange(None, 9)})
    batch = pa.concat_tables([poison(0, [25]), poison(1, [2])])
    # Partition 0's batch starts after offset 19, but the data has only reached 9 (the
    # batch 10..19 before it never landed); partition 1 has nothing landed and starts there.
    ranges = {0: PartitionRange(19, 29), 1: PartitionRange(None, 5)}
    result = quarantine.commit_above_watermark(batch, ranges, data)
    assert result.fenced == {0: 9}
    assert result.committed == {1: 5} and result.rows == 1
    assert landed(settings, POISON_SPEC) == ["bad-p1-o2"]
    # A writer whose base is behind the data (a zombie) is refused too.
    stale = quarantine.commit_above_watermark(poison(0, [3]), span(None, 9), data)
    assert stale.fenced == {0: 9} and stale.rows == 0
    assert quarantine.recorded_offsets([0, 1]) == {0: None, 1: 5}


class RivalInsideCommit(PartitionedDeltaSink):
    """The real sink, with a rival's commit landing after its checks on its snapshot and
    just before its own commit: inside the window that delta-rs's conflict checker guards."""

    rival: Callable[[], None] | None = None

    def _append(self, rows: pa.Table, marks: dict[int, int]) -> None:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival()
        super()._append(rows, marks)


def test_a_rival_data_commit_inside_our_commit_fences_us(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    rival = sink(settings)
    ours = RivalInsideCommit(SPEC, settings, "topic", retry_backoff=lambda _: 0.01)
    ours.rival = lambda: rival.commit_contiguous(rows(0, range(0, 10)), span(None, 9))
    batch = pa.concat_tables([rows(0, range(0, 12)), rows(1, range(0, 3))])
    ranges = {0: PartitionRange(None, 11), 1: PartitionRange(None, 2)}
    result = ours.commit_contiguous(batch, ranges)
    assert ours.rival is None, "the rival never ran"
    # Our first commit was refused; the re-check fenced partition 0 and landed partition 1.
    assert result.fenced == {0: 9} and result.committed == {1: 2}
    payloads = landed(settings)
    assert len(payloads) == 13 and len(set(payloads)) == 13
    assert ours.recorded_offsets([0, 1]) == {0: 9, 1: 2}


def test_a_rival_landing_its_batch_inside_our_quarantine_commit_fences_us(
    make_settings: Callable[..., Settings],
) -> None:
    """The rival (a successor, same base) lands poison then data inside our quarantine
    commit: ours is refused, the partition is fenced, every poison message is there once."""
    settings = make_settings()
    rival_data, rival_quarantine = sink(settings), quarantine_sink(settings)
    data, quarantine = sink(settings), quarantine_sink(settings, RivalInsideCommit)

    def rival() -> None:
        rival_quarantine.commit_above_watermark(poison(0, [2, 5]), span(None, 9), rival_data)
        rival_data.commit_contiguous(rows(0, [0, 1, 3, 4, 6, 7, 8, 9]), span(None, 9))

    quarantine.rival = rival
    result = quarantine.commit_above_watermark(poison(0, [2, 5]), span(None, 9), data)
    assert quarantine.rival is None, "the rival never ran"
    assert result.fenced == {0: 9} and result.rows == 0
    assert landed(settings, POISON_SPEC) == ["bad-p0-o2", "bad-p0-o5"]
    assert len(landed(settings)) == 8


def test_a_rival_quarantine_commit_inside_ours_adds_no_duplicate(
    make_settings: Callable[..., Settings],
) -> None:
    """The rival commits only the quarantine inside our quarantine commit (it has not
    landed its data yet): ours is refused, the re-check finds the poison there already."""
    settings = make_settings()
    rival_data, rival_quarantine = sink(settings), quarantine_sink(settings)
    data, quarantine = sink(settings), quarantine_sink(settings, RivalInsideCommit)
    quarantine.rival = lambda: rival_quarantine.commit_above_watermark(
        poison(0, [2, 5]), span(None, 9), rival_data
    )
    result = quarantine.commit_above_watermark(poison(0, [2, 5, 11]), span(None, 12), data)
    assert quarantine.rival is None, "the rival never ran"
    assert result.fenced == {} and result.rows == 1 and result.committed == {0: 12}
    assert landed(settings, POISON_SPEC) == ["bad-p0-o11", "bad-p0-o2", "bad-p0-o5"]


def test_a_rival_data_commit_between_our_quarantine_check_and_commit_loses_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    """A rival with the same base but a shorter, clean range lands only data inside our
    quarantine commit, which nothing refuses (another table). Our poison lies above the
    rival's range, so the quarantine merely runs ahead of the data; the rival's next batch
    finds that poison there and adds none twice."""
    settings = make_settings()
    rival_data, rival_quarantine = sink(settings), quarantine_sink(settings)
    data, quarantine = sink(settings), quarantine_sink(settings, RivalInsideCommit)
    quarantine.rival = lambda: rival_data.commit_contiguous(rows(0, range(0, 3)), span(None, 2))
    ours = quarantine.commit_above_watermark(poison(0, [5, 6]), span(None, 9), data)
    assert ours.rows == 2
    assert data.commit_contiguous(rows(0, [0, 1, 2, 3, 4, 7, 8, 9]), span(None, 9)).fenced == {0: 2}
    # The rival carries on from 2 with the same poison in its next batch.
    again = rival_quarantine.commit_above_watermark(poison(0, [5, 6]), span(2, 9), rival_data)
    assert again.rows == 0 and again.fenced == {}
    assert rival_data.commit_contiguous(rows(0, [3, 4, 7, 8, 9]), span(2, 9)).committed == {0: 9}
    assert landed(settings, POISON_SPEC) == ["bad-p0-o5", "bad-p0-o6"]
    assert len(landed(settings)) == 8 == len(set(landed(settings)))


def test_a_missing_table_fails_loudly_at_once(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(ingest_retry_seconds=600)
    writer = sink(settings)
    shutil.rmtree(table_uri(SPEC, settings))
    started = time.monotonic()
    with pytest.raises(SinkError, match="no longer exists") as raised:
        writer.commit_contiguous(rows(0, range(0, 5)), span(None, 4))
    assert SPEC.key in str(raised.value)
    assert time.monotonic() - started < 30, "retried a missing table"


def test_storage_failures_are_retried_within_the_budget_then_raised(
    make_settings: Callable[..., Settings], moto_server: str, s3_bucket: str
) -> None:
    proxy = CuttableProxy(free_port(), int(moto_server.rsplit(":", 1)[1])).start()
    try:
        settings = make_settings(
            **s3_lake_options(f"http://127.0.0.1:{proxy.listen_port}", s3_bucket),
            ingest_retry_seconds=3,
        )
        writer = sink(settings)
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(SinkError, match="still failing after") as raised:
            writer.commit_contiguous(rows(0, range(0, 5)), span(None, 4))
        assert SPEC.key in str(raised.value)
        assert time.monotonic() - started < 90
        proxy.restore()
        # Nothing half-written: a fresh writer lands the same range.
        assert sink(settings).commit_contiguous(rows(0, range(0, 5)), span(None, 4)).rows == 5
    finally:
        proxy.cut()
