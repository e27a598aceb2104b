"""The recommendation service under a realistic user mix, as `lakehouse serve
recommendations` runs it: one uvicorn worker pinned to its own core, a private Redis
holding session features, a real lake (a small shop in silver, a trained champion and
its published batch top 10: `tests/support/online.py`, as the service's tests build it).

The mix: 60% known users with a session in Redis (answered `realtime`), 30% known users
without one (`batch`), 10% users the lake has never seen (`popular`). Each class is
checked to get its source before anything is timed.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.serving import loadgen
from bench.serving.servers import Server, free_port, private_redis, server, wait_ready
from lakehouse.online.publication import open_store, publish_recommendations
from lakehouse.settings import Settings
from tests.conftest import settings_env
from tests.support.online import online_lake
from tests.support.session_features import SessionWriter

MIX = {"realtime": 0.6, "batch": 0.3, "popular": 0.1}
UNKNOWN_FROM = 10**9  # user ids the lake has never seen
P99_TARGET_MS = 5.0


@dataclass
class Population:
    realtime: list[int]  # known users with a session in Redis
    batch: list[int]  # known users without one
    popular: list[int]  # unknown users


def prepare_lake(workdir: Path) -> Settings:
    """The lake the service reads: silver, a champion, its published batch lists."""
    lake = online_lake(workdir / "lake")
    publish_recommendations(lake.settings, lake.day)
    return lake.settings


def write_sessions(settings: Settings, sessions: int, seed: int = 6) -> Population:
    """Split the published users into those with a session (written to Redis as the
    session processor writes it: a few product views each) and those without."""
    store = open_store(settings)
    try:
        users = [int(u) for u in store._users]  # type: ignore[attr-defined]
        products = [product for product, _ in store.popular(200)]
    finally:
        store.close()
    rng = np.random.default_rng(seed)
    rng.shuffle(users)
    with_session = users[: min(sessions, len(users) * 2 // 3)]
    writer = SessionWriter(settings)
    for user in with_session:
        writer.views(user, [int(p) for p in rng.choice(products, 5, replace=False)])
    unknown = list(range(UNKNOWN_FROM, UNKNOWN_FROM + 1000))
    return Population(with_session, users[len(with_session) :], unknown)


def payloads(population: Population, token: str, count: int = 8192, seed: int = 7) -> list[bytes]:
    """GET /v1/recommendations/{id} with the bearer token, users drawn by MIX."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(list(MIX), size=count, p=list(MIX.values()))
    headers = {"Authorization": f"Bearer {token}"}
    out = []
    for cls in classes:
        user = int(rng.choice(getattr(population, cls)))
        path = f"/v1/recommendations/{user}?k=10"
        out.append(loadgen.build_request("GET", path, "127.0.0.1", headers))
    return out


def check_sources(port: int, population: Population, token: str) -> dict[str, str]:
    """Each class answers from the source it should, before anything is timed."""
    seen = {}
    for cls in MIX:
        user = getattr(population, cls)[0]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/recommendations/{user}?k=10",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = orjson.loads(answer.read())
        seen[cls] = body["source"]
        if body["source"] != cls or len(body["products"]) != 10:
            raise RuntimeError(f"a {cls} user got {body}")
    return seen


def measure(
    srv: Server, redis: Server, requests: list[bytes], rate: float, duration: float
) -> dict[str, Any]:
    before, redis_before = srv.cpu_seconds(), redis.cpu_seconds()
    result = loadgen.run("127.0.0.1", srv.port, requests, rate, duration)
    cpu, redis_cpu = srv.cpu_seconds() - before, redis.cpu_seconds() - redis_before
    summary = result.summary()
    return {
        **summary,
        "worst_seconds": result.worst_seconds(),
        "service_cpu_share": round(cpu / result.wall, 3),
        "service_cpu_us_per_request": round(cpu / summary["requests"] * 1e6, 1),
        "redis_cpu_us_per_request": round(redis_cpu / summary["requests"] * 1e6, 1),
    }


def run_mix(
    rate: float,
    duration: float,
    step_rates: list[float],
    step_duration: float,
    sessions: int = 500,
    keep: bool = False,
) -> dict[str, Any]:
    """Build the lake, start Redis and the service, run the mix at `rate`, then step
    through `step_rates` until p99 reaches the target or requests fail."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    token = secrets.token_urlsafe(24)
    try:
        settings = prepare_lake(workdir)
        with private_redis() as redis:
            settings = settings.model_copy(
                update={"redis_url": f"redis://127.0.0.1:{redis.port}/0"}
            )
            population = write_sessions(settings, sessions)
            port = free_port()
            env = {**settings_env(settings), "REDIS_URL": settings.redis_url}
            env["LAKEHOUSE_API_TOKEN"] = token
            command = [str(Path(sys.executable).parent / "lakehouse"), "serve",
                       "recommendations", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
            with server("service", command, port, env=env, ready_seconds=120) as srv:
                wait_ready(port)
                sources = check_sources(port, population, token)
                requests = payloads(population, token)
                loadgen.run("127.0.0.1", port, requests, rate, 5.0)  # warm up
                main = measure(srv, redis, requests, rate, duration)
                steps = []
                for step in step_rates:
                    row = {"run": "step", **measure(srv, redis, requests, step, step_duration)}
                    steps.append(row)
                    if row["p99_ms"] >= P99_TARGET_MS or row["errors"]:
                        break
        passing = [s["rate"] for s in steps if s["p99_ms"] < P99_TARGET_MS and not s["errors"]]
        return {
            "population": {
                "with_session": len(population.realtime),
                "without_session": len(population.batch),
                "mix": MIX,
            },
            "sources_checked": sources,
            "main": main,
            "steps": steps,
            "highest_rate_p99_under_5ms": max(passing) if passing else None,
            "workdir": str(workdir) if keep else None,
        }
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
