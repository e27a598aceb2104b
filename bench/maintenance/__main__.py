"""`python -m bench.maintenance`: compaction and file skipping on one IoT day.

1. Write one day of silver `sensor_readings` as ingest leaves it: `--devices` x 4 sensors,
   a reading every `--interval` s, one append (one file) per minute: 1,440 files.
2. Point lookups by (device_id, sensor_id) through `lakehouse.query.query_with_scans`,
   the path `lakehouse query` takes: files listed and seconds (median of `--runs`).
3. Compact and z-order the day with `compact_day` in a child process (its time and peak
   RSS), to `--target-mb` files.
4. The same lookups again; their answers must equal the ones before.
Results go to bench/results/maintenance-<UTC time>.json; docs/benchmarks.md records them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.envelope import envelope, summary, write
from bench.ingest.procstat import wait_for_quiet
from bench.maintenance.day import MINUTES, SPEC, device_id, sensor_id, write_day
from bench.maintenance.lookup import Lookup, point_lookup_sql, time_full_view, time_lookup
from lakehouse.delta import table_stats
from lakehouse.query import run_query
from lakehouse.settings import Settings

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
ROOT = Path(__file__).resolve().parents[2]
TARGET_FILES, TARGET_OPENED, TARGET_SPEEDUP = 10, 0.10, 5.0


@app.command()
def main(
    devices: Annotated[int, typer.Option(help="Devices, 4 sensors each")] = 1000,
    interval: Annotated[int, typer.Option(help="Seconds between a sensor's readings")] = 30,
    target_mb: Annotated[int, typer.Option(help="Compaction target file size, MiB")] = 128,
    runs: Annotated[int, typer.Option(help="Timed runs per lookup")] = 7,
    seed: Annotated[int, typer.Option(help="Data seed")] = 7,
    keep: Annotated[bool, typer.Option(help="Keep the temporary lake")] = False,
) -> None:
    """Files, bytes, lookup files and time before and after compacting one day."""
    if 60 % interval:
        raise typer.BadParameter("must divide 60", param_hint="--interval")
    work = Path(tempfile.mkdtemp(prefix="bench-maintenance-"))
    settings = Settings(lakehouse_root=str(work / "lake"), lakehouse_home=work / "home")
    day = date.today() - timedelta(days=1)
    config = {
        "devices": devices,
        "sensors": devices * 4,
        "interval_s": interval,
        "target_mb": target_mb,
        "runs": runs,
        "seed": seed,
        "day": day.isoformat(),
    }
    console.print(f"[bold]maintenance benchmark[/] {config}; lake {settings.lake_root}")
    lookups = [
        (device_id(d), sensor_id(d, s)) for d, s in ((0, 0), (devices // 2, 1), (devices - 1, 3))
    ]
    try:
        written = _write(settings, day, devices, interval, seed)
        before, before_load = _lookups(settings, lookups, runs, "before")
        compaction = _compact(settings, day, target_mb)
        after, after_load = _lookups(settings, lookups, runs, "after")
        full_view = [
            summary(time_full_view(settings, point_lookup_sql(d, s), runs))["p50"] * 1e3
            for d, s in lookups
        ]
        problems = _check(settings, lookups, before, after, written)
        stats = table_stats(SPEC, settings)
        assert stats is not None
        document = {
            **envelope("maintenance", config),
            "day": written,
            "compaction": compaction,
            "after": {"files": stats.files, "bytes": stats.bytes, "rows": stats.rows},
            "lookups": [
                {**_pair(b, a, written["files"]), "after_without_skipping_p50_ms": round(ms, 2)}
                for b, a, ms in zip(before, after, full_view, strict=True)
            ],
            "load_before_lookups": {"before": before_load, "after": after_load},
            "problems": problems,
        }
    finally:
        if keep:
            console.print(f"lake kept at {settings.lake_root}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    document["verdict"] = _verdict(document)
    _print(document)
    path = write(document)
    console.print(f"results: {path.relative_to(ROOT)}")
    if problems:
        raise typer.Exit(1)


def _write(settings: Settings, day: date, devices: int, interval: int, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("append one file per minute", total=MINUTES)
        rows = write_day(
            settings, day, devices, interval, seed, lambda n: progress.advance(task, n)
        )
    seconds = time.perf_counter() - start
    stats = table_stats(SPEC, settings)
    assert stats is not None and stats.rows == rows, f"wrote {stats}, expected {rows} rows"
    console.print(
        f"wrote {rows:,} rows in {stats.files:,} files, {stats.bytes / 2**20:.1f} MiB, "
        f"{seconds:.0f} s"
    )
    return {"rows": rows, "files": stats.files, "bytes": stats.bytes, "write_s": seconds}


def _lookups(
    settings: Settings, lookups: list[tuple[str, str]], runs: int, label: str
) -> tuple[list[Lookup], float]:
    """Each lookup timed, after waiting for a quiet machine; the load it waited out."""
    load = wait_for_quiet()
    console.print(f"lookups {label} (machine load before: {load:.2f} cores)")
    return [time_lookup(settings, point_lookup_sql(d, s), runs) for d, s in lookups], load


def _compact(settings: Settings, day: date, target_mb: int) -> dict[str, Any]:
    """compact_day in a child process; its result, wall time and peak RSS."""
    load = wait_for_quiet()
    out = Path(settings.lakehouse_home) / "compaction.json"
    command = [
        sys.executable,
        "-m",
        "bench.maintenance.child",
        settings.lakehouse_root,
        str(settings.lakehouse_home),
        day.isoformat(),
        str(target_mb * 2**20),
        str(out),
    ]
    console.print(f"compacting {day} to {target_mb} MiB files (load before: {load:.2f} cores)")
    start = time.perf_counter()
    subprocess.run(command, check=True, timeout=1800)
    wall = time.perf_counter() - start
    result = json.loads(out.read_text())
    return {**result, "wall_s": wall, "load_before": load}


def _check(
    settings: Settings,
    lookups: list[tuple[str, str]],
    before: list[Lookup],
    after: list[Lookup],
    written: dict[str, Any],
) -> list[str]:
    """Same answers before and after, every sensor's day complete, no row lost."""
    problems = []
    for (device, sensor), b, a in zip(lookups, before, after, strict=True):
        if b.rows != a.rows or b.rows == 0:
            problems.append(f"{device}/{sensor}: {b.rows} rows before, {a.rows} after")
    stats = table_stats(SPEC, settings)
    if stats is None or stats.rows != written["rows"]:
        problems.append(f"table holds {stats and stats.rows} rows, wrote {written['rows']}")
    device, sensor = lookups[1]
    sql = point_lookup_sql(device, sensor) + " ORDER BY event_time"
    if run_query(settings, sql).num_rows != before[1].rows:
        problems.append("ordered answer differs")
    return problems


