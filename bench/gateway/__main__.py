"""`python -m bench.gateway`: msgs/s of one gateway process, MQTT to Kafka with dedupe.

Each run gives the gateway a fresh persistent session (a shared subscription, as in
production), fills the broker's queue for it with `--events` generated readings
published by the simulated fleet (one MQTT connection and password per device, QoS 1,
the generator's 0.5 % byte-identical redeliveries included), then starts the gateway in
its own process (`bench/gateway/child.py`) and lets it drain the backlog into Kafka. The
rate counts from the gateway's first message to its last acknowledgement, so it is what
one process sustains with its inputs waiting; the publisher's own rate and CPU are
measured apart, while the gateway is not running. A run counts only if the gateway
received every accepted reading, acknowledged every one, forwarded exactly the distinct
ones, and Kafka holds that many messages.

Mosquitto, the tansu broker, the gateway (and the publisher) share the machine's cores;
each run records how busy the machine was besides.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.envelope import RESULTS, envelope, summary, write
from bench.ingest.procstat import machine_busy_seconds, wait_for_quiet
from lakehouse.broker import EmbeddedBroker, ensure_topics
from lakehouse.catalog import SENSOR_READINGS, SENSOR_READINGS_MQTT, topic_partitions
from lakehouse.settings import Settings
from streaming.edge.devices import DeviceFleet, publish_batches
from streaming.edge.provision import Credentials
from streaming.generators.iot import IotGenerator
from tests.support.mosquitto import provisioned_mosquitto
from tests.support.net import free_port


def make_session(settings: Settings, client_id: str) -> None:
    """Create the gateway's persistent session and shared subscription, then leave, so
    the broker queues the fleet's readings for it."""
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=MQTTProtocolVersion.MQTTv5)
    user, password = settings.gateway_mqtt_username, settings.gateway_mqtt_password
    client.username_pw_set(user, password.get_secret_value() if password else None)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    host, port = settings.mqtt_url.rsplit("/", 1)[-1].split(":")
    client.connect(host, int(port), clean_start=False, properties=properties)
    client.loop_start()
    info = client.subscribe(f"$share/{settings.gateway_share_group}/"
                            f"{SENSOR_READINGS_MQTT.subscription}", qos=1)
    deadline = time.monotonic() + 10
    while info[0] != 0 or not client.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError("could not create the gateway session")
        time.sleep(0.05)
    time.sleep(0.5)  # the SUBACK
    client.disconnect()
    client.loop_stop()


def kafka_count(settings: Settings) -> int:
    """Messages on sensor_readings, read to the end of every partition (tansu's
    watermarks are not exact; its fetch responses are)."""
    partitions = topic_partitions(SENSOR_READINGS, settings)
    consumer = Consumer({**settings.kafka_config(), "group.id": uuid.uuid4().hex,
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(SENSOR_READINGS.name, p, OFFSET_BEGINNING)
                     for p in range(partitions)])
    total, ended = 0, set()
    deadline = time.monotonic() + 120
    while len(ended) < partitions and time.monotonic() < deadline:
        for message in consumer.consume(50_000, 1.0):
            if message.error() is None:
                total += 1
            elif message.error().code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
    consumer.close()
    return total


