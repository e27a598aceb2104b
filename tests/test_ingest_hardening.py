"""The ingest sidecar never crashes on input, never skips a message, and stops on failure
without committing anything behind the failed batch. Real broker, real Delta tables."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakehouse.query import run_query
from lakehouse.settings import Settings
from streaming.ingest.buffer import TRANSIT_CREDIT_SECONDS, flush_deadline
from streaming.ingest.decode import Reason
from streaming.ingest.read_errors import READ_ATTEMPTS
from streaming.ingest.worker import IngestOptions, IngestReport, IngestWorker
from streaming.ingest.writer import Batch, Prepared, TopicWriter
from tests.conftest import lakehouse_command, settings_env
from tests.support.traffic import (
    Record,
    assert_exactly_once,
    click_event,
    landed_offsets,
    produce,
    produce_records,
    quarantine,
)

YEAR_10000 = 253_402_300_800_000  # 10000-01-01T00:00:00Z in milliseconds


def ingest(settings: Settings, worker: type[IngestWorker] = IngestWorker) -> IngestReport:
    options = IngestOptions(topics=["clickstream"], until_idle=True, handle_signals=False)
    return worker(settings, options).run()


def test_a_message_stamped_in_the_year_10000_is_quarantined_and_later_ones_land(
    settings: Settings,
) -> None:
    """It used to crash `lakehouse ingest` (datetime out of range), on every restart."""
    odd_stamps = [YEAR_10000, 2**63 - 1, -(2**63), -5, -1, 1]
    records = [Record(b"{not json", key=b"k", timestamp=YEAR_10000, partition=0)]
    # Valid events with absurd Kafka timestamps land like any other.
    records += [
        Record(click_event(number), timestamp=stamp, partition=number % 4)
        for number, stamp in enumerate(odd_stamps)
    ]
    records += [Record(b"[]", timestamp=stamp, partition=1) for stamp in odd_stamps]
    records += [Record(click_event(number)) for number in range(6, 2_000)]
    placed = produce_records(settings, "clickstream", records)

    report = ingest(settings)

    assert report.consumed == len(records)
    assert_exactly_once(settings, "clickstream", {f"c{i}" for i in range(2_000)})
    rows, rejected = landed_offsets(settings, "clickstream")
    assert sorted(rows + rejected) == sorted(placed)
    by_value: dict[bytes, list[object]] = {}
    for row in quarantine(settings).to_pylist():  # readable by Python: this raised before
        by_value.setdefault(row["value"], []).append(row["kafka_timestamp"])
    assert by_value[b"{not json"] == [None]
    kept = sorted(str(stamp) for stamp in by_value[b"[]"] if stamp is not None)
    # Only the representable, meaningful ones: -5 ms and 1 ms around the epoch.
    assert kept == ["1969-12-31 23:59:59.995000+00:00", "1970-01-01 00:00:00.001000+00:00"]
    # DuckDB reads the quarantine too.
    counted = run_query(settings, "SELECT count(*) AS n FROM bronze.quarantine")
    assert counted.column("n").to_pylist() == [len(odd_stamps) + 1]
    # A restart lands nothing twice and does not trip over it again.
    assert ingest(settings).written == 0


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.integers(0, 2),
    st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, -1, 1, YEAR_10000, 2**63 - 1]),
    st.floats(0, 3600),
)
def test_a_flush_deadline_stays_within_bounds_whatever_the_timestamp(
    kind: int, millis: int, interval: float
) -> None:
    now, wall = 1000.0, time.time()
    deadline = flush_deadline((kind, millis), now, wall, interval)
    assert now + interval - min(TRANSIT_CREDIT_SECONDS, interval) <= deadline <= now + interval


class StalledWorker(IngestWorker):
    """The real worker; counts its batches so the test knows when N+1 is queued."""

    def __init__(self, settings: Settings, options: IngestOptions) -> None:
        super().__init__(settings, options)
        self.submitted = 0
        self.third_queued = threading.Event()

    def _submit(self, batch: Batch) -> None:
        super()._submit(batch)
        self.submitted += 1
        if self.submitted == 3:
            self.third_queued.set()


class FailingWriter(TopicWriter):
    """The real writer, except that decoding the second batch fails once the third batch
    is queued behind it."""

    def __init__(self, topic: str, settings: Settings, worker: StalledWorker) -> None:
        super().__init__(topic, settings)
        self.worker = worker
        self.batches: list[Batch] = []

    def prepare(self, batch: Batch) -> Prepared:
        self.batches.append(batch)
        if len(self.batches) == 2:
            self.worker.third_queued.wait(timeout=60)
            raise RuntimeError("injected decode failure")
        return super().prepare(batch)


def test_a_failed_batch_stops_the_worker_and_nothing_queued_behind_it_commits(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"ingest_flush_rows": 400, "ingest_flush_seconds": 60.0})
    values = [b"{poison %d" % n if n % 37 == 5 else click_event(n) for n in range(3_000)]
    placed = produce_records(settings, "clickstream", [Record(v) for v in values])
    poisoned = {placed[n] for n, value in enumerate(values) if value.startswith(b"{poison")}

    options = IngestOptions(
        topics=["clickstream"], until_idle=True, handle_signals=False, poll_batch=400
    )
    worker = StalledWorker(settings, options)
    writer = FailingWriter("clickstream", settings, worker)
    worker.writers["clickstream"] = writer
    with pytest.raises(RuntimeError, match="injected decode failure"):
        worker.run()
    assert worker.third_queued.is_set(), "the third batch was never queued behind the second"

    # Only the first batch landed: nothing of the second (failed) or the third (queued).
    first = writer.batches[0]
    first_offsets = {(m.partition(), m.offset()) for m in first.messages}
    rows, rejected = landed_offsets(settings, "clickstream")
    assert set(rows) == first_offsets - poisoned
    assert set(rejected) == first_offsets & poisoned
    assert len(rows) + len(rejected) == len(first_offsets)

    # A rerun lands every message exactly once; every poison message is quarantined once.
    ingest(settings)
    rows, rejected = landed_offsets(settings, "clickstream")
    assert sorted(rows + rejected) == sorted(placed)
    assert sorted(rejected) == sorted(poisoned)
    assert_exactly_once(
        settings, "clickstream", {f"c{n}" for n, v in enumerate(values) if v[:2] == b'{"'}
    )


def message(partition: int, offset: int, **fields: object) -> Message:
    return Message(topic="clickstream", partition=partition, offset=offset, **fields)


def failure(partition: int, offset: int, code: int = KafkaError._BAD_MSG) -> Message:
    """An error event as `consume()` returns it; -1 and -1001 read back as None (unknown)."""
    error = KafkaError(code, "corrupt record (test)")
    return Message(topic="clickstream", partition=partition, offset=offset, error=error)


def test_a_consumer_error_never_lets_a_partition_advance_past_an_unread_offset(
    settings: Settings,
) -> None:
    """The worker's position bookkeeping, fed real confluent_kafka error events (a corrupt
    record was not provoked on the embedded broker); then the batch it builds is really
    written."""
    worker = IngestWorker(settings, IngestOptions(topics=["clickstream"], handle_signals=False))
    try:
        worker.positions.update({("clickstream", 0): None, ("clickstream", 1): 6})
        buffer = worker.buffers["clickstream"]
        value = {"value": click_event(0), "timestamp": (1, YEAR_10000)}

        # Offset 1 fails: what follows it in the same poll is dropped, and the partition
        # is read again from just after offset 0; partition 1 is unaffected.
        worker._buffer(
            [
                message(0, 0, **value),
                failure(0, 1),
                message(0, 2, **value),
                message(1, 7, value=click_event(7)),
            ],
            time.monotonic(),
        )
        assert [(m.partition(), m.offset()) for m in buffer.messages] == [(0, 0), (1, 7)]
        assert worker.positions == {("clickstream", 0): 0, ("clickstream", 1): 7}
        assert buffer.ranges[0].last == 0 and buffer.ranges[1].last == 7
        assert worker._rereads == {("clickstream", 0)}

        # Errors without an offset, not about a message, or for partitions we do not own,
        # move nothing, however often they repeat.
        worker._buffer([failure(0, -1001), failure(-1, -1001, KafkaError._TRANSPORT)], 0.0)
        worker._buffer([failure(3, 5)], 0.0)
        for _ in range(READ_ATTEMPTS + 1):
            worker._buffer([failure(1, 8, KafkaError.NOT_LEADER_FOR_PARTITION)], 0.0)
        assert worker.positions == {("clickstream", 0): 0, ("clickstream", 1): 7}
        assert not buffer.unreadable

        # The same offset keeps failing: after READ_ATTEMPTS reads it is quarantined as
        # unreadable, and the partition moves on past it (offsets need not be contiguous).
        for _ in range(READ_ATTEMPTS - 1):
            worker._buffer([failure(0, 1)], time.monotonic())
        assert [(u.partition, u.offset) for u in buffer.unreadable] == [(0, 1)]
        assert worker.positions[("clickstream", 0)] == 1 and buffer.ranges[0].last == 1
        worker._buffer([message(0, 1, **value), message(0, 4, **value)], time.monotonic())
        assert [m.offset() for m in buffer.messages if m.partition() == 0] == [0, 4]
        assert buffer.ranges[0].base is None and buffer.ranges[0].last == 4
    finally:
        worker._consumer.close()

    # The range's every offset is landed or quarantined: the unreadable one with its reason.
    batch = buffer.take("clickstream")
    batch.ranges.pop(1)  # partition 1 starts after offset 6, which this lake never landed
    batch.messages = [m for m in batch.messages if m.partition() == 0]
    writer = TopicWriter("clickstream", settings)
    outcome = writer.commit(writer.prepare(batch))
    assert outcome.data.committed == {0: 4} and outcome.quarantined == 1
    (row,) = quarantine(settings).to_pylist()
    assert row["offset"] == 1 and row["reason"] == Reason.UNREADABLE.value
    assert row["value"] is None and "never received" in row["detail"]
    assert "_BAD_MSG" in row["detail"]


def test_buffering_in_bulk_decides_exactly_as_message_by_message(settings: Settings) -> None:
    """A poll that is all fresh messages of owned partitions is buffered without a loop
    per message; a poll with anything else (a duplicate after a seek, a partition we do
    not own, an error) takes the per-message loop. Both settle the same ranges."""
    worker = IngestWorker(settings, IngestOptions(topics=["clickstream"], handle_signals=False))
    try:
        worker.positions.update({("clickstream", 0): 4, ("clickstream", 1): None})
        buffer = worker.buffers["clickstream"]
        value = {"value": click_event(0)}

        worker._buffer(
            [message(0, 5, **value), message(1, 0, **value), message(0, 6, **value)], 1.0
        )
        assert [(m.partition(), m.offset()) for m in buffer.messages] == [(0, 5), (1, 0), (0, 6)]
        assert worker.positions == {("clickstream", 0): 6, ("clickstream", 1): 0}
        assert (buffer.ranges[0].base, buffer.ranges[0].last) == (4, 6)
        assert (buffer.ranges[1].base, buffer.ranges[1].last) == (None, 0)
        assert worker.report.consumed == 3
        opened_at = buffer.flush_at

        # A duplicate (offset 6 again, after a seek) and a partition not ours: dropped.
        worker._buffer(
            [message(0, 6, **value), message(0, 8, **value), message(2, 0, **value)], 2.0
        )
        assert [(m.partition(), m.offset()) for m in buffer.messages][3:] == [(0, 8)]
        assert (buffer.ranges[0].base, buffer.ranges[0].last) == (4, 8)
        assert worker.report.consumed == 4
        assert buffer.flush_at == opened_at  # the buffer was already open

        worker._buffer([message(1, 3, **value), message(1, 2, **value)], 3.0)  # out of order
        assert [(m.partition(), m.offset()) for m in buffer.messages][4:] == [(1, 3)]
        assert worker.positions == {("clickstream", 0): 8, ("clickstream", 1): 3}
        assert (buffer.ranges[1].base, buffer.ranges[1].last) == (None, 3)
    finally:
        worker._consumer.close()


def test_a_worker_killed_by_the_kernel_makes_ingest_exit_non_zero_promptly(
    settings: Settings, tmp_path: Path
) -> None:
    produce(settings, "clickstream", map(click_event, range(2_000)))
    log = tmp_path / "ingest.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            lakehouse_command("ingest", "--topics", "clickstream", "--workers", "2"),
            env=settings_env(settings),
            stdout=sink,
            stderr=sink,
        )
    try:
        workers = _wait_for(lambda: _spawned_children(process.pid, 2), timeout=60)
        _wait_for(lambda: log.read_text().count("assigned clickstream") >= 1, timeout=60)
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        code = process.wait(timeout=90)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert code != 0, output[-2000:]
    assert f"(pid {victim}) was killed by SIGKILL" in output, output[-2000:]
    assert elapsed < 60
    for pid in workers[1:]:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), "a worker was left behind"


def _spawned_children(parent: int, count: int) -> list[int] | None:
    """The worker processes (multiprocessing spawn children) of `parent`, once all started."""
    pids = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command:
                pids.append(int(child))
    return sorted(pids) if len(pids) >= count else None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def _wait_for(probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.2)
    raise TimeoutError(f"condition not met in {timeout}s")
