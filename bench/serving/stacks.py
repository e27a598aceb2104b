"""The HTTP stack comparison: the same trivial ASGI app (bench/serving/trivial.py, an
orjson body) under each stack, one worker pinned to its own core, at the same open-loop
rate. Against this app the figures are the stack's and the generator's cost alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.serving import loadgen
from bench.serving.servers import free_port, server

BIN = Path(sys.executable).parent
APP = "bench.serving.trivial:app"


def stack_commands(port: int) -> dict[str, list[str]]:
    """One worker process each: the service runs one per core it is given."""
    host = ["--host", "127.0.0.1", "--port", str(port)]
    return {
        "uvicorn (uvloop, httptools)": [
            str(BIN / "uvicorn"), APP, *host, "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning",
        ],
        "granian (asgi, uvloop, 1 thread)": [
            str(BIN / "granian"), "--interface", "asgi", *host, "--workers", "1",
            "--runtime-threads", "1", "--runtime-mode", "st", "--loop", "uvloop",
            "--no-ws", "--log-level", "warning", APP,
        ],
    }  # fmt: skip


def measure_stacks(rate: float, duration: float, warmup: float = 2.0) -> list[dict[str, Any]]:
    rows = []
    port = free_port()
    for name, command in stack_commands(port).items():
        with server(name, command, port) as srv:
            request = loadgen.build_request("GET", "/", f"127.0.0.1:{port}")
            loadgen.run("127.0.0.1", port, [request], rate, warmup)
            before = srv.cpu_seconds()
            result = loadgen.run("127.0.0.1", port, [request], rate, duration)
            cpu = srv.cpu_seconds() - before
        row = {"stack": name, **result.summary()}
        row["server_cpu_share"] = round(cpu / result.wall, 3)
        row["server_cpu_us_per_request"] = round(cpu / result.summary()["requests"] * 1e6, 1)
        rows.append(row)
    return rows
