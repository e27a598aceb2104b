"""The fraud audit trail: every decided payment and its decision reach Kafka, and through
ingest the lake, exactly once by transaction id, whatever Kafka does meanwhile: a 30 s
outage under traffic, a shutdown (SIGTERM) with records still queued, a shutdown with the
broker away (the spool, resent by the next process), a full spool (counted and logged),
several processes sharing one spool folder (no file resent twice). Real broker, no mocks.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from lakehouse.broker import ensure_topics
from lakehouse.catalog import CATALOG, FRAUD_DECISIONS, TRANSACTIONS
from lakehouse.schemas import FRAUD_DECISIONS as DECISION_EVENT
from lakehouse.settings import Settings
from lakehouse.transforms.silver import build_silver_partition
from lakehouse.transforms.tables import read_days
from streaming.fraud import spool as spool_module
from streaming.fraud.audit import AuditTrail, decision_event
from streaming.fraud.spool import Spool, SpooledRecord, frame, parse
from streaming.ingest.decode import BatchDecoder
from streaming.ingest.worker import IngestOptions, IngestWorker
from tests.conftest import REPO, settings_env
from tests.support.fraud_audit import answer, payment, read_topic, verdict
from tests.support.net import free_port
from tests.support.proxy import broker_behind_proxy
from tests.support.traffic import bronze

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
TOPICS = (TRANSACTIONS.name, FRAUD_DECISIONS.name)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def record_payments(trail: AuditTrail, numbers: range) -> None:
    for number in numbers:
        transaction = payment(number, NOW + timedelta(milliseconds=number))
        trail.record(transaction, answer(transaction, verdict(transaction["event_id"], None)))


def ids_on(settings: Settings, topic: str) -> Counter[str]:
    """How many times each event id is on a topic."""
    return Counter(orjson.loads(m.value())["event_id"] for m in read_topic(settings, topic))


def spool_files(settings: Settings) -> list[Path]:
    return sorted(settings.fraud_audit_spool.glob("*.spool"))


def dead_end(settings: Settings) -> Settings:
    """The same settings (and spool folder), with Kafka at a port where nothing listens."""
    return settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})


def stopped_while_kafka_was_away(settings: Settings, payments: int) -> None:
    """A service process that decided `payments` payments and shut down (close) while
    Kafka was unreachable: everything it recorded is left in the spool folder."""
    away = AuditTrail(dead_end(settings))
    record_payments(away, range(payments))
    away.close(timeout=1.0)
    assert away.stats.spooled == 2 * payments and away.stats.dropped == 0
    assert spool_files(settings), "nothing was left in the spool"


def assert_each_payment_once_on_both_topics(settings: Settings, payments: int) -> None:
    for topic in TOPICS:
        assert ids_on(settings, topic) == Counter({f"p{n}": 1 for n in range(payments)}), topic


# --- the decision event ------------------------------------------------------------------


def test_the_decision_event_carries_the_transaction_and_the_answer_and_ingest_takes_it() -> None:
    transaction = payment(7, NOW)
    decided = NOW + timedelta(milliseconds=4)
    event = decision_event(transaction, answer(transaction, "REVIEW"), decided)
    assert event == {
        "event_id": "p7",
        "event_time": "2026-11-23T12:00:00.004000Z",
        "transaction_id": "p7",
        "transaction_time": "2026-11-23T12:00:00.000000Z",
        "user_id": 8,
        "card_id": "card-0007",
        "amount": 13.75,
        "merchant_category": "grocery",
        "channel": "online",
        "decision": "REVIEW",
        "fraud_probability": 0.93,
        "rules_fired": ["amount_spike"],
        "reasons": ["amount far above the holder's norm"],
        "model_version": 3,
        "rules_version": "rules-2026-12-01",
        "degraded": False,
        "missing": [],
        "latency_ms": 2.0,  # the sum of the stages
    }
    no_model = decision_event(
        transaction,
        {**answer(transaction), "fraud_probability": None, "model_version": None,
         "degraded": True, "missing": ["model"], "reasons": [{"rule": "velocity"}]},
        decided,
    )
    decoded = BatchDecoder(DECISION_EVENT, 1 << 20).decode([orjson.dumps(event),
                                                            orjson.dumps(no_model)])
    assert decoded.rejects == []
    rows = decoded.table.to_pylist()
    assert rows[1]["missing"] == ["model"] and rows[1]["fraud_probability"] is None
    assert rows[1]["reasons"] == ['{"rule":"velocity"}']


# --- the spool ---------------------------------------------------------------------------


def test_a_torn_or_corrupt_record_ends_what_the_spool_can_read(tmp_path: Path) -> None:
    records = [SpooledRecord("transactions", f"k{i}".encode(), b'{"n":%d}' % i) for i in range(5)]
    records.append(SpooledRecord("fraud_decisions", None, b"{}"))
    data = b"".join(map(frame, records))
    assert parse(data).records == records and parse(data).unreadable_bytes == 0
    torn = parse(data[:-3])
    assert torn.records == records[:-1] and torn.unreadable_bytes > 0
    second = len(frame(records[0]))
    corrupt = bytearray(data)
    corrupt[second + 20] ^= 0xFF  # a byte of the second record
    assert parse(bytes(corrupt)).records == records[:1]


def test_an_orphan_is_claimed_by_one_spool_only_and_a_live_spool_keeps_its_files(
    tmp_path: Path,
) -> None:
    record = SpooledRecord("transactions", b"k", b"{}")
    gone = Spool(tmp_path, 1 << 20)
    assert gone.append(record) and gone.append(record)
    gone.close()  # its file is an orphan now
    alive = Spool(tmp_path, 1 << 20)
    assert alive.append(record)  # its current file is locked by a live spool
    first, second = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    claimed = first.claim_orphan()
    assert claimed is not None and claimed.path.name.startswith(gone.owner)
    assert len(Spool.read(claimed).records) == 2
    assert second.claim_orphan() is None  # held by `first`; `alive`'s file is held too
    first.release(claimed)
    assert second.claim_orphan() is None  # resent and deleted: nothing left to claim
    alive.close()
    orphan = second.claim_orphan()  # `alive` closed: its file is an orphan now
    assert orphan is not None and orphan.path.name.startswith(alive.owner)


# --- the audit trail against a broker ------------------------------------------------------


def test_close_flushes_what_is_still_queued(settings: Settings) -> None:
    # Batches linger for 5 s: close() must send them rather than lose them.
    lingering = settings.model_copy(update={"kafka_client_config": {"linger.ms": 5000}})
    trail = AuditTrail(lingering)
    record_payments(trail, range(300))
    assert trail.pending == 600
    trail.close()
    assert trail.stats.delivered == 600 and trail.stats.spooled == 0
    assert_each_payment_once_on_both_topics(settings, 300)


def test_sigterm_ends_a_service_process_with_its_records_delivered(settings: Settings) -> None:
    env = {
        **settings_env(settings),
        "KAFKA_CLIENT_CONFIG": '{"linger.ms": 5000}',
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.audit_process", "400"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert line.startswith("recorded 400,"), line + process.stderr.read().decode()
        process.terminate()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert_each_payment_once_on_both_topics(settings, 400)
    assert spool_files(settings) == []


def test_closing_with_the_broker_away_spools_and_the_next_process_resends(
    settings: Settings,
) -> None:
    stopped_while_kafka_was_away(settings, 250)
    restarted = AuditTrail(settings)  # same spool folder, Kafka back
    wait_until(lambda: restarted.stats.resent == 500, 30, "the spool was not resent")
    restarted.close()
    assert restarted.stats.spooled == 0
    assert spool_files(settings) == []
    assert_each_payment_once_on_both_topics(settings, 250)


def test_several_processes_sharing_a_spool_folder_never_resend_the_same_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 4096)  # many files to fight over
    stopped_while_kafka_was_away(settings, 300)
    assert len(spool_files(settings)) >= 20
    # Three live processes (flock treats each trail's files like another process's).
    trails = [AuditTrail(settings) for _ in range(3)]
    wait_until(lambda: sum(t.stats.resent for t in trails) >= 600, 60, "not all resent")
    for trail in trails:
        trail.close()
    assert sum(t.stats.resent for t in trails) == 600
    assert spool_files(settings) == []
    assert_each_payment_once_on_both_topics(settings, 300)


def test_a_full_spool_drops_counts_and_logs_loudly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    small = dead_end(settings).model_copy(update={"fraud_audit_spool_max_bytes": 4096})
    before = REGISTRY.get_sample_value(
        "fraud_audit_records_dropped_total", {"reason": "spool_full"}
    ) or 0.0
    trail = AuditTrail(small)
    with caplog.at_level(logging.ERROR, logger="streaming.fraud.audit"):
        record_payments(trail, range(50))
        trail.close(timeout=1.0)
    stats = trail.stats
    assert stats.recorded == 100 and stats.spooled + stats.dropped == 100
    assert 0 < stats.spooled < 20 and stats.dropped > 80
    assert sum(path.stat().st_size for path in spool_files(settings)) <= 4096
    after = REGISTRY.get_sample_value("fraud_audit_records_dropped_total", {"reason": "spool_full"})
    assert after == before + stats.dropped
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("DROPPED" in m and "spool_full" in m and "not in Kafka" in m for m in errors)
    # Never raises into the request, even for what cannot be written as JSON.
    unwritable = AuditTrail(settings)
    unwritable.record({**payment(1, NOW), "amount": object()}, answer(payment(1, NOW)))
    unwritable.close()
    assert unwritable.stats.dropped == 2


# --- the outage ----------------------------------------------------------------------------


class Traffic(threading.Thread):
    """Payments decided at `rate` a second by two request threads, each `record` timed."""

    def __init__(self, trail: AuditTrail, rate: float) -> None:
        super().__init__(daemon=True)
        self.trail, self.rate = trail, rate
        self.sent = 0
        self.timings: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        lock = threading.Lock()

        def worker() -> None:
            while not self._halt.is_set():
                with lock:
                    number = self.sent
                    self.sent += 1
                transaction = payment(number, NOW + timedelta(milliseconds=number))
                decided = answer(transaction, verdict(transaction["event_id"], None))
                started = time.perf_counter()
                self.trail.record(transaction, decided)
                self.timings.append(time.perf_counter() - started)
                ahead = began + (number + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    self._halt.wait(ahead)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def finish(self) -> int:
        self._halt.set()
        self.join()
        return self.sent


@pytest.mark.slow
def test_a_30_second_kafka_outage_under_traffic_loses_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    outage = float(os.environ.get("LAKEHOUSE_OUTAGE_SECONDS", "30"))
    with broker_behind_proxy(tmp_path / "broker.log") as proxy:
        settings = make_settings(
            kafka_bootstrap_servers=f"127.0.0.1:{proxy.listen_port}",
            fraud_audit_delivery_timeout_ms=3000,
        )
        ensure_topics(settings)
        trail = AuditTrail(settings)
        traffic = Traffic(trail, rate=100)
        traffic.start()
        time.sleep(5)
        proxy.cut()
        time.sleep(outage)
        spooled_during_outage = trail.stats.spooled
        proxy.restore()
        time.sleep(5)
        sent = traffic.finish()
        wait_until(lambda: trail.pending == 0 and trail.spooled_records == 0, 90,
                   "the spool did not drain after the outage")
        trail.close()
        stats = trail.stats

        IngestWorker(
            settings, IngestOptions(topics=list(TOPICS), until_idle=True, handle_signals=False)
        ).run()
    landed = {topic: bronze(settings, topic) for topic in TOPICS}
    silver = {}
    for topic, rows in landed.items():
        days = sorted(set(rows.column("event_date").to_pylist()))
        for day in days:
            build_silver_partition(settings, topic, day)
        rows = read_days(settings, CATALOG.silver_for_topic(topic), ["event_id"], days[0], days[-1])
        silver[topic] = Counter(rows.column("event_id").to_pylist())
    landed_ids = {topic: Counter(rows.column("event_id").to_pylist())
                  for topic, rows in landed.items()}

    expected = {f"p{n}" for n in range(sent)}
    timings = sorted(traffic.timings)
    figures = {
        "payments": sent,
        "records": 2 * sent,
        "outage_s": outage,
        "spooled_during_outage": spooled_during_outage,
        **{name: getattr(stats, name) for name in ("delivered", "spooled", "resent", "dropped")},
        "bronze_rows": {topic: sum(c.values()) for topic, c in landed_ids.items()},
        "bronze_duplicates": {topic: sum(c.values()) - len(c) for topic, c in landed_ids.items()},
        "silver_rows": {topic: sum(c.values()) for topic, c in silver.items()},
        "record_p99_ms": 1000 * timings[int(0.99 * (len(timings) - 1))],
        "record_max_ms": 1000 * timings[-1],
        "record_median_ms": 1000 * statistics.median(timings),
    }
    print(f"\noutage figures: {figures}")
    assert sent >= 3_000
    assert spooled_during_outage > 0, "the outage never reached the spool"
    assert stats.dropped == 0 and stats.delivered + stats.resent == 2 * sent
    for topic in TOPICS:
        assert set(landed_ids[topic]) == expected, f"{topic}: lost or unexpected in bronze"
        # Exactly once by transaction id where it counts: silver.
        assert silver[topic] == Counter(dict.fromkeys(expected, 1)), topic
    assert timings[-1] < 0.25, "record() blocked the request"
