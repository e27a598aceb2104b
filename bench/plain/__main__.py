"""`python -m bench.plain --lake <root> --day YYYY-MM-DD`: the plain Polars pipeline over
one bronze day of a lake, timed per table, and (unless `--no-check`) its rows compared
with the project's silver and gold tables of that day in the same lake."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench.plain.compare import compare_day
from bench.plain.pipeline import run_plain

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    lake: Annotated[str, typer.Option(help="Lake root (the folder holding bronze/)")],
    day: Annotated[str, typer.Option(help="The event date, YYYY-MM-DD")],
    out: Annotated[Path | None, typer.Option(help="Keep the Parquet files here")] = None,
    check: Annotated[bool, typer.Option(help="Compare with the project's tables")] = True,
) -> None:
    """Run the plain pipeline over one bronze day and print its time per table."""
    event_date = datetime.strptime(day, "%Y-%m-%d").date()
    lake_root = str(Path(lake).expanduser().resolve()) if "://" not in lake else lake
    out_dir = out or Path(tempfile.mkdtemp(prefix="bench-plain-"))
    try:
        with console.status(f"plain Polars pipeline for {event_date}"):
            cpu = time.process_time()
            seconds = run_plain(lake_root, event_date, out_dir)
            cpu = time.process_time() - cpu
        verdicts = compare_day(lake_root, event_date, out_dir) if check else {}
    finally:
        if out is None:
            shutil.rmtree(out_dir, ignore_errors=True)
    table = Table(title=f"plain Polars pipeline, bronze {event_date} to silver and gold")
    table.add_column("table")
    table.add_column("seconds", justify="right")
    if check:
        table.add_column("same rows as the project")
    for name, value in seconds.items():
        verdict = verdicts.get(name, "")
        mark = "[green]yes" if verdict is None else f"[red]no: {verdict[:200]}" if verdict else ""
        table.add_row(name, f"{value:.2f}", *([mark] if check else []))
    console.print(table)
    # On a shared machine the wall time says as much about the neighbours as about Polars.
    console.print(f"CPU time of the pipeline (every thread): {cpu:.1f} s")
    if any(verdict is not None for verdict in verdicts.values()):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
