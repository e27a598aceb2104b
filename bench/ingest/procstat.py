"""CPU time of processes and of the whole machine, read from /proc.

psutil is not a dependency; /proc gives the same numbers. The load generator and the
broker share the machine's cores with the ingest process, so their CPU is measured too:
a figure that hides its load generator's cost is not comparable to anything.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a process (all its threads); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it are space-separated.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds summed over all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class Sample:
    """CPU seconds of each watched process and of the machine at one wall-clock moment."""

    at: float
    cpu: dict[str, float | None]
    machine_busy: float
    machine_total: float


@dataclass
class CpuSampler:
    """Samples the CPU time of named processes every `interval` seconds on a thread.

    Used for processes the benchmark does not own the rusage of (the broker) and to
    attribute CPU to a time window known only afterwards (first message to last commit).
    """

    pids: dict[str, int]
    interval: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def watch(self, name: str, pid: int) -> None:
        """Start sampling another process (one started after the sampler)."""
        self.pids = {**self.pids, name: pid}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        busy, total = machine_busy_seconds()
        cpu = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self.samples.append(Sample(time.time(), cpu, busy, total))

    def cpu_between(self, name: str, start: float, end: float) -> float | None:
        """CPU seconds a process used between two wall-clock times (interpolated)."""
        points = [(s.at, s.cpu.get(name)) for s in self.samples if s.cpu.get(name) is not None]
        if len(points) < 2:
            return None
        return _interpolate(points, end) - _interpolate(points, start)  # type: ignore[arg-type]

    def machine_cores_busy(self, start: float, end: float) -> float | None:
        """Average number of busy cores over a window (2.0 = both cores fully used)."""
        busy = [(s.at, s.machine_busy) for s in self.samples]
        total = [(s.at, s.machine_total) for s in self.samples]
        if len(busy) < 2 or end <= start:
            return None
        used = _interpolate(busy, end) - _interpolate(busy, start)
        elapsed_all_cores = _interpolate(total, end) - _interpolate(total, start)
        cores = os.cpu_count() or 1
        return cores * used / elapsed_all_cores if elapsed_all_cores > 0 else None


def _interpolate(points: list[tuple[float, float]], at: float) -> float:
    """Linear interpolation of a monotone counter sampled at times `points[i][0]`."""
    if at <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in pairwise(points):
        if t0 <= at <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (at - t0) / (t1 - t0)
    return points[-1][1]


def wait_for_quiet(max_cores: float = 0.3, window: float = 1.0, timeout: float = 120.0) -> float:
    """Wait until the machine is nearly idle for `window` seconds; return the last load.

    The machines are shared: another session's tests running during a measurement would
    halve the figure. Waiting costs nothing when the machine is quiet; after `timeout`
    the run goes ahead and the load it ran under is recorded beside its figure.
    """
    deadline = time.monotonic() + timeout
    cores = os.cpu_count() or 1
    while True:
        busy0, total0 = machine_busy_seconds()
        time.sleep(window)
        busy1, total1 = machine_busy_seconds()
        load = cores * (busy1 - busy0) / max(total1 - total0, 1e-9)
        if load <= max_cores or time.monotonic() >= deadline:
            return load