def _pair(before: Lookup, after: Lookup, files_before: int) -> dict[str, Any]:
    b, a = before.stats_ms(), after.stats_ms()
    return {
        "sql": before.sql,
        "rows": before.rows,
        "before": {"files": before.scan.files, "files_scanned": before.scan.files_scanned, "ms": b},
        "after": {"files": after.scan.files, "files_scanned": after.scan.files_scanned, "ms": a},
        "opened_share_of_day": after.scan.files_scanned / files_before,
        "opened_share_after": after.scan.files_scanned / max(after.scan.files, 1),
        "speedup_p50": b["p50"] / a["p50"],
    }


def _verdict(document: dict[str, Any]) -> dict[str, bool]:
    lookups = document["lookups"]
    return {
        "files_after_le_10": document["after"]["files"] <= TARGET_FILES,
        "opened_le_10pct": all(x["opened_share_of_day"] <= TARGET_OPENED for x in lookups),
        "speedup_ge_5x": all(x["speedup_p50"] >= TARGET_SPEEDUP for x in lookups),
        "answers_checked": not document["problems"],
    }


def _print(document: dict[str, Any]) -> None:
    day, after, compaction = document["day"], document["after"], document["compaction"]
    table = Table(title=f"one IoT day of silver sensor_readings ({day['rows']:,} rows)")
    for column in ("", "files", "MiB", "rows"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("before", f"{day['files']:,}", f"{day['bytes'] / 2**20:.1f}", f"{day['rows']:,}")
    table.add_row(
        "after", f"{after['files']:,}", f"{after['bytes'] / 2**20:.1f}", f"{after['rows']:,}"
    )
    console.print(table)
    console.print(
        f"compaction: {compaction['seconds']:.1f} s in compact_day ({compaction['wall_s']:.1f} s "
        f"with process start), peak RSS {compaction['peak_rss_bytes'] / 2**20:.0f} MiB "
        f"(before it started: {compaction['rss_before_bytes'] / 2**20:.0f} MiB)"
    )
    lookups = Table(title="point lookup by (device_id, sensor_id), via query_with_scans")
    for column in (
        "sensor",
        "rows",
        "files before",
        "p50 ms before",
        "files after",
        "p50 ms after",
        "speedup",
        "p50 ms after, all files listed",
    ):
        lookups.add_column(column, justify="left" if column == "sensor" else "right")
    for pair in document["lookups"]:
        sensor = pair["sql"].rsplit("'", 2)[-2]
        lookups.add_row(
            sensor,
            f"{pair['rows']:,}",
            f"{pair['before']['files_scanned']:,}/{pair['before']['files']:,}",
            f"{pair['before']['ms']['p50']:.1f}",
            f"{pair['after']['files_scanned']:,}/{pair['after']['files']:,}",
            f"{pair['after']['ms']['p50']:.1f}",
            f"{pair['speedup_p50']:.1f}x",
            f"{pair['after_without_skipping_p50_ms']:.1f}",
        )
    console.print(lookups)
    for name, met in document["verdict"].items():
        console.print(f"  {name}: " + ("[green]met[/]" if met else "[red]missed[/]"))
    for problem in document["problems"]:
        console.print(f"[red]{problem}[/]")


if __name__ == "__main__":
    app()
