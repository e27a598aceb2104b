"""`python -m bench.engines`: the same gold build for one e-commerce day on DuckDB and on
Spark, side by side.

1. Land a day holding `--clickstream` clickstream events in bronze exactly as
   `bench.medallion` does (`land_day`: the generator, the ingest decoder, 250K-row
   commits), then copy that bronze to a second lake, so each engine starts from the same
   files and writes its own silver and gold.
2. Per engine, after waiting for a quiet machine, one child process
   (`bench/engines/child.py`) builds silver clickstream, cart_events and purchases and
   gold.product_daily for the day. Wall time is the child's life (imports and, for Spark,
   the JVM's start included; the session start is also reported apart); peak memory is
   the summed RSS of the child's process tree (the Python driver and the Spark JVM),
   sampled every 100 ms; CPU is the tree's, and the load others added is recorded.
3. The two gold days must hold the same rows (integers and strings equal, doubles within
   1e-9 relative, revenue, rounded to cents by each engine, within a cent), and the
   silver row counts must agree; otherwise the run does not count.

Results go to bench/results/engines-<UTC time>.json; docs/benchmarks.md records them.
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
import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.console import Console
from rich.table import Table

from bench.engines.proctree import TreeSampler
from bench.envelope import envelope, write
from bench.ingest.procstat import wait_for_quiet
from bench.medallion.__main__ import land_day
from lakehouse.catalog import CATALOG, GOLD_PRODUCT_DAILY
from lakehouse.delta import open_table, table_stats
from lakehouse.settings import Settings, get_settings

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("duckdb", "spark")
TOPICS = ("clickstream", "cart_events", "purchases")


@app.command()
def main(
    clickstream: Annotated[int, typer.Option(help="Clickstream events in the day")] = 10_000_000,
    seed: Annotated[int, typer.Option(help="Generator seed")] = 7,
    spark_master: Annotated[str, typer.Option(help="SPARK_MASTER of the Spark run")] = "local[2]",
    driver_memory: Annotated[str, typer.Option(help="SPARK_DRIVER_MEMORY")] = "4g",
    keep: Annotated[bool, typer.Option(help="Keep the temporary lakes")] = False,
) -> None:
    """Land a day, build its gold on both engines, compare the rows, report time and memory."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    lakes = {engine: workdir / engine for engine in ENGINES}
    os.environ["LAKEHOUSE_ROOT"] = str(lakes["duckdb"])
    os.environ["LAKEHOUSE_HOME"] = str(workdir / "home")
    get_settings.cache_clear()
    day = datetime.now(UTC).date() - timedelta(days=1)
    spark_env = {
        "SPARK_MASTER": spark_master,
        "SPARK_DRIVER_MEMORY": driver_memory,
        "SPARK_CONF": orjson.dumps(
            {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
        ).decode(),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    try:
        landed = land_day(get_settings(), day, clickstream, seed)
        shutil.copytree(lakes["duckdb"], lakes["spark"])
        runs = {
            engine: _run(
                engine, day, lakes[engine], workdir, spark_env if engine == "spark" else {}
            )
            for engine in ENGINES
        }
        check = _compare(lakes, day)
    finally:
        if keep:
            console.print(f"lakes kept under {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    bronze_rows = sum(landed["tables"][topic]["rows"] for topic in TOPICS)
    for run in runs.values():
        run["bronze_rows_per_s"] = bronze_rows / run["wall_s"]
        run["bronze_rows_per_cpu_s"] = bronze_rows / run["cpu_s"] if run["cpu_s"] else None
    config = {
        "clickstream": clickstream,
        "seed": seed,
        "day": day.isoformat(),
        "spark_master": spark_master,
        "spark_driver_memory": driver_memory,
        "gold_table": GOLD_PRODUCT_DAILY.name,
        "topics": list(TOPICS),
    }
    document = {
        **envelope("engines", config),
        "bronze": landed,
        "bronze_rows": bronze_rows,
        "engines": runs,
        "check": check,
    }
    document["success"] = check["ok"] and all(run["returncode"] == 0 for run in runs.values())
    _print(document)
    console.print(f"results: {write(document)}")
    if not document["success"]:
        raise typer.Exit(1)


def _run(
    engine: str, day: Any, lake: Path, workdir: Path, extra_env: dict[str, str]
) -> dict[str, Any]:
    """One engine's child process, its tree sampled; its result and the measurements."""
    quiet = wait_for_quiet(timeout=60)
    env = {
        **os.environ,
        "LAKEHOUSE_ROOT": str(lake),
        "LAKEHOUSE_HOME": str(workdir / "home"),
        "LAKEHOUSE_ENGINE": "spark" if engine == "spark" else "local",
        **extra_env,
    }
    log = workdir / f"{engine}.log"
    started = time.perf_counter()
    with log.open("wb") as stderr, console.status(f"{engine}: silver + gold for {day}"):
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.engines.child", engine, day.isoformat()],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        sampler = TreeSampler(child.pid).start()
        out, _ = child.communicate()
        sampler.stop()
    wall = time.perf_counter() - started
    lines = out.decode().strip().splitlines()
    if child.returncode != 0 or not lines:
        console.print(f"[red]{engine} failed[/]:\n{log.read_text()[-3000:]}")
        return {
            "returncode": child.returncode,
            "wall_s": wall,
            "cpu_s": sampler.cpu_s,
            "peak_rss_mib": sampler.peak_rss_mib,
        }
    result = orjson.loads(lines[-1])
    cores = os.cpu_count() or 1
    console.print(f"{engine}: {wall:.1f} s, peak tree RSS {sampler.peak_rss_mib:,.0f} MiB")
    return {
        **result,
        "returncode": child.returncode,
        "wall_s": wall,
        "cpu_s": sampler.cpu_s,
        "cores_used": sampler.cpu_s / wall,
        "peak_rss_mib": sampler.peak_rss_mib,
        "processes": sampler.processes_seen,
        "other_cores_before": quiet,
        "other_cores_during": sampler.other_cores(wall, cores),
    }


def _gold_day(lake: Path, day: Any) -> pa.Table:
    settings = Settings(lakehouse_root=str(lake))
    table = open_table(GOLD_PRODUCT_DAILY, settings)
    if table is None:
        return GOLD_PRODUCT_DAILY.schema.empty_table()
    rows = table.to_pyarrow_table(filters=[("event_date", "=", day)])
    return rows.select(GOLD_PRODUCT_DAILY.schema.names).sort_by("product_id")


def _silver_rows(lake: Path, topic: str) -> int:
    stats = table_stats(CATALOG.silver_for_topic(topic), Settings(lakehouse_root=str(lake)))
    return 0 if stats is None else stats.rows


def _compare(lakes: dict[str, Path], day: Any) -> dict[str, Any]:
    """Whether both engines wrote the same silver counts and the same gold rows."""
    silver = {topic: {e: _silver_rows(lakes[e], topic) for e in ENGINES} for topic in TOPICS}
    duck, spark = (_gold_day(lakes[e], day) for e in ENGINES)
    differences: dict[str, int] = {}
    if duck.num_rows == spark.num_rows:
        for name in duck.schema.names:
            left, right = duck[name], spark[name]
            if pa.types.is_floating(left.type):
                tolerance = 0.0100001 if name == "revenue" else 0.0
                a = left.to_numpy(zero_copy_only=False).astype(float)
                b = right.to_numpy(zero_copy_only=False).astype(float)
                same = np.isclose(a, b, rtol=1e-9, atol=tolerance, equal_nan=True)
                differences[name] = int((~same).sum())
                if name == "revenue":
                    differences["revenue (exact)"] = int((a != b).sum())
            else:
                equal = pc.fill_null(pc.equal(left, right), False)
                both_null = pc.and_(pc.is_null(left), pc.is_null(right))
                differences[name] = int(pc.sum(pc.invert(pc.or_(equal, both_null))).as_py() or 0)
    ok = (
        duck.num_rows == spark.num_rows
        and duck.num_rows > 0
        and all(n == 0 for k, n in differences.items() if k != "revenue (exact)")
        and all(
            len(set(counts.values())) == 1 and min(counts.values()) > 0
            for counts in silver.values()
        )
    )
    return {
        "ok": ok,
        "gold_rows": {"duckdb": duck.num_rows, "spark": spark.num_rows},
        "differing_values": differences,
        "silver_rows": silver,
    }


def _print(document: dict[str, Any]) -> None:
    runs = document["engines"]
    table = Table(
        title=f"one day's silver + gold.product_daily, "
        f"{document['config']['clickstream']:,} clickstream events "
        f"({document['bronze_rows']:,} bronze rows)"
    )
    table.add_column("figure")
    for engine in ENGINES:
        table.add_column(engine, justify="right")

    def row(label: str, key: str, fmt: str) -> None:
        table.add_row(
            label,
            *(
                format(runs[e].get(key), fmt) if runs[e].get(key) is not None else ""
                for e in ENGINES
            ),
        )

    stages = sorted({s for e in ENGINES for s in runs[e].get("stages_s", {})})
    for stage in stages:
        table.add_row(
            f"  {stage}, s",
            *(
                f"{runs[e]['stages_s'][stage]:.1f}" if stage in runs[e].get("stages_s", {}) else ""
                for e in ENGINES
            ),
        )
    row("wall, s (process start to exit)", "wall_s", ".1f")
    row("CPU, s (process tree)", "cpu_s", ".1f")
    row("peak RSS, MiB (process tree)", "peak_rss_mib", ",.0f")
    row("bronze rows/s (wall)", "bronze_rows_per_s", ",.0f")
    row("bronze rows per CPU second", "bronze_rows_per_cpu_s", ",.0f")
    row("other load before, cores", "other_cores_before", ".2f")
    row("other load during, cores", "other_cores_during", ".2f")
    console.print(table)
    check = document["check"]
    verdict = "[green]same rows" if check["ok"] else "[red]DIFFERENT"
    console.print(
        f"gold rows {check['gold_rows']}; differing values {check['differing_values']}; "
        f"silver rows {check['silver_rows']}: {verdict}[/]; "
        f"Spark gold transform: {runs['spark'].get('gold_transform')}"
    )


if __name__ == "__main__":
    app()