def one_run(settings: Settings, work: Path, generator_seed: int, events: int, machines: int,
            run: int, profile: Path | None = None) -> dict[str, Any]:
    """Fill a fresh session's backlog, drain it with one gateway process, check, measure."""
    client_id = f"bench-gateway-{run}"
    run_settings = settings.model_copy(update={"gateway_client_id": client_id,
                                               "gateway_share_group": f"bench{run}"})
    make_session(run_settings, client_id)
    generator = IotGenerator(seed=generator_seed + run, n_machines=machines)
    batches = list(generator.batches(events, 20_000))
    distinct = len({v for b in batches for v in b.values})
    fleet = DeviceFleet(Credentials.load(settings.iot_edge))
    fleet.connect()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    published = publish_batches(fleet, batches)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    fleet.close()
    publisher_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)

    before = kafka_count(settings)
    config = work / f"settings-{run}.json"
    config.write_text(run_settings.model_dump_json(exclude={"gateway_mqtt_password"}))
    result = work / f"result-{run}.json"
    quiet = wait_for_quiet(timeout=30)
    busy0 = machine_busy_seconds()
    command = [sys.executable, "-m", "bench.gateway.child", str(config), str(result)]
    if profile is not None:  # py-spy (not a project dependency) samples the child
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "--threads", "--format", "raw", "-o", str(profile), "--",
                   *command]
    child = subprocess.run(
        command,
        env=child_env(run_settings), capture_output=True, text=True, timeout=900,
    )
    busy1 = machine_busy_seconds()
    if child.returncode != 0:
        raise RuntimeError(f"gateway failed:\n{child.stderr[-4000:]}")
    report = json.loads(result.read_text())
    landed = kafka_count(settings) - before
    checks = {
        "received_all": report["received"] == published.accepted == events,
        "acked_all": report["acked"] == report["received"],
        "forwarded_distinct": report["forwarded"] == distinct,
        "kafka_holds_forwarded": landed == report["forwarded"],
    }
    if not all(checks.values()):
        raise AssertionError(f"run {run} is wrong: {checks}, report {report}, kafka {landed}")
    elapsed = busy1[1] - busy0[1]
    cores = os.cpu_count() or 1
    return {
        "events": events,
        "gateway_msgs_per_s": report["rate"],
        "gateway_cpu_seconds": report["cpu_seconds"],
        "gateway_cpu_us_per_msg": 1e6 * report["cpu_seconds"] / events,
        "filtered_duplicates": report["filtered"],
        "publisher_msgs_per_s": published.accepted / published.seconds,
        "publisher_cpu_us_per_msg": 1e6 * publisher_cpu / events,
        # Every process's CPU during the drain, the gateway's own included.
        "machine_cores_busy_during_drain": cores * (busy1[0] - busy0[0]) / elapsed
        if elapsed else None,
        "machine_load_before": quiet,
        "checks": checks,
    }


def child_env(settings: Settings) -> dict[str, str]:
    """The child reads its settings from the JSON file; the password travels by env."""
    env = dict(os.environ)
    if settings.gateway_mqtt_password is not None:
        env["GATEWAY_MQTT_PASSWORD"] = settings.gateway_mqtt_password.get_secret_value()
    return env


def main() -> None:
    """Run the benchmark, print the figures, write bench/results/gateway-*.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--machines", type=int, default=200, help="devices (4 sensors each)")
    parser.add_argument("--profile", action="store_true",
                        help="one more run under py-spy; folded stacks to bench/results/")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    kafka = EmbeddedBroker("127.0.0.1", free_port(), work / "tansu.log").start()
    generator = IotGenerator(seed=1, n_machines=args.machines)
    mosquitto = provisioned_mosquitto(work / "edge", list(generator.devices.values))
    try:
        settings = Settings(
            lakehouse_home=work / "home", lakehouse_root=str(work / "lake"),
            kafka_bootstrap_servers=kafka.bootstrap, mqtt_url=mosquitto.url,
            iot_edge_dir=mosquitto.directory,
            gateway_mqtt_password=mosquitto.credentials.gateway[1],
        )
        ensure_topics(settings)
        runs = [one_run(settings, work, 1, args.events, args.machines, run)
                for run in range(args.runs)]
        if args.profile:
            RESULTS.mkdir(parents=True, exist_ok=True)
            folded = RESULTS / "gateway-profile.txt"
            one_run(settings, work, 1, args.events, args.machines, args.runs, folded)
            print(f"py-spy folded stacks: {folded}")
    finally:
        mosquitto.stop()
        kafka.stop()
        shutil.rmtree(work, ignore_errors=True)
    document = envelope("gateway", vars(args))
    document["runs"] = runs
    for key in ("gateway_msgs_per_s", "gateway_cpu_us_per_msg", "publisher_msgs_per_s",
                "publisher_cpu_us_per_msg", "machine_cores_busy_during_drain"):
        document[key] = summary(r[key] for r in runs if r[key] is not None)
    path = write(document)
    for key in ("gateway_msgs_per_s", "gateway_cpu_us_per_msg", "publisher_msgs_per_s",
                "publisher_cpu_us_per_msg", "machine_cores_busy_during_drain"):
        stats = document[key]
        print(f"{key:34s} median {stats['p50']:>10,.1f}  min {stats['min']:>10,.1f}  "
              f"max {stats['max']:>10,.1f}")
    print(f"written {path}")


if __name__ == "__main__":
    main()
