"""A writer expelled from the group mid-flush (a zombie) cannot land its stale batch.

The zombie's writer is held at the commit point by a gate, the way a long GC pause or a
frozen VM would hold it; meanwhile the group hands its partitions to a second worker that
lands the same offsets. When the gate opens the zombie's commit must be refused.
"""

from __future__ import annotations

import threading
import time

from lakehouse.settings import Settings
from streaming.ingest.worker import IngestOptions, IngestWorker
from streaming.ingest.writer import FlushOutcome, Prepared, TopicWriter
from tests.support.traffic import SteadyTraffic, assert_exactly_once, bronze, wait_for_rows


class GatedWriter(TopicWriter):
    """The real writer, held before its first commit until the gate opens."""

    def __init__(self, topic: str, settings: Settings) -> None:
        super().__init__(topic, settings)
        self.gate = threading.Event()
        self.holding = threading.Event()

    def commit(self, prepared: Prepared) -> FlushOutcome:
        self.holding.set()
        self.gate.wait()
        return super().commit(prepared)


def run_in_thread(worker: IngestWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_a_zombie_writer_is_fenced_and_its_successor_lands_everything(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={
            "ingest_flush_seconds": 0.5,
            # A member that stops polling this long is expelled from the group.
            "kafka_client_config": {"max.poll.interval.ms": 7000},
        }
    )
    options = IngestOptions(topics=["clickstream"], handle_signals=False)
    traffic = SteadyTraffic(settings, rate=3_000)
    traffic.start()

    zombie = IngestWorker(settings, options)
    gated = GatedWriter("clickstream", settings)
    zombie.writers["clickstream"] = gated
    successor = IngestWorker(settings, options)
    threads: list[threading.Thread] = []
    try:
        threads.append(run_in_thread(zombie))
        assert gated.holding.wait(timeout=60), "the zombie never started a flush"

        # With its writer stuck, the zombie soon stops polling and is expelled from the
        # group; then the successor takes every partition and lands the offsets the zombie
        # holds. (It joins after the expulsion: the embedded broker wedges a group whose
        # member leaves during a rebalance.)
        time.sleep(7 + 5)
        threads.append(run_in_thread(successor))
        wait_for_rows(settings, "clickstream", 20_000, timeout=90)

        gated.gate.set()
        time.sleep(3)
        traffic.finish()
        wait_for_rows(settings, "clickstream", traffic.produced, timeout=90)
    finally:
        gated.gate.set()
        traffic.finish()
        for worker, thread in zip((zombie, successor), threads, strict=False):
            worker.stop()
            thread.join(timeout=60)

    assert zombie.report.fenced >= 1
    assert successor.report.written > 0
    assert_exactly_once(settings, "clickstream", traffic.expected_ids())
    assert bronze(settings, "clickstream").num_rows == traffic.produced
