"""`python -m bench.checks`: the silver clickstream suite on one day, per way of running it.

1. Synthesise a clean silver clickstream day of `--rows` rows with DuckDB (the silver
   schema; unique event ids, ~20 events per session, product views with prices, 1% of
   devices missing) and write it to a Parquet file in a temporary folder.
2. For each option, in a fresh process (so peak RSS is that option's alone), load the day
   as the build would hand it over, run one small validation first (GX's import and
   context, about 5 s, are not the checks' cost), then time the suite on the day:
   - `pandas`: the day as an Arrow table, GX's pandas engine (today's path);
   - `duckdb`: the day staged in a DuckDB table (memory_limit `--memory-limit`, a spill
     folder), handed over as the build hands it (`duck.Staged`): GX's SQL engine over the
     builder's DuckDB database (quality/relation.py);
   - `chunks`: option 2's floor: GX's pandas engine on 1M-row record batches of the staged
     day, row-level expectations only (uniqueness and row count, which need the whole day,
     left out), so its real cost is higher than shown.
Results go to bench/results/checks-<UTC time>.json; docs/benchmarks.md records them.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.envelope import envelope, write

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
DAY = date(2026, 11, 22)
OPTIONS = ("pandas", "duckdb", "chunks")
CHUNK_ROWS = 1_000_000

_SYNTHESIS = """
COPY (
  SELECT
    md5(i::VARCHAR) AS event_id,
    TIMESTAMPTZ '2026-11-22 00:00:00+00' + to_microseconds((i * 8640000000 // {rows})::BIGINT)
      AS event_time,
    (i // 20) % 500000 AS user_id,
    md5('s' || (i // 20)::VARCHAR) AS session_id,
    CASE WHEN i % 3 = 0 THEN 'product_view' ELSE 'page_view' END AS event_type,
    CASE WHEN i % 3 = 0 THEN 'product'
         ELSE ['home', 'category', 'cart', 'checkout'][(i % 4) + 1] END AS page,
    CASE WHEN i % 3 = 0 THEN (hash(i) % 50000)::BIGINT END AS product_id,
    CASE WHEN i % 3 = 0 THEN 'category-' || (i % 40)::VARCHAR END AS category,
    CASE WHEN i % 3 = 0 THEN round((hash(i) % 100000) / 7.0, 2) END AS price,
    CASE WHEN i % 100 = 7 THEN NULL ELSE ['web', 'ios', 'android'][(i % 3) + 1] END AS device,
    CASE WHEN i % 5 = 0 THEN 'search' END AS referrer,
    CASE WHEN i % 10 = 0 THEN 'exp-1' END AS experiment_id,
    CASE WHEN i % 10 = 0 THEN ['control', 'treatment'][(i % 2) + 1] END AS variant,
    TIMESTAMPTZ '2026-11-22 00:00:00+00' + to_microseconds((i * 8640000000 // {rows})::BIGINT)
      + INTERVAL 2 SECOND AS _ingested_at,
    DATE '2026-11-22' AS event_date
  FROM range({rows}) AS t(i)
) TO '{path}' (FORMAT parquet)
"""


@app.command()
def main(
    rows: Annotated[int, typer.Option(help="Clickstream rows in the day")] = 10_000_000,
    options: Annotated[str, typer.Option(help="Comma-separated options to run")] = ",".join(
        OPTIONS
    ),
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory_limit")] = "2GB",
    only: Annotated[str, typer.Option(hidden=True)] = "",
    data: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    """Time the clickstream suite on one synthetic day, per option, each in its process."""
    if only:
        print(json.dumps(_measure(only, Path(data), memory_limit)))
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-checks-"))
    try:
        path = workdir / "clickstream.parquet"
        started = time.perf_counter()
        _synthesise(path, rows)
        console.print(f"day: {rows:,} rows in {time.perf_counter() - started:.1f} s")
        results = []
        for option in options.split(","):
            with console.status(f"{option}: validating {rows:,} rows"):
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.checks",
                        "--only",
                        option,
                        "--data",
                        str(path),
                        "--memory-limit",
                        memory_limit,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            if done.returncode != 0:
                console.print(f"[red]{option} failed[/]\n{done.stderr[-3000:]}")
                results.append({"option": option, "error": done.stderr[-3000:]})
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            console.print(
                f"{option}: {result['seconds']:.1f} s, peak {result['peak_rss_mib']:.0f} MiB"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    document = envelope("checks", {"rows": rows, "options": options, "memory_limit": memory_limit})
    document["results"] = results
    console.print(f"results: {write(document)}")
    _report(document)


def _synthesise(path: Path, rows: int) -> None:
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(_SYNTHESIS.format(rows=rows, path=path))


def _measure(option: str, path: Path, memory_limit: str) -> dict[str, Any]:
    """One option, in this process: load, warm up, validate; time and peak RSS."""
    import duckdb
    import pyarrow.parquet as pq

    from lakehouse.catalog import CATALOG
    from lakehouse.settings import Settings
    from lakehouse.transforms.duck import Staged
    from quality.checks import Suite
    from quality.suites import suite_for
    from quality.validate import validate

    spec = CATALOG.silver_for_topic("clickstream")
    suite = suite_for(spec)
    home = Path(tempfile.mkdtemp(prefix="bench-checks-lake-"))
    settings = Settings(lakehouse_root=str(home / "lake"), lakehouse_home=home / "home")
    # The day as the build hands it over.
    started = time.perf_counter()
    if option == "pandas":
        day: Any = pq.read_table(path).cast(spec.schema)
        warm: Any = day.slice(0, 1000)
    else:
        builder = duckdb.connect(
            config={"memory_limit": memory_limit, "temp_directory": str(home / "spill")}
        )
        builder.execute(f"CREATE TABLE staged AS SELECT * FROM read_parquet('{path}')")
        builder.execute("CREATE TABLE warm AS SELECT * FROM staged LIMIT 1000")
        day, warm = Staged(builder, "staged"), Staged(builder, "warm")
    load_s = time.perf_counter() - started
    validate(suite, warm, DAY, settings)  # GX's import and context: not the checks' cost
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    if option == "chunks":
        row_level = Suite(
            spec,
            tuple(
                check
                for check in suite.checks
                if not any(
                    "Unique" in e.type or "RowCount" in e.type or "TableColumns" in e.type
                    for e in check.expectations_for(settings, DAY)
                )
            ),
            suite.id_columns,
        )
        reader = day.relation().fetch_record_batch(CHUNK_ROWS)
        outcomes = []
        for batch in reader:
            import pyarrow as pa

            outcomes = validate(row_level, pa.Table.from_batches([batch]), DAY, settings)
    else:
        outcomes = validate(suite, day, DAY, settings)
    seconds = time.perf_counter() - started
    return {
        "option": option,
        "seconds": seconds,
        "load_seconds": load_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_before_checks_mib": rss_before,
        "checks": len(outcomes),
        "failed": [o.check.name for o in outcomes if not o.passed],
    }


def _report(document: dict[str, Any]) -> None:
    rows = document["config"]["rows"]
    table = Table(title=f"silver clickstream suite, {rows:,} rows")
    for column in (
        "option",
        "checks s",
        "load s",
        "peak RSS MiB",
        "RSS before checks MiB",
        "failed",
    ):
        table.add_column(column, justify="left" if column in ("option", "failed") else "right")
    for result in document["results"]:
        if "error" in result:
            table.add_row(result["option"], "error", "", "", "", "")
            continue
        table.add_row(
            result["option"],
            f"{result['seconds']:.1f}",
            f"{result['load_seconds']:.1f}",
            f"{result['peak_rss_mib']:.0f}",
            f"{result['peak_rss_before_checks_mib']:.0f}",
            ", ".join(result["failed"]) or "-",
        )
    console.print(table)


if __name__ == "__main__":
    app()
