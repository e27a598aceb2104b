"""Crashes, rebalances, zombies and outages: nothing is lost, nothing is duplicated.

These tests drive the real `lakehouse ingest` console script in subprocesses against the
embedded broker, while traffic flows.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from lakehouse.broker import ensure_topics
from lakehouse.settings import Settings
from tests.conftest import lakehouse_command, settings_env
from tests.support.net import free_port
from tests.support.proxy import CuttableProxy, broker_behind_proxy
from tests.support.traffic import (
    SteadyTraffic,
    assert_exactly_once,
    click_event,
    produce,
    stop,
    wait_for_rows,
)

KILL_ROUNDS = int(os.environ.get("LAKEHOUSE_KILL_ROUNDS", "20"))


_SPAWNED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _kill_leftover_processes() -> Iterator[None]:
    """A failing test must not leave ingest processes running behind it."""
    yield
    while _SPAWNED:
        process = _SPAWNED.pop()
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()


def start_ingest(settings: Settings, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`lakehouse ingest` for the clickstream topic, logging JSON lines to `log`."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            lakehouse_command("ingest", "--topics", "clickstream", *extra),
            env=settings_env(settings),
            stdout=sink,
            stderr=sink,
        )
    _SPAWNED.append(process)
    return process


def drain(settings: Settings, log: Path) -> None:
    """Run ingest until every partition is landed; it must exit cleanly."""
    process = start_ingest(settings, log, "--until-idle")
    assert process.wait(timeout=180) == 0, log.read_text()[-3000:]


def log_messages(log: Path) -> list[str]:
    messages = []
    for line in log.read_bytes().splitlines():
        if line.startswith(b"{"):
            messages.append(orjson.loads(line)["msg"])
    return messages


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    # Short sessions so that each restart's group join does not wait long for the corpse.
    settings = settings.model_copy(
        update={"kafka_session_timeout_ms": 3000, "kafka_heartbeat_interval_ms": 300}
    )
    rng = random.Random(20261124)
    log = tmp_path / "ingest.log"
    traffic = SteadyTraffic(settings, rate=4_000)
    traffic.start()
    for round_number in range(KILL_ROUNDS):
        assignments = _count_log(log, "assigned clickstream")
        process = start_ingest(settings, log)
        # Most kills land while the process consumes and flushes; every fifth one during
        # start-up or the group join.
        if round_number % 5:
            _wait_for_log(log, "assigned clickstream", timeout=60, after=assignments)
        time.sleep(rng.uniform(0.0, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    traffic.finish()
    drain(settings, log)
    assert_exactly_once(settings, "clickstream", traffic.expected_ids())
    # The kills really interrupted work in progress: flushes landed between them.
    assert _count_log(log, "flushed") >= KILL_ROUNDS // 2


@pytest.mark.slow
def test_two_processes_share_partitions_and_a_paused_zombie_commits_nothing_twice(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"ingest_flush_seconds": 2.0})
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    traffic = SteadyTraffic(settings, rate=5_000)
    traffic.start()
    first = start_ingest(settings, logs[0])
    wait_for_rows(settings, "clickstream", 10_000, timeout=60)
    second = start_ingest(settings, logs[1])
    _wait_for_log(logs[1], "assigned clickstream", timeout=60)
    # Pause the first process mid-run: its session expires, the second takes everything,
    # then the zombie wakes up with a buffer (and maybe a flush) of stale offsets.
    time.sleep(1.5)
    first.send_signal(signal.SIGSTOP)
    time.sleep(settings.kafka_session_timeout_ms / 1000 + 6)
    first.send_signal(signal.SIGCONT)
    time.sleep(8)
    traffic.finish()
    # One at a time: the embedded broker wedges a group whose members all leave at once.
    assignments = _count_log(logs[1], "assigned clickstream")
    assert stop(first) == 0
    _wait_for_log(logs[1], "assigned clickstream", timeout=60, after=assignments)
    assert stop(second) == 0
    drain(settings, tmp_path / "drain.log")
    assert_exactly_once(settings, "clickstream", traffic.expected_ids())
    # Both really worked, and the zombie noticed it had lost its partitions.
    assert any(m.startswith("flushed") for m in log_messages(logs[0]))
    assert any(m.startswith("flushed") for m in log_messages(logs[1]))
    zombie = log_messages(logs[0])
    assert any(m.startswith(("lost", "partition fenced", "revoked")) for m in zombie)


@pytest.mark.slow
def test_a_30_second_broker_outage_heals_by_itself(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    outage = float(os.environ.get("LAKEHOUSE_OUTAGE_SECONDS", "30"))
    with broker_behind_proxy(tmp_path / "broker.log") as proxy:
        settings = make_settings(kafka_bootstrap_servers=f"127.0.0.1:{proxy.listen_port}")
        ensure_topics(settings)
        log = tmp_path / "ingest.log"
        produce(settings, "clickstream", map(click_event, range(20_000)))
        ingest = start_ingest(settings, log)
        wait_for_rows(settings, "clickstream", 20_000, timeout=60)

        proxy.cut()
        traffic = SteadyTraffic(settings, total=20_000, rate=2_000, start=20_000)
        traffic.start()
        time.sleep(outage)
        assert ingest.poll() is None, "ingest died during the outage"
        proxy.restore()

        assert traffic.complete() == 20_000
        wait_for_rows(settings, "clickstream", 40_000, timeout=120)
        assert stop(ingest) == 0
        assert_exactly_once(settings, "clickstream", {f"c{i}" for i in range(40_000)})


def _wait_for_log(log: Path, prefix: str, timeout: float, after: int = 0) -> None:
    """Wait until more than `after` log lines start with `prefix`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _count_log(log, prefix) > after:
            return
        time.sleep(0.1)
    raise TimeoutError(f"no log line starting {prefix!r} in {log}")


def _count_log(log: Path, prefix: str) -> int:
    return sum(m.startswith(prefix) for m in log_messages(log)) if log.exists() else 0


@pytest.mark.slow
def test_an_s3_outage_is_retried_until_the_commit_lands(
    settings: Settings, moto_server: str, s3_bucket: str, tmp_path: Path
) -> None:
    moto_port = int(moto_server.rsplit(":", 1)[1])
    proxy = CuttableProxy(free_port(), moto_port).start()
    try:
        settings = settings.model_copy(
            update={
                "lakehouse_root": f"s3://{s3_bucket}/lake",
                "aws_endpoint_url": f"http://127.0.0.1:{proxy.listen_port}",
                "aws_access_key_id": SecretStr("testing"),
                "aws_secret_access_key": SecretStr("testing"),
                "aws_allow_http": True,
            }
        )
        log = tmp_path / "ingest.log"
        produce(settings, "clickstream", map(click_event, range(10_000)))
        ingest = start_ingest(settings, log)
        wait_for_rows(settings, "clickstream", 10_000, timeout=90)

        proxy.cut()
        produce(settings, "clickstream", map(click_event, range(10_000, 20_000)))
        # The outage lasts until the sidecar has seen a commit fail (at least 10 s): the S3
        # client retries inside delta-rs first, for a time that varies with the load.
        deadline = time.monotonic() + 120
        time.sleep(10)
        while not any("failed" in m for m in log_messages(log)):
            assert time.monotonic() < deadline, "the outage was never noticed"
            time.sleep(1)
        assert ingest.poll() is None, "ingest died during the S3 outage"
        proxy.restore()

        wait_for_rows(settings, "clickstream", 20_000, timeout=180)
        assert stop(ingest) == 0
        assert_exactly_once(settings, "clickstream", {f"c{i}" for i in range(20_000)})
    finally:
        proxy.cut()
