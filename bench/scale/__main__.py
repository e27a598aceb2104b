"""`python -m bench.scale`: one e-commerce day at growing sizes, bronze to every e-commerce
gold table, in bounded memory.

For each `--sizes` clickstream count (default 10M, 25M, 50M events):

1. Land a day holding that many clickstream events in bronze as `bench.medallion` does
   (`land_day`: the generator, the ingest decoder, 250K-row commits), in a fresh lake.
2. After waiting for a quiet machine, build the day in a child process
   (`bench/scale/child.py`): the four silver tables, then the six gold tables, with
   every quality check guarding every write (`checked`), and, with `--bare`, again
   without the checks (`bare`), which gives the checks' share of the time. Each is built
   `--repeats` times, the two modes alternating, and each mode reports its median run:
   two children of the same build differ by up to a second or two on two shared cores,
   as much as the checks' whole cost at 10M, so one pair of runs cannot tell 20% from
   30%. DuckDB is bounded by `--memory-limit` (`DUCKDB_MEMORY_LIMIT`) and spills to the
   lake's home.
3. Work time is the bronze-to-gold build the child times (GX imported before its clock);
   wall time is the child's life (the interpreter and imports included); peak memory is
   the summed RSS of its process tree, sampled every 100 ms, the highest of the repeats.
   A run counts only if silver clickstream holds every landed clickstream event once and
   nothing was rejected.

The figures asked of it (docs/benchmarks.md, "Bounded memory"): every size succeeds,
peak RSS at most `--rss-cap-gib` at each, and the largest day within `sizes[-1] /
sizes[0]` times the smallest's work time (time linear in rows). Results go to
bench/results/scale-<UTC time>.json.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from bench.engines.proctree import TreeSampler
from bench.envelope import envelope, write
from bench.ingest.procstat import wait_for_quiet
from bench.medallion.__main__ import land_day
from lakehouse.settings import Settings

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
ROOT = Path(__file__).resolve().parents[2]


@app.command()
def main(
    sizes: Annotated[
        str, typer.Option(help="Clickstream events per day, comma-separated")
    ] = "10000000,25000000,50000000",
    memory_limit: Annotated[str, typer.Option(help="DUCKDB_MEMORY_LIMIT")] = "3GB",
    rss_cap_gib: Annotated[float, typer.Option(help="Peak RSS the builds must stay under")] = 6.0,
    bare: Annotated[bool, typer.Option(help="Also build each day without the checks")] = True,
    repeats: Annotated[int, typer.Option(min=1, help="Builds per mode, alternated")] = 3,
    seed: Annotated[int, typer.Option(help="Generator seed")] = 7,
) -> None:
    """Land each size's day, then build it bounded, with the checks (and without)."""
    counts = [int(size) for size in sizes.split(",")]
    day = datetime.now(UTC).date() - timedelta(days=1)
    points = []
    for clickstream in counts:
        workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        try:
            lake, home = workdir / "lake", workdir / "home"
            settings = Settings(lakehouse_root=str(lake), lakehouse_home=home)
            landed = land_day(settings, day, clickstream, seed)
            env = {
                "LAKEHOUSE_ROOT": str(lake),
                "LAKEHOUSE_HOME": str(home),
                "DUCKDB_MEMORY_LIMIT": memory_limit,
            }
            modes = ("checked", "bare") if bare else ("checked",)
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
            for _ in range(repeats):
                for mode in modes:
                    runs[mode].append(_build(mode, day, env, workdir, landed))
            point: dict[str, Any] = {"clickstream": clickstream, "bronze": landed}
            point |= {mode: _median_run(built) for mode, built in runs.items()}
            points.append(point)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    config = {
        "sizes": counts,
        "memory_limit": memory_limit,
        "seed": seed,
        "day": str(day),
        "repeats": repeats,
    }
    document = {**envelope("scale", config), "points": points, "rss_cap_gib": rss_cap_gib}
    document["verdict"] = _verdict(points, rss_cap_gib)
    _print(document)
    console.print(f"results: {write(document)}")
    if not all(point["checked"]["success"] for point in points):
        raise typer.Exit(1)


