"""`lakehouse import <data set>`: public data sets sent to Kafka as the platform's events."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakehouse.settings import Settings, get_settings

if TYPE_CHECKING:
    from streaming.importers import Importer, ImportPlan

import_app = typer.Typer(
    help="Send a public data set (beside the repository, REAL_DATA_DIR) to Kafka as the "
    "platform's own events, original timestamps kept where it has them (docs/events.md).",
    no_args_is_help=True,
)
console = Console()

_DAY = ["%Y-%m-%d"]


@import_app.command("online-retail")
def online_retail(
    limit: Annotated[
        int | None, typer.Option(min=0, help="Send at most N lines (the first, in file order)")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(formats=_DAY, help="First UTC event date to send")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=_DAY, help="Last UTC event date to send")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Target events/s (default: max)")] = None,
) -> None:
    """UCI Online Retail's order lines as `purchases`, bad lines included: the ingest
    quarantines or silver rejects them with a reason, as it would any producer's."""
    from streaming.importers import IMPORTERS

    settings = get_settings()
    importer_class = IMPORTERS["online-retail"]
    try:
        importer = importer_class(
            settings.real_data_dir / importer_class.source,
            since=since.date() if since else None,
            until=until.date() if until else None,
            limit=limit,
        )
    except FileNotFoundError as error:
        raise typer.BadParameter(str(error)) from None
    _send(settings, importer, "UCI Online Retail", rate)


@import_app.command("nab")
def nab(
    limit: Annotated[
        int | None, typer.Option(min=0, help="Publish at most N readings (the first)")
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Pace the replay at the original spacing divided by X (default: as fast "
            "as the broker takes it; event times are the original ones either way)",
        ),
    ] = None,
) -> None:
    """NAB's machine temperature as one device's readings over MQTT through the gateway,
    published with the device's provisioned credentials (docs/events.md); the device is
    first registered as having no known operating limit (NAB publishes none)."""
    from lakehouse.catalog import DEVICE_LIMITS
    from lakehouse.device_limits import set_limit
    from streaming.edge.provision import Credentials
    from streaming.importers.nab import (
        OPERATING_LIMIT,
        REPLAY_DEVICE,
        SOURCE,
        DeviceNotProvisionedError,
        NabImport,
        publish,
    )

    settings = get_settings()
    try:
        importer = NabImport(settings.real_data_dir / SOURCE, limit=limit)
    except FileNotFoundError as error:
        raise typer.BadParameter(str(error)) from None
    plan = importer.plan()
    version = set_limit(settings, OPERATING_LIMIT)
    console.print(f"{REPLAY_DEVICE} {OPERATING_LIMIT.sensor_type}: no known operating limit "
                  f"({DEVICE_LIMITS.key} version {version})")
    try:
        report = publish(importer, Credentials.load(settings.iot_edge), speedup=speedup)
    except DeviceNotProvisionedError as error:
        raise typer.BadParameter(str(error)) from None
    summary = _summary(importer, plan, f"NAB machine temperature -> {REPLAY_DEVICE} over MQTT")
    summary.add_row("readings accepted by the broker", f"{report.accepted:,}", settings.mqtt_url)
    if report.refused:
        summary.add_row("refused by the broker", f"{report.refused:,}", "")
    console.print(summary)
    console.print(
        f"[green]published[/] {report.accepted:,} readings in {report.seconds:.1f}s "
        f"({report.accepted / max(report.seconds, 1e-9):,.0f}/s)"
    )
    if report.unrouted:
        console.print(
            f"[yellow]{report.unrouted:,} accepted readings had no subscriber "
            "(no gateway session on the broker): they are gone[/]"
        )


@import_app.command("cmapss")
def cmapss(
    limit: Annotated[
        int | None,
        typer.Option(min=0, help="Send at most the first N lines of each of the two files"),
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Target events/s (default: max)")] = None,
) -> None:
    """NASA C-MAPSS FD001's 100 training and 100 test engines as `engine_cycles`, one
    event per engine and flight cycle (cycle k at 2008-01-01 + k hours), failure ground
    truth included; bad lines are sent for the ingest to quarantine or silver to reject."""
    from streaming.importers import IMPORTERS

    settings = get_settings()
    importer_class = IMPORTERS["cmapss"]
    try:
        importer = importer_class(settings.real_data_dir / importer_class.source, limit=limit)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    _send(settings, importer, "NASA C-MAPSS FD001", rate)


def _summary(importer: Importer, plan: ImportPlan, title: str) -> Table:
    """The rows per reason and where each reason's rows go, the import's account of its
    bad rows."""
    summary = Table(title=title)
    summary.add_column("lines")
    summary.add_column("count", justify="right")
    summary.add_column("goes to")
    summary.add_row("read (selected)", f"{plan.selected:,}", "")
    for reason in importer.reasons:
        if plan.per_reason.get(reason.name):
            summary.add_row(f"  {reason.name}", f"{plan.per_reason[reason.name]:,}", reason.goes_to)
    clean = sum(plan.per_reason.values()) - sum(
        plan.per_reason.get(reason.name, 0) for reason in importer.reasons
    )
    summary.add_row("  clean", f"{clean:,}", "silver")
    return summary


def _send(settings: Settings, importer: Importer, title: str, rate: float | None) -> None:
    """Count what an importer will send, send it with a progress bar, and print where
    every line goes: the summary is the import's account of its bad lines."""
    from streaming.producer import produce

    plan = importer.plan()
    report = produce(settings, importer, plan.selected, rate=rate, progress=True)
    summary = _summary(importer, plan, f"{title} -> {', '.join(importer.topics)}")
    if plan.outside_window:
        summary.add_row("outside --since/--until (not sent)", f"{plan.outside_window:,}", "")
    summary.add_row("events sent", f"{report.total:,}", settings.kafka_bootstrap_servers)
    console.print(summary)
    console.print(
        f"[green]sent[/] {report.total:,} events in {report.seconds:.1f}s ({report.rate:,.0f}/s)"
    )
