"""The demo's IoT half: the fleet publishes over MQTT, each device with its own password,
to a Mosquitto provisioned for it; the edge gateway forwards to Kafka and the alert
processor raises alerts, both as `lakehouse` processes; then what the alerts caught of
the anomalies the generator injected.

The broker, the gateway and the processor are the real commands (`lakehouse iot broker`,
`lakehouse gateway`, `lakehouse stream iot-alerts`), started with the environment a
supervisor would give them and stopped the way it would: the gateway and the processor
run until idle and exit, the broker gets SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from cli.online_demo import OnlineProcess, free_port, log_path, redis_client
from cli.views import arrow_view
from lakehouse.broker import port_open
from lakehouse.catalog import SENSOR_READINGS, Layer
from lakehouse.settings import Settings
from streaming.generators.common import DomainGenerator

IDLE_SECONDS = 3.0
"""The alert processor exits once nothing arrived for this long (after the gateway)."""
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class Edge:
    """The running edge: where it keeps its files, the processes, their environment."""

    directory: Path
    port: int
    health_port: int
    env: dict[str, str]
    broker: OnlineProcess
    gateway: OnlineProcess
    alerts: OnlineProcess


def forget_stale_alert_state(settings: Settings) -> int:
    """Drop the alert processor's checkpoints when the Kafka broker was started afresh:
    their offsets point into the earlier broker's topics. Returns the keys dropped."""
    from streaming.alerts.store import AlertStore

    store = AlertStore(settings, redis_client(settings))
    keys = list(store.client.scan_iter(match=f"{store.prefix}:*", count=1_000))
    return int(store.client.delete(*keys)) if keys else 0


@contextmanager
def edge(settings: Settings, console: Console, devices: list[str], port: int
         ) -> Iterator[Edge]:
    """A provisioned Mosquitto on `port` for `devices`, the gateway subscribed to it and
    the alert processor, while the block runs."""
    from streaming.edge.provision import provision

    redis_client(settings)
    directory = settings.lakehouse_home / "iot-edge"
    # A fresh broker each run: new passwords, and no session left from an earlier demo.
    shutil.rmtree(directory, ignore_errors=True)
    provision(directory, devices, gateway_user=settings.gateway_mqtt_username, port=port)
    # COLUMNS: the commands' closing reports on one line each in their logs.
    env = {**os.environ, "MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "IOT_EDGE_DIR": str(directory), "COLUMNS": "300"}
    with ExitStack() as stack:
        broker = OnlineProcess("mosquitto", ["iot", "broker", "--directory", str(directory)],
                               log_path(settings, "mosquitto"), env)
        stack.callback(broker.stop)
        _wait(lambda: port_open("127.0.0.1", port), broker, "mosquitto to listen")
        health_port = free_port()
        gateway = OnlineProcess(
            "the edge gateway",
            ["gateway", "--metrics-port", str(health_port)],
            log_path(settings, "gateway"), env)
        stack.callback(gateway.stop)
        _wait(lambda: _healthy(health_port), gateway, "the gateway to subscribe")
        alerts = OnlineProcess(
            "the alert processor",
            ["stream", "iot-alerts", "--until-idle", str(IDLE_SECONDS), "--no-webhook"],
            log_path(settings, "iot-alerts"), env)
        stack.callback(alerts.stop)
        console.print(
            f"   [green]edge[/] Mosquitto on port {port} ({len(devices)} devices, one password "
            f"each, ACL in {directory}); gateway (pid {gateway.process.pid}) subscribed; "
            f"alert processor (pid {alerts.process.pid}) running"
        )
        yield Edge(directory, port, health_port, env, broker, gateway, alerts)


def publish_fleet(settings: Settings, console: Console, edge: Edge,
                  generator: DomainGenerator, count: int) -> int:
    """Publish `count` readings as the devices would, over MQTT; the readings the broker
    accepted."""
    from streaming.edge.devices import DeviceFleet, publish_batches
    from streaming.edge.provision import Credentials
    from streaming.producer import default_batch_size

    fleet = DeviceFleet(Credentials.load(edge.directory))
    fleet.connect()
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*Progress.get_default_columns()[:1], *columns, console=console,
                      transient=True) as progress:
            task = progress.add_task("   readings over MQTT", total=count)
            report = publish_batches(
                fleet, generator.batches(count, default_batch_size(None)),
                lambda sent: progress.advance(task, sent))
    finally:
        fleet.close()
    rate = report.accepted / max(report.seconds, 1e-9)
    console.print(
        f"   [green]iot[/] {report.accepted:,} readings published over MQTT in "
        f"{report.seconds:.1f}s ({rate:,.0f}/s), {report.refused:,} refused, "
        f"{report.unrouted:,} without a subscriber"
    )
    return report.accepted


def wait_drained(console: Console, edge: Edge, accepted: int, timeout: float = 600.0
                 ) -> None:
    """Wait for the gateway to acknowledge the `accepted` readings (each only once Kafka
    confirmed it), stop it with SIGTERM, then wait for the processor to finish them (it
    exits once idle); print what each said it did."""
    deadline = time.monotonic() + timeout
    while _health(edge.health_port).get("acked", 0) < accepted:
        edge.gateway.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not forward {accepted:,} readings within "
                               f"{timeout:.0f}s: see {edge.gateway.log}")
        time.sleep(0.2)
    edge.gateway.stop()
    edge.gateway.check_succeeded()
    console.print(f"   {_summary(edge.gateway.log)}")
    try:
        edge.alerts.process.wait(max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"the alert processor did not finish: see {edge.alerts.log}"
                           ) from error
    edge.alerts.check_succeeded()
    console.print(f"   {_summary(edge.alerts.log)}")


