"""Memory and CPU of a process tree, read from /proc (psutil is not a dependency).

A Spark run is two processes at least: the Python driver and the JVM it starts (through
py4j), which holds the executors in `local[N]`. Its footprint is the sum of the tree's
resident sets, sampled, not the Python process's own `ru_maxrss`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.ingest.procstat import machine_busy_seconds, process_cpu_seconds

PAGE_KIB = 4


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (children of every thread), depth first."""
    found = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # it exited between its parent's listing and now
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(descendants(int(child)))
    return found


def rss_mib(pid: int) -> float:
    """Resident set of one process in MiB (0 once it is gone)."""
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident * PAGE_KIB / 1024


@dataclass
class TreeSampler:
    """Samples the tree's summed RSS and CPU every `interval` seconds on a thread.

    CPU of processes that already exited is kept (the last value seen), so a short-lived
    helper's work is not lost; the machine's busy seconds give the load others added.
    """

    root: int
    interval: float = 0.1
    peak_rss_mib: float = 0.0
    processes_seen: int = 0
    _cpu: dict[int, float] = field(default_factory=dict)
    _machine: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._machine.append(machine_busy_seconds())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._machine.append(machine_busy_seconds())

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):  # a process vanished mid-sample: next one
                self.sample()
            time.sleep(self.interval)

    def sample(self) -> None:
        pids = descendants(self.root)
        self.peak_rss_mib = max(self.peak_rss_mib, sum(rss_mib(pid) for pid in pids))
        for pid in pids:
            cpu = process_cpu_seconds(pid)
            if cpu is not None:
                self._cpu[pid] = cpu
        self.processes_seen = max(self.processes_seen, len(self._cpu))

    @property
    def cpu_s(self) -> float:
        """CPU seconds of every process of the tree seen so far."""
        return sum(self._cpu.values())

    def other_cores(self, seconds: float, cores: int) -> float:
        """Cores others kept busy over the window (the machine's busy time less the tree's)."""
        (busy0, total0), (busy1, total1) = self._machine[0], self._machine[-1]
        if total1 <= total0 or seconds <= 0:
            return 0.0
        busy_cores = cores * (busy1 - busy0) / (total1 - total0)
        return max(busy_cores - self.cpu_s / seconds, 0.0)
