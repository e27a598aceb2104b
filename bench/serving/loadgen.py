"""An open-loop HTTP/1.1 load generator (wrk2's method), small enough to read in one go.

No open-loop generator (wrk2, vegeta, oha) installs on these machines and Debian's `wrk`
is closed-loop: a closed-loop client waits for each answer before sending the next, so
when the server stalls the client stops sending and the stall hides in a few slow
samples ("coordinated omission"). Here request i is scheduled at `start + i / rate`
whatever happened before, and its latency is timed from that INTENDED send time: a
request that waited for a free connection, or for the generator itself, counts that wait.

How it works: one asyncio (uvloop) event loop; a dispatcher wakes at each scheduled time
(and catches up on every request already due), each request takes a keep-alive
connection from a pool (64 by default), writes the bytes prepared once, and a minimal
parser reads the status line and `Content-Length` (chunked bodies are not supported:
they count as errors). A request not answered by `intended + timeout` is an error; its
connection is closed and replaced. libuv's timers tick in milliseconds, so the
schedule is kept by a pacer thread (nanosleep) that hands each due batch to the loop; the
lag between the intended and the actual send is recorded as the generator's own floor,
beside its CPU use (getrusage of its process, pacer thread included).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ERROR_TIMEOUT = -1  # status recorded for a request not answered in time
ERROR_CONNECTION = -2  # connection refused, reset or closed before a whole answer


def build_request(
    method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request, built once and sent many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection that answers one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(ERROR_CONNECTION)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).split(b"\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
                break
        else:
            if any(line.lower().startswith(b"transfer-encoding") for line in head[1:]):
                self.waiter.set_result(ERROR_CONNECTION)
                return
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        try:
            status = int(head[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            status = ERROR_CONNECTION
        self.waiter.set_result(status)

    async def request(self, payload: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class LoadResult:
    """Per-request figures of one run (times in seconds), and the generator's own cost."""

    rate: float
    duration: float
    intended: np.ndarray  # scheduled send time, from the run's start
    latency: np.ndarray  # answer time minus INTENDED send time
    send_lag: np.ndarray  # actual send minus intended (pacer lag + wait for a free connection)
    status: np.ndarray  # HTTP status, or ERROR_TIMEOUT / ERROR_CONNECTION
    wall: float  # first scheduled send to last answer
    cpu_seconds: float  # user + system CPU of the generator's process during the run
    payload_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    @property
    def ok(self) -> np.ndarray:
        return (self.status >= 200) & (self.status < 300)

    def summary(self) -> dict[str, Any]:
        """p50/p99/p99.9/max in ms over every request (errors at their timeout), errors,
        achieved rate and the generator's CPU, as one flat dictionary."""
        ms = self.latency * 1000.0
        ok = self.ok
        answered = ms[ok] if ok.any() else np.array([np.nan])
        return {
            "rate": self.rate,
            "requests": len(ms),
            "errors": int((~ok).sum()),
            "timeouts": int((self.status == ERROR_TIMEOUT).sum()),
            "achieved_rate": round(float(ok.sum()) / self.wall, 1) if self.wall else 0.0,
            "p50_ms": _pct(ms, 50),
            "p90_ms": _pct(ms, 90),
            "p99_ms": _pct(ms, 99),
            "p999_ms": _pct(ms, 99.9),
            "max_ms": round(float(ms.max()), 3) if len(ms) else None,
            "ok_p99_ms": _pct(answered, 99),
            "send_lag_p50_ms": _pct(self.send_lag * 1000.0, 50),
            "send_lag_p99_ms": _pct(self.send_lag * 1000.0, 99),
            "generator_cpu_s": round(self.cpu_seconds, 3),
            "generator_cpu_share": round(self.cpu_seconds / self.wall, 3) if self.wall else None,
            "generator_cpu_us_per_request": (
                round(self.cpu_seconds / len(ms) * 1e6, 1) if len(ms) else None
            ),
        }

    def worst_seconds(self, count: int = 5) -> list[dict[str, Any]]:
        """The `count` one-second windows (by intended send) with the slowest request: a
        stall (a pause, a reload, another process) shows as the second it started in."""
        second = self.intended.astype(np.int64)
        rows = []
        for s in np.unique(second):
            ms = self.latency[second == s] * 1000.0
            errors = int((~self.ok[second == s]).sum())
            rows.append(
                {"second": int(s), "max_ms": round(float(ms.max()), 3), "p99_ms": _pct(ms, 99),
                 "errors": errors}
            )  # fmt: skip
        return sorted(rows, key=lambda row: row["max_ms"], reverse=True)[:count]


