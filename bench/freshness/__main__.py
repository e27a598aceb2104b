"""`python -m bench.freshness`: how fresh are the session features under live traffic?

A tansu broker and a private `redis-server` on free ports, the session processor
(`lakehouse stream session-features`) in its own process, and live e-commerce traffic at
`--rate` events/s (the generator stamps events with the wall clock) for `--seconds`.
Every `--probe-ms` a probe, a product view of a user of its own, goes into the same
clickstream topic among the traffic; the latency of a probe is from just before it is
produced to the moment a poller (a pipelined `HGET events` of the open probes every
5 ms) first sees its user's features in Redis. The first `--warmup` seconds are left
out (the group join). The result goes to bench/results/freshness-<UTC time>.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated

import orjson
import redis
import typer
from confluent_kafka import Producer
from rich.console import Console

from bench.envelope import envelope, summary, write
from bench.ingest.harness import running_broker
from bench.ingest.procstat import wait_for_quiet
from lakehouse.broker import ensure_topics
from lakehouse.catalog import CLICKSTREAM
from lakehouse.online.session_keys import features_key
from lakehouse.settings import Settings
from streaming.generators import make_generator
from streaming.producer import produce, producer_config
from tests.support.redis_server import RedisServer

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)

PROBE_USERS = 1_000_000_000
"""Probe user ids start here, far above the generated users."""


def probe_event(user: int) -> bytes:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return orjson.dumps(
        {
            "event_id": f"probe-{user}",
            "event_time": stamp,
            "user_id": user,
            "session_id": f"probe-{user}",
            "event_type": "product_view",
            "page": "product",
            "product_id": 1,
            "category": "books",
            "price": 1.0,
        }
    )


class Prober(threading.Thread):
    """Produces probes on a fixed schedule and records when each becomes visible."""

    def __init__(self, settings: Settings, client: redis.Redis, every: float, until: float):
        super().__init__(daemon=True)
        self.settings, self.client, self.every, self.until = settings, client, every, until
        self.sent: dict[int, float] = {}
        self.seen: dict[int, float] = {}

    def run(self) -> None:
        producer = Producer({**producer_config(self.settings), "linger.ms": 0})
        next_probe, number = time.monotonic(), 0
        while time.monotonic() < self.until + 10:
            now = time.monotonic()
            if now >= next_probe and now < self.until:
                user = PROBE_USERS + number
                number += 1
                self.sent[user] = time.monotonic()
                producer.produce(CLICKSTREAM.name, probe_event(user), key=str(user).encode())
                producer.poll(0)
                next_probe += self.every
            pending = [user for user in self.sent if user not in self.seen]
            if not pending and now >= self.until:
                break
            if pending:
                pipe = self.client.pipeline(transaction=False)
                for user in pending:
                    pipe.hget(features_key(user), "events")
                found = pipe.execute()
                at = time.monotonic()
                for user, value in zip(pending, found, strict=True):
                    if value is not None:
                        self.seen[user] = at
            time.sleep(0.005)
        producer.flush(10)


@app.command()
def main(
    rate: Annotated[float, typer.Option(help="Live events per second")] = 20_000.0,
    seconds: Annotated[float, typer.Option(help="Seconds of live traffic")] = 60.0,
    warmup: Annotated[float, typer.Option(help="Seconds left out at the start")] = 10.0,
    probe_ms: Annotated[float, typer.Option(help="Milliseconds between probes")] = 100.0,
    users: Annotated[int, typer.Option(help="Generated users")] = 200_000,
) -> None:
    """Measure produce-to-visible latency of session features at a live rate."""
    config = {
        "rate": rate,
        "seconds": seconds,
        "warmup": warmup,
        "probe_ms": probe_ms,
        "users": users,
    }
    document = envelope("freshness", config)
    workdir = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    document["quiet_load_cores"] = wait_for_quiet()
    server = RedisServer(workdir / "redis").start()
    log = workdir / "processor.log"
    with running_broker(workdir, "freshness") as broker:
        settings = Settings(
            lakehouse_home=workdir / "home",
            lakehouse_root=str(workdir / "lake"),
            kafka_bootstrap_servers=broker.bootstrap,
            redis_url=server.url,
            session_features_group_id=f"bench-{uuid.uuid4().hex[:8]}",
        )
        ensure_topics(settings)
        # The processor reads SESSION_FEATURES_* from the environment, as these settings do.
        document["config"]["batch_events"] = settings.session_features_batch_events
        document["config"]["batch_ms"] = settings.session_features_batch_ms
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "REDIS_URL": server.url,
            "SESSION_FEATURES_GROUP_ID": settings.session_features_group_id,
            "LAKEHOUSE_HOME": str(settings.lakehouse_home),
            "LAKEHOUSE_ROOT": settings.lakehouse_root,
        }
        with log.open("wb") as sink:
            processor = subprocess.Popen(
                [str(Path(sys.executable).parent / "lakehouse"), "stream", "session-features"],
                env=env,
                stdout=sink,
                stderr=sink,
            )
        try:
            generator = make_generator("ecommerce", live=True, n_users=users)
            started = time.monotonic()
            traffic = threading.Thread(
                target=produce,
                args=(settings, generator, int(rate * seconds)),
                kwargs={"rate": rate, "progress": False},
                daemon=True,
            )
            traffic.start()
            prober = Prober(settings, server.client(), probe_ms / 1000, started + seconds)
            prober.start()
            traffic.join()
            produced_seconds = time.monotonic() - started
            prober.join()
            cpu_seconds = _cpu_seconds(processor.pid)
        finally:
            processor.terminate()
            processor.wait(60)
    script = server.client().info("commandstats").get("cmdstat_evalsha", {})
    server.stop()
    counted = [u for u, at in prober.sent.items() if at - started >= warmup]
    latencies = [prober.seen[u] - prober.sent[u] for u in counted if u in prober.seen]
    lost = sum(u not in prober.seen for u in counted)
    stats = summary(latencies, (50, 90, 99))
    document.update(
        {
            "achieved_rate": rate * seconds / produced_seconds,
            "probes": len(counted),
            "probes_never_seen": lost,
            "latency_seconds": stats,
            "processor_cpu_cores": cpu_seconds / produced_seconds,
            "redis_script_calls": script.get("calls"),
            "redis_script_ms_per_call": script.get("usec_per_call", 0) / 1000,
            "processor_log_tail": log.read_text()[-2000:],
        }
    )
    path = write(document)
    console.print(
        f"[bold]freshness[/] at {document['achieved_rate']:,.0f} events/s: "
        f"{len(latencies)} probes, p50 {stats.get('p50', float('nan')) * 1000:.0f} ms, "
        f"p99 {stats.get('p99', float('nan')) * 1000:.0f} ms, "
        f"max {stats.get('max', float('nan')) * 1000:.0f} ms, {lost} never seen; "
        f"processor {document['processor_cpu_cores']:.2f} cores, Redis script "
        f"{document['redis_script_ms_per_call']:.1f} ms per batch; {path}"
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    app()
