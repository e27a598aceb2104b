"""`lakehouse iot provision|broker|limits` and `lakehouse gateway`: the IoT edge's commands."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.iot_limits import limits_app
from cli.runtime import process_settings
from lakehouse.settings import get_settings

iot_app = typer.Typer(
    help="The IoT edge: broker credentials, a local Mosquitto, per-device operating limits."
)
iot_app.add_typer(limits_app, name="limits")
console = Console()


@iot_app.command("provision")
def provision(
    devices: Annotated[
        int, typer.Option(help="Devices to create: the generator's dev-0000 ... (its fleet)")
    ] = 200,
    directory: Annotated[
        Path | None, typer.Option(help="Output folder (default: IOT_EDGE_DIR)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listener port (default: MQTT_URL's)")] = None,
    extra_device: Annotated[
        list[str] | None,
        typer.Option(help="A further device to provision, e.g. nab-machine-01 for "
                     "`lakehouse import nab` (repeatable)"),
    ] = None,
) -> None:
    """Write Mosquitto's password file, ACL and config, and every device's credentials."""
    from streaming.edge.gateway import broker_address
    from streaming.edge.provision import CONFIG_FILE, CREDENTIALS_FILE, provision
    from streaming.generators.iot import IotGenerator

    settings = get_settings()
    host, default_port = broker_address(settings)
    target = directory or settings.iot_edge
    names = [*IotGenerator(n_machines=devices).devices.values, *(extra_device or [])]
    provision(target, names, gateway_user=settings.gateway_mqtt_username,
              port=port or default_port, bind=host)
    console.print(f"[green]provisioned[/] {len(names)} devices and the gateway user "
                  f"{settings.gateway_mqtt_username!r} in {target}")
    console.print(f"  broker config {target / CONFIG_FILE}; credentials (0600) "
                  f"{target / CREDENTIALS_FILE}")


@iot_app.command("broker")
def broker(
    directory: Annotated[
        Path | None, typer.Option(help="Provisioned folder (default: IOT_EDGE_DIR)")
    ] = None,
) -> None:
    """Run Mosquitto in the foreground with the provisioned config (SIGTERM stops it)."""
    from streaming.edge.provision import CONFIG_FILE

    config = (directory or get_settings().iot_edge).resolve() / CONFIG_FILE
    if not config.exists():
        raise typer.BadParameter(f"{config} missing: run `lakehouse iot provision` first")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(mosquitto):
        raise typer.BadParameter("mosquitto not found: apt-get install mosquitto")
    # Mosquitto itself becomes this process: it handles SIGTERM (saves its database, exits 0).
    os.execv(mosquitto, [mosquitto, "-c", str(config)])


def gateway(
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (default: GATEWAY_CLIENT_ID)")
    ] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long")] = None,
    until_idle: Annotated[
        float | None, typer.Option(help="Exit after this long without a message, once one came")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="/metrics and /healthz port (default: GATEWAY_METRICS_PORT)")
    ] = None,
    json_logs: Annotated[bool, typer.Option(help="Structured JSON logs on stderr")] = True,
) -> None:
    """Run the MQTT-to-Kafka edge gateway: dedupe, validate, forward, ack after Kafka."""
    from streaming.edge.gateway import GatewayOptions, run_gateway

    settings = process_settings(json_logs, gateway_metrics_port=metrics_port)
    report = run_gateway(settings, GatewayOptions(client_id=client_id, max_seconds=max_seconds,
                                                  until_idle=until_idle))
    console.print(
        f"[green]gateway[/] {report.received:,} received, {report.forwarded:,} forwarded, "
        f"{report.quarantined:,} quarantined, {report.filtered:,} filtered, "
        f"{report.acked:,} acked, {report.reconnects} reconnects"
    )
