"""Rich renderings shared by the CLI and the demo: table stats and Arrow results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
from rich.table import Table

from lakehouse.catalog import CATALOG
from lakehouse.delta import table_stats
from lakehouse.settings import Settings


def tables_view(settings: Settings) -> Table:
    """The same view as `lakehouse tables`: version, files, rows and size of each table."""
    view = Table(title=f"tables under {settings.lake_root}")
    for column in ("table", "domain", "version", "files", "rows", "size"):
        view.add_column(column, justify="left" if column in ("table", "domain") else "right")
    for spec in CATALOG.tables.values():
        stats = table_stats(spec, settings)
        if stats is None:
            view.add_row(spec.key, spec.domain.value, "-", "-", "-", "not created")
            continue
        view.add_row(
            spec.key,
            spec.domain.value,
            str(stats.version),
            f"{stats.files:,}",
            f"{stats.rows:,}",
            human_bytes(stats.bytes),
        )
    return view


def arrow_view(result: pa.Table, title: str | None = None, limit: int = 20) -> Table:
    """A rich table of an Arrow result, numbers right-aligned and thousands separated."""
    view = Table(title=title, title_justify="left")
    numeric = [
        pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)
        for f in result.schema
    ]
    for name, is_number in zip(result.column_names, numeric, strict=True):
        view.add_column(name, justify="right" if is_number else "left")
    for row in result.slice(0, limit).to_pylist():
        view.add_row(*(cell(value) for value in row.values()))
    return view


def models_view(models: Sequence[Mapping[str, object]]) -> Table:
    """What a training run did per model asset: the registry version and its decision."""
    table = Table(title="Models")
    for column in ("asset", "version", "promoted", "decision"):
        table.add_column(column, overflow="fold")
    for model in models:
        promoted = model.get("promoted")
        table.add_row(
            str(model["asset"]),
            cell(model.get("model_version")),
            "" if promoted is None else ("[green]yes[/]" if promoted else "no"),
            cell(model.get("decision")),
        )
    return table


def cell(value: object) -> str:
    """A value as the CLI's tables show it: thousands separated, floats to two places,
    times in UTC, None as blank."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, Decimal):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def human_bytes(size: float) -> str:
    """Bytes in the largest binary unit that keeps the number below 1024."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"
