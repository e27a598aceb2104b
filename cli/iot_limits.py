"""`lakehouse iot limits set|clear|list`: a device's own operating limits for the alert
processor (`reference.device_limits`, lakehouse/device_limits.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.views import arrow_view
from lakehouse.catalog import DEVICE_LIMITS, SENSOR_LIMITS
from lakehouse.settings import get_settings

limits_app = typer.Typer(
    help="Per-device operating limits: they replace the catalog's per sensor type for "
    "`above_limit` / `below_limit` (the running processor picks a change up within "
    "IOT_ALERTS_LIMITS_REFRESH_SECONDS)."
)
console = Console()
TYPES_HELP = f"Sensor type: {', '.join(SENSOR_LIMITS)}"


@limits_app.command("set")
def set_limits(
    device: Annotated[str, typer.Argument(help="Device id, e.g. dev-0007 or nab-machine-01")],
    sensor_type: Annotated[str, typer.Argument(help=TYPES_HELP)],
    low: Annotated[float | None, typer.Option(help="Low operating limit, in the type's unit")] = (
        None
    ),
    high: Annotated[
        float | None, typer.Option(help="High operating limit, in the type's unit")
    ] = None,
    unknown: Annotated[
        bool,
        typer.Option(
            "--unknown",
            help="No operating limit is known for this device's sensor: "
            "the limit rules stay quiet for it (zscore and device_health still judge)",
        ),
    ] = False,
    source: Annotated[
        str, typer.Option(help="Where the limits come from (a datasheet, a ticket)")
    ] = "lakehouse iot limits",
) -> None:
    """Set one device's operating limits for one sensor type (both --low and --high, or
    --unknown); a refused limit writes nothing."""
    from lakehouse.device_limits import DeviceLimit, LimitError, set_limit

    if unknown and (low is not None or high is not None):
        raise typer.BadParameter("--unknown takes no --low or --high")
    if not unknown and low is None and high is None:
        raise typer.BadParameter("give --low and --high, or --unknown")
    limit = DeviceLimit(device, sensor_type, low, high, source)
    try:
        version = set_limit(get_settings(), limit)
    except LimitError as error:
        raise typer.BadParameter(str(error)) from None
    unit = SENSOR_LIMITS[sensor_type].unit
    what = "no known limit" if unknown else f"{low:g} to {high:g} {unit}"
    console.print(
        f"[green]set[/] {device} {sensor_type}: {what} ({DEVICE_LIMITS.key} version {version})"
    )


@limits_app.command("clear")
def clear_limits(
    device: Annotated[str, typer.Argument(help="Device id")],
    sensor_type: Annotated[
        str | None, typer.Argument(help=f"{TYPES_HELP} (default: all of the device's)")
    ] = None,
) -> None:
    """Forget a device's own limits, so the catalog's per-type limits apply to it again."""
    from lakehouse.device_limits import LimitError, clear_limit

    try:
        removed = clear_limit(get_settings(), device, sensor_type)
    except LimitError as error:
        raise typer.BadParameter(str(error)) from None
    console.print(f"[green]cleared[/] {removed} limit(s) of {device}")


@limits_app.command("list")
def list_limits(
    device: Annotated[str | None, typer.Option(help="Only this device's")] = None,
) -> None:
    """The recorded per-device limits (empty sides: no known limit); every other device
    uses the catalog's per-type limits."""
    from lakehouse.device_limits import read_limits

    rows = read_limits(get_settings(), device)
    console.print(
        arrow_view(
            rows,
            title=f"{DEVICE_LIMITS.key}: {rows.num_rows} override(s)",
            limit=max(rows.num_rows, 1),
        )
    )
