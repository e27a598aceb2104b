"""Run one or several ingest workers; several share the topics' partitions as one group.

Workers are separate processes started with the `spawn` method: delta-rs's tokio runtime
panics in a process forked after it was used, and a process per worker also sidesteps the
GIL on the decode path.

The parent watches every worker's process sentinel as well as its report pipe, so a
worker that dies without a word (the kernel's OOM killer, SIGKILL) is noticed at once.
Then the others are stopped cleanly (SIGTERM: they flush what they hold) and the parent
fails naming the dead worker, rather than hang waiting for a report that never comes.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from lakehouse.logs import JsonFormatter, configure_logging
from lakehouse.settings import Settings
from streaming.ingest.metrics import serve_metrics
from streaming.ingest.worker import IngestOptions, IngestReport, IngestWorker

log = logging.getLogger(__name__)

# How long the others get to flush and leave after one worker failed, before SIGKILL.
STOP_GRACE = 60.0


class WorkerFailedError(RuntimeError):
    """A worker process died or failed; the others were stopped."""


def run_ingest(settings: Settings, options: IngestOptions, workers: int = 1) -> IngestReport:
    """Run `workers` group members until each stops; return their combined report."""
    if workers <= 1:
        serve_metrics(settings.ingest_metrics_port)
        return IngestWorker(settings, options).run()
    context = multiprocessing.get_context("spawn")
    logging_setup = _logging_setup()
    processes: list[BaseProcess] = []
    pipes: dict[BaseProcess, Connection] = {}
    for index in range(workers):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker_main,
            args=(settings, options, index, sender, logging_setup),
            name=f"ingest-{index}",
        )
        process.start()
        sender.close()  # the child holds its own copy; EOF here means the child is gone
        processes.append(process)
        pipes[process] = receiver
    # The parent only forwards Ctrl-C/SIGTERM (as SIGTERM) so each worker flushes and stops.
    previous = {
        signum: signal.signal(signum, lambda *_: [p.terminate() for p in processes])
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return _supervise(processes, pipes)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for receiver in pipes.values():
            receiver.close()


def _supervise(processes: list[BaseProcess], pipes: dict[BaseProcess, Connection]) -> IngestReport:
    """Wait for every worker's report and exit; stop them all as soon as one fails."""
    total = IngestReport()
    running = list(processes)
    while running:
        ready = wait([p.sentinel for p in running], timeout=1.0)
        for process in [p for p in running if p.sentinel in ready]:
            process.join()
            running.remove(process)
            report = _report(pipes[process])
            if process.exitcode != 0 or report is None:
                _stop_all(running)
                raise WorkerFailedError(
                    f"ingest worker {process.name} (pid {process.pid}) {_fate(process)}; "
                    f"stopped the other workers ({', '.join(p.name for p in running) or 'none'})"
                )
            total.add(report)
    return total


def _report(receiver: Connection) -> IngestReport | None:
    """The report a worker sent before exiting, if it sent one."""
    try:
        return receiver.recv() if receiver.poll() else None
    except (EOFError, OSError):
        return None


def _fate(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _stop_all(processes: list[BaseProcess]) -> None:
    """SIGTERM (each worker flushes and leaves the group), then SIGKILL after a grace."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(STOP_GRACE)
        if process.is_alive():
            log.error("worker %s did not stop in %.0fs; killing it", process.name, STOP_GRACE)
            process.kill()
            process.join()


def _logging_setup() -> tuple[str, bool] | None:
    """The parent's log level and format, for the workers (a spawned process starts with
    logging unconfigured); None when the parent configured none."""
    root = logging.getLogger()
    if not root.handlers:
        return None
    json = any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers)
    return logging.getLevelName(root.level), json


def _worker_main(
    settings: Settings,
    options: IngestOptions,
    index: int,
    results: Connection,
    logging_setup: tuple[str, bool] | None,
) -> None:
    if logging_setup is not None:
        configure_logging(*logging_setup)
    port = settings.ingest_metrics_port
    serve_metrics(port + index if port else None)
    report = IngestWorker(settings, options).run()  # an error exits non-zero, unreported
    results.send(report)
    results.close()
