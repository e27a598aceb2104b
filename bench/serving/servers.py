"""Processes the serving benchmark starts (HTTP servers, a private redis-server), each
pinned with `taskset` to a core the load generator does not use, and their CPU time.

The machine has 2 cores: the generator runs on core 0 (`os.sched_setaffinity`, the
same call `taskset` makes), the server under test on core 1. Redis, when there is one,
shares core 0 with the generator: it is the server's dependency, not the server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.ingest.procstat import process_cpu_seconds
from bench.serving.loadgen import wait_for_port

GENERATOR_CORE = 0
SERVER_CORE = 1 if (os.cpu_count() or 1) > 1 else 0
REDIS_CORE = GENERATOR_CORE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pin_generator() -> None:
    """Pin this process (the load generator) to its core."""
    os.sched_setaffinity(0, {GENERATOR_CORE})


def descendants(pid: int) -> list[int]:
    """pid and every process below it (granian and uvicorn workers are children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (live ones)."""
    return sum(process_cpu_seconds(p) or 0.0 for p in descendants(pid))


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)


@contextlib.contextmanager
def server(
    name: str,
    command: Sequence[str],
    port: int,
    core: int = SERVER_CORE,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ready_seconds: float = 60.0,
) -> Iterator[Server]:
    """Start `command` under `taskset -c core`, wait for its port, stop it (SIGTERM, then
    SIGKILL) at the end. Its output goes to a log file named in errors."""
    log = Path(tempfile.mkstemp(prefix=f"bench-serving-{name}-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["taskset", "-c", str(core), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    try:
        try:
            deadline = time.monotonic() + ready_seconds
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}); see {log}")
                try:
                    wait_for_port("127.0.0.1", port, 0.5)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
            yield Server(name, port, process, log)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
    except BaseException:
        print(log.read_text()[-3000:])
        raise


@contextlib.contextmanager
def private_redis(core: int = REDIS_CORE) -> Iterator[Server]:
    """A redis-server of our own on a free port (the machine's shared one is never used)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no"]
    with server("redis", command, port, core=core) as redis:
        yield redis


def wait_ready(port: int, seconds: float = 60.0) -> None:
    """Wait until a service on `port` answers `/readyz` with 200."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the service never became ready")
        time.sleep(0.1)
