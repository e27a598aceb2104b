"""Sampling profile of the ingest process with py-spy, summarised by stage and thread.

py-spy attaches to the running child (`--nonblocking`, so it does not pause the process
it samples) and records raw collapsed stacks of the threads that are on CPU. Each sample
is put in the stage of its innermost frame that names one (the Kafka consume call, the
per-message buffering, the decoder's screening and parsing, building Arrow columns,
the Delta commit...). Native frames are not available here, so time inside Arrow,
librdkafka or delta-rs counts against the Python line that called it; the per-thread CPU
the child reads from /proc says how much of it ran on other threads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bench.ingest.harness import REPO, ChildProcess

# Innermost matching frame wins. Keys: function name, or function name@file stem.
STAGES: dict[str, str] = {
    "_buffer@worker": "buffer: per-message bookkeeping",
    "_on_consume_error@worker": "buffer: per-message bookkeeping",
    "_buffer_in_bulk@worker": "buffer: bookkeeping in bulk",
    "prepare@writer": "extract values/partitions/offsets",
    "<listcomp>@writer": "extract values/partitions/offsets",
    "<genexpr>@writer": "extract values/partitions/offsets",
    "_sizes@decode": "decode: screen (empty/oversize)",
    "_screen@decode": "decode: screen (empty/oversize)",
    "__init__@decode": "decode: join the batch",
    "safe@decode": "decode: line checks (one line, starts with {)",
    "unsafe@decode": "decode: line checks (one line, starts with {)",
    "invalid_utf8@decode": "decode: screen (utf-8, columnar)",
    "_msgspec_refusals@decode": "decode: screen each message (msgspec)",
    "_slow_path@decode": "decode: screen each message (msgspec)",
    "_parse_joined@decode": "decode: Arrow JSON parse",
    "_read@decode": "decode: Arrow JSON parse",
    "_parse_segment@decode": "decode: bisect a refused batch",
    "_parse_one@decode": "decode: judge suspects",
    "_drop_invalid@decode": "decode: required fields",
    "decode@decode": "decode: concat and order",
    "_bronze_rows@writer": "build Arrow rows",
    "_quarantine_rows@writer": "build Arrow rows",
    "update_incremental@table": "Delta: snapshot refresh",
    "transaction_version@table": "Delta: txn lookup",
    "write_deltalake@writer": "Delta: Parquet encode + commit",
    "_only_partitions@sink": "Delta: partition filter",
    "_above@sink": "Delta: partition filter",
    "_caught_up@worker": "idle and lag checks",
    "_check_watermarks@worker": "idle and lag checks",
    "_apply_outcome@worker": "consumer offset commit",
    "thread_cpu@child": "benchmark probe",
    "process_cpu@child": "benchmark probe",
}
LINE_STAGES = (
    (re.compile(r"\.consume\("), "Kafka consume (librdkafka, Message objects)"),
    (re.compile(r"\.poll\(|\.commit\("), "Kafka consume (librdkafka, Message objects)"),
)
FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^():]+):(?P<line>\d+)\)$")


@dataclass
class Profile:
    """Samples per (thread role, stage), and the sampling rate to turn them into seconds."""

    rate: int
    samples: Counter[tuple[str, str]] = field(default_factory=Counter)

    def by_thread(self) -> dict[str, dict[str, float]]:
        """Share of each thread's samples per stage, largest first."""
        totals: Counter[str] = Counter()
        for (thread, _), count in self.samples.items():
            totals[thread] += count
        shares: dict[str, dict[str, float]] = {}
        for (thread, stage), count in self.samples.most_common():
            shares.setdefault(thread, {})[stage] = count / totals[thread]
        return shares

    def seconds(self) -> dict[str, float]:
        """On-CPU seconds of Python stacks per thread role."""
        totals: Counter[str] = Counter()
        for (thread, _), count in self.samples.items():
            totals[thread] += count
        return {thread: count / self.rate for thread, count in totals.items()}


@dataclass
class Profiler:
    """py-spy attached to one child process for its whole life."""

    output: Path
    rate: int = 250
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None

    @staticmethod
    def available() -> str | None:
        """The py-spy executable beside this interpreter or on PATH, if installed."""
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def attach(self, child: ChildProcess) -> None:
        """Start sampling once the child has joined the group (imports are not profiled)."""
        child.wait_ready()
        self.pid = child.pid
        executable = self.available()
        if executable is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        command = [
            executable, "record", "--pid", str(child.pid), "--rate", str(self.rate),
            "--format", "raw", "--threads", "--nonblocking", "-o", str(self.output),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def wait(self) -> Profile:
        """Wait for py-spy to write its file (it stops when the child exits) and read it."""
        if self.process is not None:
            self.process.wait(timeout=60)
        return summarise(self.output, self.rate, self.pid)


def summarise(path: Path, rate: int, main_tid: int | None) -> Profile:
    """Read py-spy's raw collapsed stacks into samples per thread role and stage."""
    profile = Profile(rate)
    if not path.exists():
        return profile
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = _thread_role(frames[0], main_tid, len(frames) > 1)
        profile.samples[(thread, _stage(frames[1:]))] += int(count)
    return profile


def _thread_role(header: str, main_tid: int | None, has_frames: bool) -> str:
    """`thread (tid): name` -> the role of that thread in the worker."""
    if "MainThread" in header or (main_tid is not None and f"({main_tid})" in header):
        return "main (consume loop)"
    if "decoder" in header:
        return "decoder (decode, build rows)"
    if "delta-writer" in header:
        return "writer (decode, build, commit; commit only when pipelined)"
    if not has_frames:
        return "native threads (Arrow, delta-rs, librdkafka)"
    return "other Python threads"


def _stage(frames: list[str]) -> str:
    parsed = [FRAME.match(frame) for frame in frames]
    for match in reversed(parsed):
        if match is None:
            continue
        function, file = match["function"], match["file"]
        stem = Path(file).stem
        short = function.rsplit(".", 1)[-1]
        stage = STAGES.get(f"{short}@{stem}")
        if stage is not None:
            return stage
        source = _source_line(file, int(match["line"]))
        for pattern, line_stage in LINE_STAGES:
            if stem == "worker" and pattern.search(source):
                return line_stage
    leaf = next((m for m in reversed(parsed) if m is not None), None)
    return f"other: {leaf['function']}" if leaf else "other"


@lru_cache(maxsize=4096)
def _source_line(file: str, line: int) -> str:
    """The source text of a frame's line, for stages told apart by the call on that line."""
    for candidate in (Path(file), REPO / file):
        try:
            return candidate.read_text().splitlines()[line - 1]
        except (OSError, IndexError, ValueError):  # ValueError: a NUL in the name
            continue
    return ""
