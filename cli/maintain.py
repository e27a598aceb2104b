"""`lakehouse maintain`: the nightly table maintenance from a shell, by the same functions
the maintenance assets call (compaction, and with `--weekly` retention and VACUUM).

For an operator who wants one table or one day compacted now, or to see what a run would
do (`--dry-run`), without a Dagster run. The per-table maintenance lock makes it safe
beside a scheduled run: whichever comes second waits for, or reports, the other.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cli.views import human_bytes
from lakehouse.catalog import CATALOG, TableSpec
from lakehouse.delta import open_table
from lakehouse.logs import configure_logging
from lakehouse.maintenance.compaction import CompactionRowsChanged, compact_day
from lakehouse.maintenance.locks import MaintenanceBusy
from lakehouse.maintenance.retention import apply_retention
from lakehouse.maintenance.vacuum import vacuum_table
from lakehouse.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)


def maintain(
    table: Annotated[
        str | None,
        typer.Option("--table", "-t", help="layer.name (default: every day-partitioned table)"),
    ] = None,
    day: Annotated[
        datetime | None,
        typer.Option("--day", "-d", formats=["%Y-%m-%d"], help="Day to compact (default: "
                     "yesterday, UTC)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be done; change nothing")
    ] = False,
    weekly: Annotated[
        bool, typer.Option("--weekly", help="Also apply retention and VACUUM, as the weekly run")
    ] = False,
) -> None:
    """Compact a day's partitions to target-size, z-ordered files (and, --weekly, expire
    old partitions and VACUUM), printing the files, bytes and rows before and after."""
    configure_logging()
    settings = get_settings()
    try:
        tables = [CATALOG.table(table)] if table else maintained_tables()
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0]), param_hint="--table") from None
    if not tables[0].date_partition:
        raise typer.BadParameter(f"{tables[0].key} has no day partition to compact",
                                 param_hint="--table")
    target = day.date() if day else datetime.now(UTC).date() - timedelta(days=1)
    failed = _compact(settings, tables, target, dry_run)
    if weekly:
        _retention(settings, tables, dry_run)
        _vacuum(settings, [CATALOG.table(table)] if table else list(CATALOG.tables.values()),
                dry_run)
    if failed:
        raise typer.Exit(code=1)


def maintained_tables() -> list[TableSpec]:
    """Every table the nightly compaction keeps: those partitioned by day."""
    return [spec for spec in CATALOG.tables.values() if spec.date_partition]


def _compact(settings: Settings, tables: list[TableSpec], day: date, dry_run: bool) -> bool:
    """Compact `day` of each table; print the figures; True if any table failed."""
    view = Table(title=f"compaction of {day}{' (dry run)' if dry_run else ''}")
    for column in ("table", "files", "size", "rows", "z-order", "seconds", "outcome"):
        view.add_column(column, justify="left" if column in ("table", "z-order", "outcome")
                        else "right")
    failed = False
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("compacting", total=len(tables))
        for spec in tables:
            progress.update(task, description=f"compacting {spec.key}")
            if open_table(spec, settings) is None:
                progress.advance(task)
                continue
            try:
                result = compact_day(spec, settings, day, dry_run=dry_run)
                outcome = result.skipped or ("would compact" if dry_run else "compacted")
            except CompactionRowsChanged as error:
                result, outcome, failed = error.result, f"[red]{error}[/]", True
            except MaintenanceBusy as error:
                view.add_row(spec.key, "", "", "", "", "", f"[yellow]{error}[/]")
                failed = True
                progress.advance(task)
                continue
            view.add_row(
                spec.key,
                f"{result.files_before:,} → {result.files_after:,}",
                f"{human_bytes(result.bytes_before)} → {human_bytes(result.bytes_after)}",
                f"{result.rows_before:,} → {result.rows_after:,}",
                ", ".join(result.zorder_by),
                f"{result.seconds:.2f}",
                outcome,
            )
            progress.advance(task)
    console.print(view)
    return failed


def _retention(settings: Settings, tables: list[TableSpec], dry_run: bool) -> None:
    """List or delete each table's partitions past its retention."""
    dry = dry_run or not settings.retention_enforced
    today = datetime.now(UTC).date()
    view = Table(title=f"retention as of {today}{' (dry run)' if dry else ''}")
    for column in ("table", "keeps from", "expired days", "rows", "size"):
        view.add_column(column, justify="left" if column == "table" else "right")
    for spec in tables:
        result = apply_retention(spec, settings, today, dry_run=dry)
        view.add_row(spec.key, str(result.cutoff or "forever"), str(len(result.partitions)),
                     f"{result.rows:,}", human_bytes(result.bytes))
    console.print(view)


def _vacuum(settings: Settings, tables: list[TableSpec], dry_run: bool) -> None:
    """VACUUM, checkpoint and clean the log of each table."""
    view = Table(title=f"vacuum, retention {settings.maintenance_vacuum_retention_hours} h"
                 f"{' (dry run)' if dry_run else ''}")
    for column in ("table", "files removed", "size", "checkpoint", "log files removed"):
        view.add_column(column, justify="left" if column == "table" else "right")
    for spec in tables:
        result = vacuum_table(spec, settings, dry_run=dry_run)
        if result.version is None:
            continue
        view.add_row(spec.key, f"{result.files_removed:,}", human_bytes(result.bytes_removed),
                     str(result.checkpoint_version or "-"), str(result.log_files_removed))
    console.print(view)