def _pct(values: np.ndarray, q: float) -> float | None:
    if not len(values):
        return None
    return round(float(np.percentile(values, q)), 3)


async def run_load(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    rate: float,
    duration: float,
    connections: int = 64,
    timeout: float = 1.0,
) -> LoadResult:
    """Send `rate * duration` requests on a fixed schedule, cycling through `payloads`
    (whole requests from `build_request`), and time each from its intended send."""
    loop = asyncio.get_running_loop()
    count = max(1, int(rate * duration))
    interval = 1.0 / rate
    intended = np.arange(count, dtype=np.float64) * interval
    sent = np.full(count, np.nan)
    done = np.full(count, np.nan)
    status = np.zeros(count, dtype=np.int32)
    index = (np.arange(count) % len(payloads)).astype(np.int32)

    idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(None)  # opened on first use; None also replaces a broken one

    async def connect() -> _Connection:
        _, protocol = await loop.create_connection(_Connection, host, port)
        return protocol

    # Open the pool before the clock starts, so connection setup is not in the figures.
    opened = await asyncio.gather(*(connect() for _ in range(connections)), return_exceptions=True)
    while not idle.empty():
        idle.get_nowait()
    for conn in opened:
        idle.put_nowait(conn if isinstance(conn, _Connection) else None)

    clock = time.perf_counter  # loop.time() under uvloop only has millisecond resolution
    start = clock() + 0.01

    async def one(i: int) -> None:
        deadline = loop.time() + (start + intended[i] + timeout - clock())
        conn: _Connection | None = None
        taken = False
        try:
            async with asyncio.timeout_at(deadline):
                conn = await idle.get()
                taken = True
                if conn is None or conn.closed:
                    conn = await connect()
                sent[i] = clock() - start
                status[i] = await conn.request(payloads[index[i]])
        except TimeoutError:
            status[i] = ERROR_TIMEOUT
        except OSError:
            status[i] = ERROR_CONNECTION
        done[i] = clock() - start
        if conn is not None and status[i] < 0:
            conn.close()  # a late answer must not be read as the next request's
            conn = None
        if taken:  # a request that timed out waiting for a connection took none
            idle.put_nowait(conn)

    tasks: set[asyncio.Task[None]] = set()
    finished = loop.create_future()

    def launch(first: int, last: int) -> None:
        for i in range(first, last):
            task = loop.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if last == count:
            finished.set_result(None)

    def pace() -> None:
        # libuv's timers tick in milliseconds, so the schedule is kept by a thread that
        # sleeps with nanosleep and hands each due batch to the loop.
        i = 0
        while i < count:
            delay = start + intended[i] - clock()
            if delay > 0:
                time.sleep(delay)
            now = clock() - start
            last = i + 1
            while last < count and intended[last] <= now:
                last += 1
            loop.call_soon_threadsafe(launch, i, last)
            i = last

    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # the pacer must not wait 5 ms for the GIL
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    pacer = threading.Thread(target=pace, name="loadgen-pacer", daemon=True)
    pacer.start()
    try:
        await finished
        while tasks:
            await asyncio.gather(*list(tasks))
    finally:
        pacer.join()
        sys.setswitchinterval(switch)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    while not idle.empty():
        conn = idle.get_nowait()
        if conn is not None:
            conn.close()

    # A request that never got a connection has no send time: it waited all its timeout.
    sent = np.where(np.isnan(sent), done, sent)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return LoadResult(
        rate=rate,
        duration=duration,
        intended=intended,
        latency=done - intended,
        send_lag=sent - intended,
        status=status,
        wall=float(np.nanmax(done)),
        cpu_seconds=cpu,
        payload_index=index,
    )


def run(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    rate: float,
    duration: float,
    connections: int = 64,
    timeout: float = 1.0,
) -> LoadResult:
    """`run_load` on a fresh uvloop event loop (the plain asyncio loop if uvloop is absent)."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.Runner()
    with runner:
        return runner.run(run_load(host, port, payloads, rate, duration, connections, timeout))


def wait_for_port(host: str, port: int, seconds: float = 30.0) -> None:
    """Block until something accepts connections on host:port (a server starting)."""
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {seconds} s")