def show_alerts(settings: Settings, console: Console) -> None:
    """The alerts in the lake against the anomalies the generator injected."""
    from lakehouse.query import connect

    connection = connect(settings, layers=(Layer.SILVER,))
    try:
        for title, sql in (("injected anomalies and the alerts that caught them", CAUGHT_SQL),
                           ("alerts raised, by rule", RAISED_SQL)):
            console.print(arrow_view(connection.sql(sql).to_arrow_table(), title=title))
    finally:
        connection.close()
    console.print(
        "   [dim]the detector is tuned for readings every few seconds (docs/iot-alerts.md); "
        "the demo's fleet reports every few minutes, so its fast baseline sees few readings "
        "and misses more spikes than bench.alerts measures[/]"
    )


# An incident is a sensor with spikes (each spike counts), a drifting sensor, or a failing
# machine (its precursor window); an alert catches it when it is open over the spike, opens
# after the drift began, or opens inside the precursor window. The quiet minute a closed
# alert waits for counts as open.
CAUGHT_SQL = f"""
WITH readings AS (
    SELECT device_id, sensor_id, event_time, label_anomaly
    FROM silver.{SENSOR_READINGS.name} WHERE label_anomaly IS NOT NULL
),
alerts AS (
    SELECT alert_id, any_value(device_id) AS device_id, any_value(sensor_id) AS sensor_id,
           min(opened_at) AS opened_at,
           coalesce(max(closed_at), TIMESTAMPTZ '9999-12-31') AS closed_at
    FROM silver.iot_alerts GROUP BY alert_id
),
spikes AS (
    SELECT r.event_time, r.sensor_id,
           bool_or(a.alert_id IS NOT NULL) AS caught
    FROM readings AS r LEFT JOIN alerts AS a
      ON a.sensor_id = r.sensor_id AND r.event_time BETWEEN a.opened_at AND a.closed_at
    WHERE r.label_anomaly = 'spike' GROUP BY ALL
),
drifts AS (
    SELECT r.sensor_id, bool_or(a.alert_id IS NOT NULL) AS caught
    FROM (SELECT sensor_id, min(event_time) AS onset FROM readings
          WHERE label_anomaly = 'drift' GROUP BY sensor_id) AS r
    LEFT JOIN alerts AS a ON a.sensor_id = r.sensor_id AND a.opened_at >= r.onset
    GROUP BY ALL
),
failures AS (
    SELECT r.device_id, bool_or(a.alert_id IS NOT NULL) AS caught
    FROM (SELECT device_id, min(event_time) AS first, max(event_time) AS last
          FROM readings WHERE label_anomaly = 'precursor' GROUP BY device_id) AS r
    LEFT JOIN alerts AS a ON a.device_id = r.device_id
     AND a.opened_at BETWEEN r.first AND r.last
    GROUP BY ALL
)
SELECT 'spike (readings)' AS anomaly, count(*) AS injected,
       count(*) FILTER (WHERE caught) AS caught,
       round(count(*) FILTER (WHERE caught) / greatest(count(*), 1), 3) AS recall FROM spikes
UNION ALL
SELECT 'drift (sensors)', count(*), count(*) FILTER (WHERE caught),
       round(count(*) FILTER (WHERE caught) / greatest(count(*), 1), 3) FROM drifts
UNION ALL
SELECT 'failure precursor (machines)', count(*), count(*) FILTER (WHERE caught),
       round(count(*) FILTER (WHERE caught) / greatest(count(*), 1), 3) FROM failures
"""

# An alert is explained when an injected anomaly of its sensor (or, for device health, of
# its device) lies within a quiet minute of the time it was open.
RAISED_SQL = f"""
WITH alerts AS (
    SELECT alert_id, any_value(rule) AS rule, any_value(severity) AS severity,
           any_value(device_id) AS device_id, any_value(sensor_id) AS sensor_id,
           min(opened_at) AS opened_at,
           coalesce(max(closed_at), max(opened_at) + INTERVAL 1 DAY) AS closed_at
    FROM silver.iot_alerts GROUP BY alert_id
),
labelled AS (
    SELECT device_id, sensor_id, event_time FROM silver.{SENSOR_READINGS.name}
    WHERE label_anomaly IS NOT NULL
),
explained AS (
    SELECT a.alert_id, a.rule, a.severity,
           EXISTS (SELECT 1 FROM labelled AS l
                   WHERE (l.sensor_id = a.sensor_id
                          OR (a.sensor_id IS NULL AND l.device_id = a.device_id))
                     AND l.event_time BETWEEN a.opened_at - INTERVAL 1 MINUTE
                                          AND a.closed_at + INTERVAL 1 MINUTE) AS near
    FROM alerts AS a
)
SELECT rule, severity, count(*) AS alerts,
       count(*) FILTER (WHERE near) AS near_an_injected_anomaly,
       round(count(*) FILTER (WHERE near) / count(*), 3) AS precision
FROM explained GROUP BY ALL ORDER BY rule, severity
"""


def _healthy(port: int) -> bool:
    return _health(port).get("status") == "ok"


def _health(port: int) -> dict[str, Any]:
    """The gateway's /healthz detail (empty while it does not answer; 503 has one too)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return dict(orjson.loads(answer.read()))
    except urllib.error.HTTPError as error:
        return dict(orjson.loads(error.read()))
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError):
        return {}


def _wait(ready: Callable[[], bool], process: OnlineProcess, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready():
        process.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}: see {process.log}")
        time.sleep(0.1)


def _summary(log: Path) -> str:
    """The last line the command printed (its report)."""
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if line.strip() and not line.lstrip().startswith("{")]
    return lines[-1].strip() if lines else f"(no report: see {log})"
