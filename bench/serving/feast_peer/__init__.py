"""Feast 0.67's HTTP feature server over Redis, measured beside our service's feature fetch."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.serving import loadgen
from bench.serving.servers import free_port, private_redis, server

HERE = Path(__file__).resolve().parent
VENV = HERE.parent.parent / ".feast-venv"
FEATURES = [
    f"user_session:{name}"
    for name in ("events", "last_seen", "price_min", "price_max", "session_count")
]


def ensure_venv() -> Path:
    """bench/.feast-venv, made by setup.sh if it is missing (a pip install: minutes)."""
    if not (VENV / "bin" / "feast").exists():
        subprocess.run([str(HERE / "setup.sh")], check=True)
    return VENV


def payloads(users: int, count: int = 4096, seed: int = 11) -> list[bytes]:
    """POST /get-online-features for one user each, users drawn uniformly."""
    rng = np.random.default_rng(seed)
    out = []
    for user_id in rng.integers(1, users + 1, count):
        body = orjson.dumps({"features": FEATURES, "entities": {"user_id": [int(user_id)]}})
        out.append(
            loadgen.build_request(
                "POST",
                "/get-online-features",
                "127.0.0.1",
                {"Content-Type": "application/json"},
                body,
            )
        )
    return out


def measure_feast(
    rates: list[float], duration: float, users: int = 10_000, warmup: float = 3.0
) -> list[dict[str, Any]]:
    """Feast's feature server (one worker, pinned to the server core; worker recycling
    off, registry cached) over a private Redis, at each open-loop rate in turn."""
    venv = ensure_venv()
    rows = []
    with private_redis() as redis, tempfile.TemporaryDirectory(prefix="bench-feast-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(
            [str(venv / "bin" / "python"), str(HERE / "prepare.py"), str(repo), str(redis.port),
             str(users)],
            check=True,
        )  # fmt: skip
        port = free_port()
        command = [
            str(venv / "bin" / "feast"), "-c", str(repo), "serve", "--host", "127.0.0.1",
            "-p", str(port), "--no-access-log", "--workers", "1",
            "--max-requests", "100000000", "--registry_ttl_sec", "3600",
        ]  # fmt: skip
        with server("feast", command, port, ready_seconds=120) as srv:
            requests = payloads(users)
            loadgen.run("127.0.0.1", port, requests, 200, warmup)
            for rate in rates:
                before = srv.cpu_seconds()
                redis_before = redis.cpu_seconds()
                result = loadgen.run("127.0.0.1", port, requests, rate, duration)
                cpu = srv.cpu_seconds() - before
                redis_cpu = redis.cpu_seconds() - redis_before
                summary = result.summary()
                rows.append(
                    {
                        "server": "feast 0.67 serve (1 worker) + redis",
                        **summary,
                        "server_cpu_share": round(cpu / result.wall, 3),
                        "server_cpu_us_per_request": round(cpu / summary["requests"] * 1e6, 1),
                        "redis_cpu_us_per_request": round(redis_cpu / summary["requests"] * 1e6, 1),
                    }
                )
    return rows
