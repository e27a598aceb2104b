"""`python -m bench.versus`: the project against a plain pipeline on the same bronze day.

A data engineer who sees a short Polars script beat the platform will ask why; this puts
the two side by side, measured in one run:

1. Land a day holding `--clickstream` clickstream events in bronze as `bench.medallion`
   does (`land_day`).
2. `--runs` rounds, each after waiting for a quiet machine, each in fresh processes, in
   this order: the project with every check on (`bench.scale.child checked <day> plain`:
   the four e-commerce silver tables, user_activity_daily and product_daily, each write
   guarded by its quality suite), the project without checks (`bare`), and the plain
   Polars pipeline of `bench.plain` writing the same six tables as Parquet files. Each
   reports the seconds of its work (imports, Great Expectations' included, are not
   timed: a long-lived process pays them once, and a script's are not counted either).
3. The plain pipeline's six tables must hold the project's rows (`bench.plain.compare`);
   otherwise the run does not count.

The figure asked of it (docs/benchmarks.md, "Against a plain pipeline"): the project with
every check on within 1.5x of the plain pipeline (median of the rounds). Results go to
bench/results/versus-<UTC time>.json.
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

import numpy as np
import orjson
import typer
from rich.console import Console
from rich.table import Table

from bench.engines.proctree import TreeSampler
from bench.envelope import envelope, write
from bench.ingest.procstat import wait_for_quiet
from bench.medallion.__main__ import land_day
from bench.plain.compare import compare_day
from lakehouse.settings import Settings

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
ROOT = Path(__file__).resolve().parents[2]
TARGET_RATIO = 1.5
CONTENDERS = ("checked", "bare", "plain")


@app.command()
def main(
    clickstream: Annotated[int, typer.Option(help="Clickstream events in the day")] = 2_000_000,
    runs: Annotated[int, typer.Option(help="Rounds of the three contenders")] = 3,
    seed: Annotated[int, typer.Option(help="Generator seed")] = 7,
) -> None:
    """Land the day, then time the project (with and without checks) and the plain one."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-versus-"))
    day = datetime.now(UTC).date() - timedelta(days=1)
    lake, home, out = workdir / "lake", workdir / "home", workdir / "plain"
    try:
        landed = land_day(
            Settings(lakehouse_root=str(lake), lakehouse_home=home), day, clickstream, seed
        )
        env = {"LAKEHOUSE_ROOT": str(lake), "LAKEHOUSE_HOME": str(home)}
        rounds = []
        for number in range(runs):
            results = {name: _run(name, day, env, workdir, out) for name in CONTENDERS}
            console.print(
                f"round {number + 1}: "
                + ", ".join(f"{name} {result['work_s']:.1f} s" for name, result in results.items())
            )
            rounds.append(results)
        differences = {
            table: diff for table, diff in compare_day(str(lake), day, out).items() if diff
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {
        name: float(np.median([round_[name]["work_s"] for round_ in rounds])) for name in CONTENDERS
    }
    ratio = medians["checked"] / medians["plain"]
    config = {"clickstream": clickstream, "runs": runs, "seed": seed, "day": str(day)}
    document = {
        **envelope("versus", config),
        "bronze": landed,
        "rounds": rounds,
        "median_work_s": medians,
        "same_rows": not differences,
        "differences": differences,
        "ratio_checked_to_plain": ratio,
        "ratio_bare_to_plain": medians["bare"] / medians["plain"],
        "target_ratio": TARGET_RATIO,
        "met": not differences and ratio <= TARGET_RATIO,
    }
    _print(document)
    console.print(f"results: {write(document)}")
    if differences:
        raise typer.Exit(1)


def _run(name: str, day: Any, env: dict[str, str], workdir: Path, out: Path) -> dict[str, Any]:
    """One contender in its own process, its tree sampled; its result and measurements."""
    if name == "plain":
        command = ["-m", "bench.plain.child", env["LAKEHOUSE_ROOT"], day.isoformat(), str(out)]
    else:
        command = ["-m", "bench.scale.child", name, day.isoformat(), "plain"]
    quiet = wait_for_quiet(timeout=60)
    log = workdir / f"{name}.log"
    started = time.perf_counter()
    with log.open("wb") as stderr, console.status(f"{name}: bronze to gold for {day}"):
        child = subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        sampler = TreeSampler(child.pid).start()
        output, _ = child.communicate()
        sampler.stop()
    lines = output.decode().strip().splitlines()
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed:\n{log.read_text()[-3000:]}")
    return {
        **orjson.loads(lines[-1]),
        "wall_s": time.perf_counter() - started,
        "cpu_s": sampler.cpu_s,
        "peak_rss_mib": sampler.peak_rss_mib,
        "other_cores_before": quiet,
    }


def _print(document: dict[str, Any]) -> None:
    table = Table(
        title=f"one bronze day of {document['config']['clickstream']:,} clickstream events "
        "to 4 silver + 2 gold tables"
    )
    for column in ("contender", "work s (median)", "every round", "peak RSS GiB"):
        table.add_column(column, justify="right")
    labels = {
        "checked": "project, every check on",
        "bare": "project, no checks",
        "plain": "plain Polars pipeline",
    }
    for name in CONTENDERS:
        every = ", ".join(f"{round_[name]['work_s']:.1f}" for round_ in document["rounds"])
        peak = max(round_[name]["peak_rss_mib"] for round_ in document["rounds"]) / 1024
        table.add_row(labels[name], f"{document['median_work_s'][name]:.1f}", every, f"{peak:.2f}")
    console.print(table)
    verdict = "[green]met" if document["met"] else "[red]missed"
    console.print(
        f"same rows: {document['same_rows']}; project with checks / plain = "
        f"{document['ratio_checked_to_plain']:.2f}x (target <= {TARGET_RATIO}x): {verdict}[/]; "
        f"without checks {document['ratio_bare_to_plain']:.2f}x"
    )


if __name__ == "__main__":
    app()
