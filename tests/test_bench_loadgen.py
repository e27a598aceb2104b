"""The open-loop load generator (bench/serving/loadgen.py) against a tiny local server:
it keeps its schedule, times latency from the intended send (so a stall shows in the
requests queued behind it) and counts unanswered requests as errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from bench.serving import loadgen


@pytest.fixture
def server() -> Iterator[int]:
    """A keep-alive HTTP server on a free port: `/` answers at once, `/slow-first` holds
    only its first request for 200 ms, `/stall` never answers."""
    loop = asyncio.new_event_loop()
    seen = {"slow-first": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                if path == b"/stall":
                    await asyncio.sleep(3600)
                if path == b"/slow-first":
                    seen["slow-first"] += 1
                    if seen["slow-first"] == 1:
                        await asyncio.sleep(0.2)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    start = asyncio.start_server(handle, "127.0.0.1", 0)
    srv = asyncio.run_coroutine_threadsafe(start, loop).result(5)
    yield srv.sockets[0].getsockname()[1]

    async def shutdown() -> None:
        srv.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def request(path: str) -> bytes:
    return loadgen.build_request("GET", path, "127.0.0.1")


def test_keeps_the_schedule(server: int) -> None:
    result = loadgen.run("127.0.0.1", server, [request("/")], rate=400, duration=0.5)
    summary = result.summary()
    assert summary["requests"] == 200 and summary["errors"] == 0
    assert np.allclose(np.diff(result.intended), 1 / 400)
    # Sent on time (the pacer thread), not as fast as possible nor late.
    assert float(np.percentile(result.send_lag, 90)) < 0.01
    assert 0.45 < result.wall < 0.7
    assert summary["generator_cpu_s"] > 0


def test_latency_counts_from_the_intended_send(server: int) -> None:
    # One connection, the first answer held 200 ms: the requests scheduled behind it wait
    # for the connection, and that wait is their latency (a closed-loop client hides it).
    result = loadgen.run(
        "127.0.0.1", server, [request("/slow-first")], rate=100, duration=0.5, connections=1
    )
    assert (result.status == 200).all()
    assert result.latency[0] >= 0.19
    assert result.latency[1] >= 0.15  # scheduled at 10 ms, answered after 200 ms
    assert result.latency[-1] < 0.05  # the queue has drained by the end
    assert result.summary()["p90_ms"] > 50


def test_a_stalled_server_counts_errors(server: int) -> None:
    payloads = [request("/"), request("/stall")]
    result = loadgen.run("127.0.0.1", server, payloads, rate=100, duration=0.3, timeout=0.2)
    summary = result.summary()
    stalled = result.payload_index == 1
    assert (result.status[stalled] == loadgen.ERROR_TIMEOUT).all()
    assert summary["errors"] == summary["timeouts"] == int(stalled.sum()) == 15
    assert (result.latency[stalled] >= 0.19).all()
    assert (result.status[~stalled] == 200).all()
