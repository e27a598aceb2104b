"""Throughput: one ingest process drains a pre-produced topic; events/s, CPU and disk.

The topic is produced once and drained by each run into a fresh lake with a fresh
consumer group. The clock runs from the first message handed to the worker to the last
commit being visible, which excludes the consumer-group join (reported on its own) and
the idle check at the end. Every run is verified before its figure counts.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ingest.harness import ChildProcess, lake_settings, remove_lake, start_child
from bench.ingest.procstat import CpuSampler, wait_for_quiet
from bench.ingest.traffic import TOPIC, PoisonedClickstream
from bench.ingest.verify import LakeCheck, check_lake
from lakehouse.settings import Settings
from streaming.generators import make_generator
from streaming.ingest.worker import IngestOptions
from streaming.producer import produce


def self_cpu() -> float:
    """CPU seconds of this (the benchmark's) process: the generator and the producer."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class ProduceCost:
    """What producing the traffic cost: the load generator's own share of the machine."""

    events: int
    seconds: float
    producer_cpu_s: float
    broker_cpu_s: float
    poison: dict[str, int]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def produce_traffic(
    settings: Settings,
    n_events: int,
    broker_pid: int,
    *,
    rate: float | None = None,
    live: bool = False,
    seed: int = 42,
    poison_rate: float = 0.001,
    max_batch: int | None = None,
) -> ProduceCost:
    """Produce `n_events` clickstream messages (poison included) and measure the cost."""
    traffic = PoisonedClickstream(
        make_generator("ecommerce", seed=seed, live=live),
        poison_rate=poison_rate,
        max_batch=max_batch,
    )
    with CpuSampler({"broker": broker_pid}) as sampler:
        cpu, started = self_cpu(), time.time()
        report = produce(settings, traffic, n_events, rate=rate, progress=True)
        ended, cpu = time.time(), self_cpu() - cpu
    if report.total != n_events:
        raise RuntimeError(f"producer sent {report.total:,} of {n_events:,} events")
    return ProduceCost(
        events=n_events,
        seconds=ended - started,
        producer_cpu_s=cpu,
        broker_cpu_s=sampler.cpu_between("broker", started, ended) or 0.0,
        poison=dict(traffic.injected),
    )


@dataclass
class ThroughputRun:
    """One drain of the topic by one ingest process, with its verification."""

    index: int
    events: int
    join_s: float
    seconds: float
    events_per_s: float
    ingest_cpu_s: float
    broker_cpu_s: float
    bench_cpu_s: float
    machine_cores_busy: float
    other_cores_busy: float
    bytes_per_event: float
    commits: int
    files: int
    flushes: int
    gc_pause_s: float
    max_rss_mib: float
    check: LakeCheck
    probe: dict[str, Any] = field(repr=False)
    load_before: float = 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.ingest_cpu_s / self.events * 1e6


def throughput_run(
    workdir: Path,
    bootstrap: str,
    broker_pid: int,
    index: int,
    produced: ProduceCost,
    on_start: Callable[[ChildProcess], None] | None = None,
) -> ThroughputRun:
    """Drain the topic into a fresh lake with one worker; measure, verify, clean up.

    `on_start(child)` runs once the child process exists (the profiler attaches there).
    """
    name = f"throughput-{index}"
    settings = lake_settings(workdir, name, bootstrap)
    options = IngestOptions(topics=[TOPIC], until_idle=True)
    load_before = wait_for_quiet()
    with CpuSampler({"broker": broker_pid, "bench": os.getpid()}) as sampler:
        child = start_child(settings, options, workdir, name)
        sampler.watch("ingest", child.pid)
        if on_start is not None:
            on_start(child)
        probe = child.result()
    check = check_lake(settings, TOPIC, produced.events, produced.poison)
    remove_lake(settings)
    run = _summarise(index, probe, sampler, check)
    run.load_before = load_before
    return run


def _summarise(
    index: int, probe: dict[str, Any], sampler: CpuSampler, check: LakeCheck
) -> ThroughputRun:
    start, end = probe["first_message"], probe["last_commit"]
    if start is None or end is None:
        raise RuntimeError(f"run {index}: no message consumed or nothing committed")
    seconds = end - start
    events = probe["report"]["consumed"]
    ingest_cpu = probe["cpu_at_last_commit"] - probe["cpu_at_first_message"]
    broker_cpu = sampler.cpu_between("broker", start, end) or 0.0
    bench_cpu = sampler.cpu_between("bench", start, end) or 0.0
    busy = sampler.machine_cores_busy(start, end) or 0.0
    other = busy - (ingest_cpu + broker_cpu + bench_cpu) / seconds
    return ThroughputRun(
        index=index,
        events=events,
        join_s=probe["assigned"] - probe["started"],
        seconds=seconds,
        events_per_s=events / seconds,
        ingest_cpu_s=ingest_cpu,
        broker_cpu_s=broker_cpu,
        bench_cpu_s=bench_cpu,
        machine_cores_busy=busy,
        other_cores_busy=max(other, 0.0),
        bytes_per_event=check.bronze_bytes / max(check.bronze_rows, 1),
        commits=check.bronze_commits,
        files=check.bronze_files,
        flushes=len(probe["flushes"]),
        gc_pause_s=probe["gc_pause_s"],
        max_rss_mib=probe["max_rss_mib"],
        check=check,
        probe=probe,
    )
