"""The ingest process under test: one `IngestWorker`, instrumented, in its own process.

A separate process keeps the measurement honest (its CPU is its own, py-spy can attach to
it, and the benchmark's own threads do not share its GIL). The instrumentation only
records clocks around the worker's existing steps, so the code measured is the code that
runs in production. Usage: `python -m bench.ingest.child CONFIG.json RESULT.json`.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from lakehouse.settings import Settings
from streaming.ingest.worker import IngestOptions, IngestReport, IngestWorker
from streaming.ingest.writer import Batch, FlushOutcome, TopicWriter


def process_cpu() -> float:
    """User plus system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, keyed `tid:name` (librdkafka, Arrow, tokio...)."""
    threads: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        threads[f"{task.name}:{name}"] = (int(fields[11]) + int(fields[12])) / ticks
    return threads


@dataclass
class Flush:
    """One flush: from the start of its decode to the end of its commit, and what it wrote."""

    started: float
    messages: int = 0
    ended: float = 0.0
    rows: int = 0
    version: int | None = None


@dataclass
class Probe:
    """Everything the child records; written as JSON when the worker returns."""

    started: float = field(default_factory=time.time)
    assigned: float | None = None
    first_message: float | None = None
    last_commit: float | None = None
    finished: float | None = None
    cpu_at_first_message: float | None = None
    cpu_at_last_commit: float | None = None
    cpu_at_finish: float | None = None
    threads_at_first_message: dict[str, float] = field(default_factory=dict)
    threads_at_last_commit: dict[str, float] = field(default_factory=dict)
    main_steps: dict[str, float] = field(default_factory=dict)
    flushes: list[Flush] = field(default_factory=list)
    writer_steps: dict[str, float] = field(default_factory=dict)
    thread_roles: dict[int, str] = field(default_factory=dict)
    gc_pause_s: float = 0.0
    gc_collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    report: dict[str, Any] = field(default_factory=dict)
    max_rss_mib: float = 0.0
    ready_file: str | None = None
    main_tid: int = field(default_factory=threading.get_native_id)
    _gc_started: float = 0.0

    def add_main(self, step: str, seconds: float) -> None:
        self.main_steps[step] = self.main_steps.get(step, 0.0) + seconds

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks hook: total stop-the-world collection time, by generation count."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pause_s += time.perf_counter() - self._gc_started
            self.gc_collections[info["generation"]] += 1

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_gc_started")
        return data


def timed(steps: dict[str, float], step: str, function: Callable) -> Callable:
    """Wrap a callable so its wall time adds to `steps[step]`.

    Each step runs on one thread only (decode steps on the decoding thread, commits on
    the committing one), so the unlocked update never races with itself.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            steps[step] = steps.get(step, 0.0) + time.perf_counter() - started

    return wrapper


class InstrumentedWorker(IngestWorker):
    """IngestWorker with clocks around its steps; the behaviour is the parent class's."""

    def __init__(self, settings: Settings, options: IngestOptions, probe: Probe) -> None:
        super().__init__(settings, options)
        self.probe = probe
        for writer in self.writers.values():
            self._instrument(writer)

    def _instrument(self, writer: TopicWriter) -> None:
        """Time the writer's steps and mark each flush's start and end.

        A worker either calls `write(batch)` on one writer thread, or `prepare(batch)` and
        `commit(prepared)` on two (decode of the next batch overlapping the last commit);
        both shapes are instrumented. Flushes commit in order, so the oldest open flush is
        the one a commit ends.
        """
        steps = self.probe.writer_steps
        writer.decoder.decode = timed(steps, "decode", writer.decoder.decode)  # type: ignore[method-assign]
        writer._bronze_rows = timed(steps, "bronze_rows", writer._bronze_rows)  # type: ignore[method-assign]
        writer._quarantine_rows = timed(steps, "quarantine_rows", writer._quarantine_rows)  # type: ignore[method-assign]
        writer.quarantine.commit_above_watermark = timed(  # type: ignore[method-assign]
            steps, "quarantine_commit", writer.quarantine.commit_above_watermark
        )
        writer.data.commit_contiguous = timed(  # type: ignore[method-assign]
            steps, "bronze_commit", writer.data.commit_contiguous
        )
        if hasattr(writer, "prepare") and hasattr(writer, "commit"):
            prepare, commit = writer.prepare, writer.commit

            def timed_prepare(batch: Batch) -> Any:
                self._open_flush(batch, "decode")
                return prepare(batch)

            def timed_commit(prepared: Any) -> FlushOutcome:
                return self._close_flush(commit(prepared), "commit")

            writer.prepare = timed_prepare  # type: ignore[attr-defined]
            writer.commit = timed_commit  # type: ignore[attr-defined]
        else:
            write = writer.write

            def timed_write(batch: Batch) -> FlushOutcome:
                self._open_flush(batch, "write")
                return self._close_flush(write(batch), "write")

            writer.write = timed_write  # type: ignore[method-assign]

    def _open_flush(self, batch: Batch, role: str) -> None:
        self.probe.thread_roles[threading.get_native_id()] = role
        self.probe.flushes.append(Flush(started=time.time(), messages=len(batch.messages)))

    def _close_flush(self, outcome: FlushOutcome, role: str) -> FlushOutcome:
        self.probe.thread_roles[threading.get_native_id()] = role
        flush = next(f for f in self.probe.flushes if not f.ended)
        flush.ended = time.time()
        flush.rows = outcome.data.rows
        flush.version = outcome.data.version
        if outcome.data.committed:
            self.probe.last_commit = flush.ended
            self.probe.cpu_at_last_commit = process_cpu()
            self.probe.threads_at_last_commit = thread_cpu()
        return outcome

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        super()._on_assign(consumer, partitions)
        if self.probe.assigned is None:
            self.probe.assigned = time.time()
            if self.probe.ready_file:
                Path(self.probe.ready_file).write_text(str(self.probe.assigned))

    def _buffer(self, messages: list[Message], now: float) -> None:
        if self.probe.first_message is None:
            self.probe.first_message = time.time()
            self.probe.cpu_at_first_message = process_cpu()
            self.probe.threads_at_first_message = thread_cpu()
            self.probe.main_steps["thread_cpu_at_first_message"] = time.thread_time()
        started = time.perf_counter()
        super()._buffer(messages, now)
        self.probe.add_main("buffer", time.perf_counter() - started)

    def _submit(self, batch: Batch) -> None:
        started = time.perf_counter()
        super()._submit(batch)  # blocks while two flushes are queued: backpressure
        self.probe.add_main("submit_wait", time.perf_counter() - started)

    def _collect(self, block: bool) -> None:
        started = time.perf_counter()
        super()._collect(block)
        self.probe.add_main("collect", time.perf_counter() - started)

    def run(self) -> IngestReport:
        report = super().run()
        self.probe.main_steps["thread_cpu_at_finish"] = time.thread_time()
        return report


def main(config_path: str, result_path: str) -> None:
    """Run one worker as configured and write the probe's record to `result_path`."""
    config = json.loads(Path(config_path).read_text())
    settings = Settings(**config["settings"])
    options = IngestOptions(**config["options"])
    probe = Probe(ready_file=config.get("ready_file"))
    gc.callbacks.append(probe.on_gc)
    worker = InstrumentedWorker(settings, options, probe)
    report = worker.run()
    probe.finished = time.time()
    probe.cpu_at_finish = process_cpu()
    probe.report = asdict(report)
    probe.max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(result_path).write_text(json.dumps(probe.to_json(), indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:3])
