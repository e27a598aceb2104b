"""Freshness: produce-to-visible latency at a steady rate with a 10 s flush.

Live-stamped events are produced at a steady rate while one worker ingests them. A
watcher notes the wall-clock moment each Delta version's commit file appears in
`_delta_log` (checked every 50 ms: that is when a reader can first see it). Each row's
latency is its version's visible time minus its `event_time`, which the generator
stamps when it builds the event, slightly before the producer sends it: the figure errs
on the slow side.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow.parquet as pq

from bench.envelope import summary
from bench.ingest.harness import create_topics, lake_settings, running_broker, start_child
from bench.ingest.procstat import CpuSampler, wait_for_quiet
from bench.ingest.throughput import ProduceCost, produce_traffic
from bench.ingest.traffic import TOPIC
from bench.ingest.verify import LakeCheck, check_lake
from lakehouse.catalog import CATALOG, table_uri
from lakehouse.settings import Settings
from streaming.ingest.worker import IngestOptions

LIVE_BATCH = 2_000
"""Events generated (and stamped) at once in live mode: at 20K/s a stamp is <= 0.1 s early."""


@dataclass
class Version:
    """One commit of the bronze table as the watcher saw it appear."""

    number: int
    visible_at: float
    rows: int
    files: list[str]


@dataclass
class VersionWatcher:
    """Polls a Delta log for the next commit file and records when each one appears."""

    log_dir: Path
    interval: float = 0.05
    versions: list[Version] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> VersionWatcher:
        self._thread = threading.Thread(target=self._loop, name="version-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def rows(self) -> int:
        return sum(version.rows for version in self.versions)

    def _loop(self) -> None:
        number = 0
        while not self._stop.is_set():
            path = self.log_dir / f"{number:020d}.json"
            if not path.exists():
                self._stop.wait(self.interval)
                continue
            seen = time.time()
            rows, files = _added(path)
            self.versions.append(Version(number, seen, rows, files))
            number += 1


def _added(commit: Path) -> tuple[int, list[str]]:
    """Rows and file paths a commit adds, from its `add` actions and their statistics."""
    rows, files = 0, []
    for line in commit.read_text().splitlines():
        action = json.loads(line)
        add = action.get("add")
        if add is None:
            continue
        files.append(unquote(add["path"]))
        rows += json.loads(add.get("stats") or "{}").get("numRecords", 0)
    return rows, files


@dataclass
class LatencyResult:
    """Latency percentiles and what the steady ingest cost."""

    rate: float
    seconds: float
    flush_seconds: float
    produced: ProduceCost
    latency_s: dict[str, float]
    steady_latency_s: dict[str, float]  # without the first commit (consumer warming up)
    commits: int
    files: int
    commits_per_minute: float
    files_per_minute: float
    rows_per_commit: float
    ingest_cpu_s: float
    ingest_cores: float
    broker_cores: float
    bench_cores: float
    other_cores_busy: float
    cpu_us_per_event: float
    check: LakeCheck
    per_commit: list[dict[str, float]] = field(default_factory=list)
    flush_seconds_measured: list[float] = field(default_factory=list)


def latency_run(
    workdir: Path,
    seconds: float,
    rate: float,
    *,
    flush_seconds: float = 10.0,
    poison_rate: float = 0.001,
) -> LatencyResult:
    """Ingest live traffic produced at `rate` for `seconds`; measure produce-to-visible."""
    with running_broker(workdir, "latency") as broker:
        assert broker.process is not None
        settings = lake_settings(
            workdir, "latency", broker.bootstrap, ingest_flush_seconds=flush_seconds
        )
        create_topics(settings)
        log_dir = Path(table_uri(CATALOG.bronze_for_topic(TOPIC), settings)) / "_delta_log"
        wait_for_quiet()
        watcher = VersionWatcher(log_dir).start()
        child = start_child(settings, IngestOptions(topics=[TOPIC]), workdir, "latency")
        try:
            pids = {"broker": broker.process.pid, "ingest": child.pid, "bench": os.getpid()}
            with CpuSampler(pids) as sampler:
                child.wait_ready()
                started = time.time()
                produced = produce_traffic(
                    settings,
                    int(rate * seconds),
                    broker.process.pid,
                    rate=rate,
                    live=True,
                    poison_rate=poison_rate,
                    max_batch=LIVE_BATCH,
                )
                valid = produced.events - sum(produced.poison.values())
                _wait_for_rows(watcher, valid, timeout=flush_seconds * 3 + 30)
                window = (started, time.time())
            child.stop()
            probe = child.result()
        finally:
            child.stop()
            watcher.stop()
        check = check_lake(settings, TOPIC, produced.events, produced.poison)
        latencies, per_commit = _latencies(settings, watcher.versions)
    elapsed = window[1] - window[0]
    ingest_cpu = sampler.cpu_between("ingest", *window) or 0.0
    broker_cpu = sampler.cpu_between("broker", *window) or 0.0
    bench_cpu = sampler.cpu_between("bench", *window) or 0.0
    busy = sampler.machine_cores_busy(*window) or 0.0
    data_versions = [v for v in watcher.versions if v.rows]
    minutes = elapsed / 60
    return LatencyResult(
        rate=rate,
        seconds=seconds,
        flush_seconds=flush_seconds,
        produced=produced,
        latency_s=_latency_summary(np.concatenate(latencies) if latencies else np.empty(0)),
        steady_latency_s=_latency_summary(
            np.concatenate(latencies[1:]) if len(latencies) > 1 else np.empty(0)
        ),
        commits=len(data_versions),
        files=sum(len(v.files) for v in data_versions),
        commits_per_minute=len(data_versions) / minutes,
        files_per_minute=sum(len(v.files) for v in data_versions) / minutes,
        rows_per_commit=watcher.rows / max(len(data_versions), 1),
        ingest_cpu_s=ingest_cpu,
        ingest_cores=ingest_cpu / elapsed,
        broker_cores=broker_cpu / elapsed,
        bench_cores=bench_cpu / elapsed,
        other_cores_busy=max(busy - (ingest_cpu + broker_cpu + bench_cpu) / elapsed, 0.0),
        cpu_us_per_event=ingest_cpu / max(produced.events, 1) * 1e6,
        check=check,
        per_commit=per_commit,
        flush_seconds_measured=[f["ended"] - f["started"] for f in probe["flushes"]],
    )


def _wait_for_rows(watcher: VersionWatcher, rows: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while watcher.rows < rows:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {watcher.rows:,} of {rows:,} rows visible after {timeout}s")
        time.sleep(0.1)


def _latencies(
    settings: Settings, versions: list[Version]
) -> tuple[list[np.ndarray], list[dict[str, float]]]:
    """Visible time minus event time, in seconds, per data commit, for every row.

    Also one summary per commit (rows, newest and oldest row's latency), which shows the
    two parts of the figure: the flush interval (oldest - newest) and the write time.
    """
    root = Path(table_uri(CATALOG.bronze_for_topic(TOPIC), settings))
    parts, commits = [], []
    for version in versions:
        if not version.files:
            continue
        times = [
            pq.read_table(root / file, columns=["event_time"]).column("event_time")
            for file in version.files
        ]
        micros = np.concatenate([t.cast("int64").to_numpy() for t in times])
        latency = version.visible_at - micros / 1e6
        parts.append(latency)
        commits.append(
            {
                "version": version.number,
                "rows": len(latency),
                "newest_s": float(latency.min()),
                "oldest_s": float(latency.max()),
            }
        )
    return parts, commits


def _latency_summary(values: np.ndarray) -> dict[str, float]:
    return summary(values, percentiles=(50, 90, 99, 99.9))
