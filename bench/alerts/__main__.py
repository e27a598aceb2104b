"""`python -m bench.alerts`: how fast and how right are the IoT alerts?

Quality: the detector (the processor's own code, without Kafka: the tests prove the two
give the same records) over `--quality-days` simulated days of the IoT generator per
seed, `--machines` machines reporting every 10 s, drift, spikes and failures at boosted
rates, scored against the generator's labels (tests/support/alert_truth.py: precision,
spike, drift and precursor recall), plus a day of noise and load cycle only, where every
alert is a false alarm.

Latency: a tansu broker, a private `redis-server` and a local webhook receiver on free
ports, the processor (`lakehouse stream iot-alerts`) in its own process, live generator
traffic at `--rate` readings/s, and `--probes` probe sensors among it. Each probe sensor
reports a normal reading every `--probe-ms` (its event time advancing 10 s a reading, so
its baseline warms in a second of wall time) and every 40th reading is a spike. A
spike's latency runs from just before it is produced to the moment a consumer of
`iot_alerts` receives the alert it opened (and, apart, to the webhook's receipt). The
first `--warmup` seconds are left out (group join). Results go to
bench/results/alerts-<UTC time>.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer
from confluent_kafka import Consumer, Producer
from rich.console import Console

from bench.envelope import envelope, summary, write
from bench.ingest.harness import running_broker
from bench.ingest.procstat import wait_for_quiet
from lakehouse.broker import ensure_topics
from lakehouse.catalog import IOT_ALERTS, SENSOR_READINGS
from lakehouse.settings import Settings
from streaming.alerts.detector import DetectorConfig, iso
from streaming.generators import make_generator
from streaming.producer import produce
from tests.support.alert_truth import decode, detect, score
from tests.support.redis_server import RedisServer
from tests.support.webhook import WebhookReceiver

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)

SPIKE_EVERY = 40
PROBE_STEP_US = 10_000_000


def quality(machines: int, days: int, seeds: list[int], config: DetectorConfig
            ) -> dict[str, Any]:
    """Scores per seed over generated days, and false alarms on a noise-only day."""
    readings = machines * 4 * 8_640 * days
    runs = []
    for seed in seeds:
        generator = make_generator(
            "iot", seed=seed, start=datetime(2026, 11, 1, tzinfo=UTC), n_machines=machines,
            span=timedelta(days=days), drift_rate=0.15, failure_rate=0.08, spike_rate=0.001,
        )
        table = decode(batch.values for batch in generator.batches(readings, 20_000))
        began = time.perf_counter()
        records = detect(table, config, batch=5_000)
        seconds = time.perf_counter() - began
        result = score(table, records, config.quiet_seconds).as_dict()
        runs.append({"seed": seed, **result, "readings": table.num_rows,
                     "detect_readings_per_second": table.num_rows / seconds})
        console.print(f"quality seed {seed}: {result}")
    noise = make_generator(
        "iot", seed=99, start=datetime(2026, 11, 1, tzinfo=UTC), n_machines=machines,
        span=timedelta(days=1), drift_rate=0, failure_rate=0, spike_rate=0,
    )
    quiet = decode(batch.values for batch in noise.batches(machines * 4 * 8_640, 20_000))
    false_alarms = sum(r["state"] == "open" for r in detect(quiet, config, batch=5_000))
    return {
        "runs": runs,
        "precision": summary([r["precision"] for r in runs]),
        "spike_recall": summary([r["spike_recall"] for r in runs]),
        "drift_recall": summary([r["drift_recall"] for r in runs]),
        "precursor_recall": summary([r["precursor_recall"] for r in runs]),
        "noise_day": {"readings": quiet.num_rows, "false_alarms": false_alarms},
    }


class Prober(threading.Thread):
    """Probe sensors with their spikes; records when each spike was produced."""

    def __init__(self, settings: Settings, sensors: int, every: float, until: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.sensors, self.every, self.until = settings, sensors, every, until
        self.sent: dict[str, float] = {}

    def run(self) -> None:
        producer = Producer({**self.settings.kafka_config(), "linger.ms": 0, "acks": "all"})
        rng = np.random.default_rng(7)
        clock = [int(time.time() * 1e6)] * self.sensors
        number = 0
        next_round = time.monotonic()
        while time.monotonic() < self.until:
            for probe in range(self.sensors):
                number += 1
                spike = number // self.sensors % SPIKE_EVERY == SPIKE_EVERY - 1
                value = 50.0 + rng.normal(0, 0.5) + (8.0 if spike else 0.0)
                clock[probe] += PROBE_STEP_US
                event_id = f"probe-{number}"
                device = f"probe-{probe:03d}"
                message = orjson.dumps({
                    "event_id": event_id, "event_time": iso(clock[probe]), "device_id": device,
                    "sensor_id": f"{device}-temperature", "sensor_type": "temperature",
                    "plant": "plant-pune", "sequence": number, "value": round(value, 3),
                    "unit": "degC",
                })
                if spike:
                    self.sent[event_id] = time.time()
                producer.produce(SENSOR_READINGS.name, message, key=device.encode())
                producer.poll(0)
            next_round += self.every
            time.sleep(max(next_round - time.monotonic(), 0))
        producer.flush(10)


class AlertReader(threading.Thread):
    """Reads `iot_alerts` from the end as the alerts arrive; records receipt times."""

    def __init__(self, settings: Settings, until: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.until = settings, until
        self.received: dict[str, tuple[float, str]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        consumer = Consumer({**self.settings.kafka_config(), "group.id": f"bench-{uuid.uuid4()}",
                             "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                             "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        consumer.subscribe([IOT_ALERTS.name])
        while time.monotonic() < self.until and not self.done.is_set():
            message = consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            at = time.time()
            record = orjson.loads(message.value())
            if record["state"] == "open":
                self.received[record["reading_event_id"]] = (at, record["detected_at"])
        consumer.close()


def latency(rate: float, seconds: float, warmup: float, probes: int, probe_ms: float,
            workdir: Path) -> dict[str, Any]:
    """Spike produced to alert record received, under live traffic."""
    server = RedisServer(workdir / "redis").start()
    receiver = WebhookReceiver().start()
    log = workdir / "processor.log"
    with running_broker(workdir, "alerts") as broker:
        settings = Settings(
            lakehouse_home=workdir / "home", lakehouse_root=str(workdir / "lake"),
            kafka_bootstrap_servers=broker.bootstrap, redis_url=server.url,
            iot_alerts_group_id=f"bench-{uuid.uuid4().hex[:8]}",
            iot_alerts_webhook_url=receiver.url,
        )
        ensure_topics(settings)
        env = {
            **os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "REDIS_URL": server.url,
            "IOT_ALERTS_GROUP_ID": settings.iot_alerts_group_id,
            "IOT_ALERTS_WEBHOOK_URL": receiver.url,
            "LAKEHOUSE_HOME": str(settings.lakehouse_home),
            "LAKEHOUSE_ROOT": settings.lakehouse_root,
        }
        with log.open("wb") as sink:
            processor = subprocess.Popen(
                [str(Path(sys.executable).parent / "lakehouse"), "stream", "iot-alerts"],
                env=env, stdout=sink, stderr=sink,
            )
        try:
            started = time.monotonic()
            reader = AlertReader(settings, started + seconds + 15)
            reader.start()
            generator = make_generator("iot", live=True, span=timedelta(seconds=seconds))
            traffic = threading.Thread(
                target=produce, args=(settings, generator, int(rate * seconds)),
                kwargs={"rate": rate, "progress": False}, daemon=True,
            )
            traffic.start()
            prober = Prober(settings, probes, probe_ms / 1000, started + seconds)
            prober.start()
            traffic.join()
            prober.join()
            produced_seconds = time.monotonic() - started
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not set(prober.sent) <= set(reader.received):
                time.sleep(0.1)
        finally:
            reader.done.set()
            reader.join()
            processor.terminate()
            processor.wait(60)
            receiver.stop()
    server.stop()
    first = time.time() - (time.monotonic() - started)
    counted = [e for e, at in prober.sent.items() if at - first >= warmup]
    record = [reader.received[e][0] - prober.sent[e] for e in counted if e in reader.received]
    detected = [
        datetime.fromisoformat(reader.received[e][1].replace("Z", "+00:00")).timestamp()
        - prober.sent[e] for e in counted if e in reader.received
    ]
    webhook_at = {r["reading_event_id"]: at for r, at in
                  zip(receiver.records, receiver.received_at, strict=True) if r["state"] == "open"}
    webhook = [webhook_at[e] - prober.sent[e] for e in counted if e in webhook_at]
    return {
        "achieved_rate": rate * seconds / produced_seconds,
        "probes": len(counted),
        "probes_without_alert": sum(e not in reader.received for e in counted),
        "to_alert_record_seconds": summary(record, (50, 90, 99)),
        "to_detected_at_seconds": summary(detected, (50, 90, 99)),
        "to_webhook_seconds": summary(webhook, (50, 90, 99)),
        "processor_exit_code": processor.returncode,
        "processor_log_tail": log.read_text()[-2000:],
    }


@app.command()
def main(
    rate: Annotated[float, typer.Option(help="Live generator readings per second")] = 5_000.0,
    seconds: Annotated[float, typer.Option(help="Seconds of live traffic")] = 60.0,
    warmup: Annotated[float, typer.Option(help="Seconds left out at the start")] = 10.0,
    probes: Annotated[int, typer.Option(help="Probe sensors")] = 8,
    probe_ms: Annotated[float, typer.Option(help="Milliseconds between probe readings")] = 25.0,
    machines: Annotated[int, typer.Option(help="Machines in the quality runs")] = 25,
    quality_days: Annotated[int, typer.Option(help="Simulated days per quality run")] = 1,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds of the quality runs")] = "3,4,5",
    skip_latency: Annotated[bool, typer.Option(help="Quality only")] = False,
    spike_z: Annotated[
        float | None, typer.Option(help="Spike threshold of the quality runs (default: setting)")
    ] = None,
) -> None:
    """Measure alert precision/recall against ground truth and spike-to-alert latency."""
    config = {"rate": rate, "seconds": seconds, "warmup": warmup, "probes": probes,
              "probe_ms": probe_ms, "machines": machines, "quality_days": quality_days,
              "seeds": seeds}
    detector = DetectorConfig(**({} if spike_z is None else {"spike_z": spike_z}))
    config["detector"] = detector.__dict__
    document = envelope("alerts", config)
    document["quiet_load_cores"] = wait_for_quiet()
    document["quality"] = quality(
        machines, quality_days, [int(s) for s in seeds.split(",")], detector
    )
    if not skip_latency:
        workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
        document["latency"] = latency(rate, seconds, warmup, probes, probe_ms, workdir)
    path = write(document)
    q = document["quality"]
    console.print(
        f"[bold]alerts[/] precision p50 {q['precision']['p50']:.3f}, spike recall "
        f"{q['spike_recall']['p50']:.3f}, drift recall {q['drift_recall']['p50']:.3f}, "
        f"precursor recall {q['precursor_recall']['p50']:.3f}, "
        f"noise-day false alarms {q['noise_day']['false_alarms']}"
    )
    if not skip_latency:
        measured = document["latency"]
        stats = measured["to_alert_record_seconds"]
        console.print(
            f"latency at {measured['achieved_rate']:,.0f} readings/s: {measured['probes']} "
            f"spikes, p50 {stats.get('p50', float('nan')) * 1000:.0f} ms, "
            f"p99 {stats.get('p99', float('nan')) * 1000:.0f} ms, "
            f"{measured['probes_without_alert']} without an alert"
        )
    console.print(f"{path}")


if __name__ == "__main__":
    app()
