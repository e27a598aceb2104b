"""Run one or several ingest workers; several share the topics' partitions as one group.

Workers are separate processes started with the `spawn` method: delta-rs's tokio runtime
panics in a process forked after it was used, and a process per worker also sidesteps the
GIL on the decode path.
"""

from __future__ import annotations

import multiprocessing
import signal
from multiprocessing.queues import Queue

from lakehouse.settings import Settings
from streaming.ingest.metrics import serve_metrics
from streaming.ingest.worker import IngestOptions, IngestReport, IngestWorker


def run_ingest(settings: Settings, options: IngestOptions, workers: int = 1) -> IngestReport:
    """Run `workers` group members until each stops; return their combined report."""
    if workers <= 1:
        serve_metrics(settings.ingest_metrics_port)
        return IngestWorker(settings, options).run()
    context = multiprocessing.get_context("spawn")
    results: Queue[IngestReport] = context.Queue()
    processes = [
        context.Process(
            target=_worker_main,
            args=(settings, options, index, results),
            name=f"ingest-{index}",
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    # The parent only forwards Ctrl-C/SIGTERM (as SIGTERM) so each worker flushes and stops.
    previous = {
        signum: signal.signal(signum, lambda *_: [p.terminate() for p in processes])
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        total = IngestReport()
        for _ in processes:
            total.add(results.get())
        for process in processes:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"ingest workers failed: {', '.join(failed)}")
    return total


def _worker_main(
    settings: Settings, options: IngestOptions, index: int, results: Queue[IngestReport]
) -> None:
    port = settings.ingest_metrics_port
    serve_metrics(port + index if port else None)
    try:
        report = IngestWorker(settings, options).run()
    except BaseException:
        results.put(IngestReport())
        raise
    results.put(report)