def _build(
    mode: str, day: Any, env: dict[str, str], workdir: Path, landed: dict[str, Any]
) -> dict[str, Any]:
    """One child build of the day, its tree sampled; its result and the measurements."""
    quiet = wait_for_quiet(timeout=60)
    log = workdir / f"{mode}.log"
    started = time.perf_counter()
    with log.open("wb") as stderr, console.status(f"{mode}: silver + gold for {day}"):
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.scale.child", mode, day.isoformat()],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        sampler = TreeSampler(child.pid).start()
        out, _ = child.communicate()
        sampler.stop()
    wall = time.perf_counter() - started
    measured = {
        "returncode": child.returncode,
        "wall_s": wall,
        "cpu_s": sampler.cpu_s,
        "peak_rss_mib": sampler.peak_rss_mib,
        "other_cores_before": quiet,
        "other_cores_during": sampler.other_cores(wall, os.cpu_count() or 1),
    }
    lines = out.decode().strip().splitlines()
    if child.returncode != 0 or not lines:
        console.print(f"[red]{mode} failed[/]:\n{log.read_text()[-3000:]}")
        return {**measured, "success": False}
    result = orjson.loads(lines[-1])
    rows = result["rows"]
    success = rows["silver.clickstream"] == landed["tables"]["clickstream"]["rows"] and not any(
        count for name, count in rows.items() if name.startswith("rejected.")
    )
    console.print(
        f"{landed['tables']['clickstream']['rows']:,} clicks, {mode}: {wall:.1f} s, "
        f"peak tree RSS {sampler.peak_rss_mib:,.0f} MiB" + ("" if success else " [red]NOT COUNTED")
    )
    return {**result, **measured, "success": success}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's repeats as one run: the run of median work time (the lower middle of an
    even count) with the highest peak memory of any, or the first repeat that did not
    count if one did not; every repeat is kept under `runs`."""
    failed = [run for run in runs if not run["success"]]
    if failed:
        return {**failed[0], "runs": runs}
    middle = sorted(runs, key=lambda run: run["work_s"])[(len(runs) - 1) // 2]
    peak = max(run["peak_rss_mib"] for run in runs)
    return {**middle, "peak_rss_mib": peak, "runs": runs}


def _verdict(points: list[dict[str, Any]], rss_cap_gib: float) -> dict[str, Any]:
    """Every size succeeded, under the cap, and time grew no faster than the rows.

    Time is the bronze-to-gold work the child times (`work_s`): the child's life also
    holds the interpreter's start and the imports, GX's 5-6 s among them for `checked`, a
    constant per process that is not the checks' cost per row (and, being constant, would
    flatter the growth). Both are recorded; the wall-time figures come as `*_wall`."""
    first, last = points[0], points[-1]
    checked = [point for point in points if "bare" in point]

    def growth(measure: str) -> float:
        return last["checked"][measure] / first["checked"][measure]

    def overheads(measure: str) -> list[float]:
        return [point["checked"][measure] / point["bare"][measure] - 1 for point in checked]

    allowed = last["clickstream"] / first["clickstream"]
    return {
        "all_succeeded": all(point["checked"]["success"] for point in points),
        "under_cap": all(
            point[mode]["peak_rss_mib"] <= rss_cap_gib * 1024
            for point in points
            for mode in ("checked", "bare")
            if mode in point
        ),
        "time_growth": growth("work_s"),
        "time_growth_wall": growth("wall_s"),
        "allowed_growth": allowed,
        "linear": growth("work_s") <= allowed,
        "check_overhead": overheads("work_s"),
        "check_overhead_wall": overheads("wall_s"),
    }


def _print(document: dict[str, Any]) -> None:
    table = Table(
        title=f"one e-commerce day, bronze to gold, DuckDB memory limit "
        f"{document['config']['memory_limit']}"
    )
    for column in (
        "clickstream events",
        "mode",
        "work s",
        "wall s",
        "silver.clickstream s",
        "peak tree RSS GiB",
        "other cores busy",
    ):
        table.add_column(column, justify="right")
    for point in document["points"]:
        for mode in ("checked", "bare"):
            if mode not in point:
                continue
            run = point[mode]
            table.add_row(
                f"{point['clickstream']:,}",
                mode,
                f"{run.get('work_s', float('nan')):.1f}",
                f"{run['wall_s']:.1f}",
                f"{run.get('seconds', {}).get('silver.clickstream', float('nan')):.1f}",
                f"{run['peak_rss_mib'] / 1024:.2f}",
                f"{run['other_cores_during']:.2f}",
            )
    console.print(table)
    console.print(document["verdict"])


if __name__ == "__main__":
    app()
