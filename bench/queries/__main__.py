"""`python -m bench.queries`: the documented IoT queries over a year of gold sensor_hourly.

1. Generate `--sensors` x `--days` x 24 hourly aggregates (seeded) into a temporary lake,
   as gold `sensor_hourly` partitioned by event_date, in a few large appends.
2. Per example query: a cold run (fresh connection, table registration included), then
   `--repeats` warm runs; every answer is checked, so a fast wrong answer cannot pass.
3. EXPLAIN ANALYZE for any query over the 300 ms p50 target.
Results go to bench/results/queries-<UTC time>.json; docs/benchmarks.md records them.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.envelope import envelope, write
from bench.queries.data import SPEC, Fleet, make_fleet, write_year
from bench.queries.examples import Example, examples
from bench.queries.measure import READERS, QueryTiming, Registration, explain, time_example
from lakehouse.catalog import Catalog
from lakehouse.delta import table_stats
from lakehouse.query import connect
from lakehouse.settings import Settings

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "queries.md"
TARGET_P50_S = 0.300


@app.command()
def main(
    sensors: Annotated[int, typer.Option(help="Sensors (4 per device)")] = 1000,
    days: Annotated[int, typer.Option(help="Days of hourly aggregates, ending yesterday")] = 365,
    repeats: Annotated[int, typer.Option(help="Warm runs per query")] = 15,
    threads: Annotated[int, typer.Option(help="DuckDB threads (0: DuckDB's default)")] = 0,
    readers: Annotated[
        str, typer.Option(help="Comma-separated: arrow (lakehouse.query today), parquet")
    ] = "arrow,parquet",
    seed: Annotated[int, typer.Option(help="Data generator seed")] = 7,
    keep: Annotated[bool, typer.Option(help="Keep the temporary lake")] = False,
) -> None:
    """Time each documented query cold and warm against the <= 300 ms p50 target."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-queries-"))
    settings = Settings(lakehouse_root=str(workdir / "lake"))
    fleet = make_fleet(sensors, seed)
    chosen = [reader.strip() for reader in readers.split(",") if reader.strip()]
    if unknown := set(chosen) - set(READERS):
        raise typer.BadParameter(f"unknown readers {sorted(unknown)}; known: {READERS}")
    config = {
        "sensors": fleet.sensors,
        "days": days,
        "repeats": repeats,
        "threads": threads or None,
        "seed": seed,
        "readers": chosen,
    }
    console.print(f"[bold]query benchmark[/] {config}; lake {settings.lake_root}")
    try:
        data = _write(settings, fleet, days, seed)
        months = _months(data["first_day"], days)
        queries = examples(fleet, days, months)
        _check_cli_path(settings, queries[0])
        results = {
            reader: _measure(settings, queries, repeats, threads or None, reader)
            for reader in chosen
        }
    finally:
        if keep:
            console.print(f"lake kept at {settings.lake_root}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document = {
        **envelope("queries", config),
        "data": data,
        "readers": {
            reader: {
                "registration": _registration_summary(registrations),
                "queries": [_query_summary(t, e) for t, e in zip(timings, queries, strict=True)],
                "plans_over_target": plans,
            }
            for reader, (timings, registrations, plans) in results.items()
        },
        "docs_mismatch": _docs_mismatch(queries),
    }
    _print(document)
    _save(document)
    if any(t.problem for timings, _, _ in results.values() for t in timings):
        raise typer.Exit(1)


def _measure(
    settings: Settings, queries: list[Example], repeats: int, threads: int | None, reader: str
) -> tuple[list[QueryTiming], list[Registration], dict[str, str]]:
    """Every example through one reader; EXPLAIN ANALYZE for those over target."""
    console.rule(f"reader: {reader}")
    timings, registrations = [], []
    for example in queries:
        timing, registration = time_example(example, settings, repeats, threads, reader)
        timings.append(timing)
        registrations.append(registration)
        console.print(f"  {example.key}: warm p50 {timing.warm_stats()['p50'] * 1e3:.1f} ms")
    plans = {
        t.key: explain(settings, e.sql, threads, reader)
        for t, e in zip(timings, queries, strict=True)
        if t.warm_stats()["p50"] > TARGET_P50_S
    }
    return timings, registrations, plans


def _write(settings: Settings, fleet: Fleet, days: int, seed: int) -> dict[str, Any]:
    """Generate and write the year with a progress bar; return its size and cost."""
    total = fleet.sensors * days * 24
    start = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generate + write sensor_hourly", total=total)
        first = write_year(settings, fleet, days, seed, lambda rows: progress.advance(task, rows))
    seconds = time.perf_counter() - start
    stats = table_stats(SPEC, settings)
    assert stats is not None and stats.rows == total, f"wrote {stats}, expected {total} rows"
    console.print(
        f"wrote {stats.rows:,} rows in {stats.files} files, "
        f"{stats.bytes / 2**20:.0f} MiB, {stats.version + 1} commits, {seconds:.1f} s"
    )
    return {
        "rows": stats.rows,
        "files": stats.files,
        "bytes": stats.bytes,
        "commits": stats.version + 1,
        "write_s": seconds,
        "first_day": first.isoformat(),
        "failing_devices": [fleet.device_ids[d] for d in fleet.failing],
        "drifting_devices": [fleet.device_ids[d] for d in fleet.drifting],
    }


def _months(first_day: str, days: int) -> int:
    """Calendar months the data touches (for the month-over-month row count)."""
    first = date.fromisoformat(first_day)
    last = date.fromordinal(first.toordinal() + days - 1)
    return (last.year - first.year) * 12 + last.month - first.month + 1


def _check_cli_path(settings: Settings, example: Example) -> None:
    """The same table through `lakehouse.query.connect`, as the CLI will see it."""
    connection = connect(settings, Catalog(tables={SPEC.key: SPEC}))
    try:
        problem = example.check(connection.sql(example.sql).to_arrow_table())
    finally:
        connection.close()
    if problem:
        raise RuntimeError(f"through lakehouse.query.connect: {problem}")


def _stats_ms(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value * 1e3, 2) for key, value in values.items()}


def _registration_summary(registrations: list[Registration]) -> dict[str, Any]:
    """Per-step registration cost, median over the cold connections."""

    def median(values: list[float]) -> float:
        return round(sorted(values)[len(values) // 2] * 1e3, 2)

    return {
        "open_table_ms": median([r.open_table_s for r in registrations]),
        "dataset_ms": median([r.dataset_s for r in registrations]),
        "view_ms": median([r.view_s for r in registrations]),
        "total_ms": median([r.total_s for r in registrations]),
        "samples": len(registrations),
    }


def _query_summary(timing: QueryTiming, example: Example) -> dict[str, Any]:
    warm = timing.warm_stats()
    return {
        "key": timing.key,
        "question": example.question,
        "sql": example.sql,
        "rows": timing.rows,
        "cold_ms": round(timing.cold_s * 1e3, 2),
        "cold_query_ms": round(timing.cold_query_s * 1e3, 2),
        "warm_ms": _stats_ms(warm),
        "warm_runs": len(timing.warm_s),
        "checked": timing.problem is None,
        "problem": timing.problem,
        "meets_target": timing.problem is None and warm["p50"] <= TARGET_P50_S,
    }


def _docs_mismatch(queries: list[Example]) -> list[str]:
    """Examples whose SQL is not in docs/queries.md verbatim (the docs must stay runnable)."""
    text = DOCS.read_text() if DOCS.exists() else ""
    return [example.key for example in queries if example.sql not in text]


def _print(document: dict[str, Any]) -> None:
    for reader, result in document["readers"].items():
        _print_reader(reader, result, document["data"])
    if document["docs_mismatch"]:
        console.print(
            f"[yellow]SQL not found verbatim in docs/queries.md:[/] {document['docs_mismatch']}"
        )


def _print_reader(reader: str, result: dict[str, Any], data: dict[str, Any]) -> None:
    registration = result["registration"]
    console.print(
        f"[bold]{reader}[/] registration (open Delta table + dataset or file list + view), "
        f"median of {registration['samples']}: {registration['total_ms']:.1f} ms = "
        f"{registration['open_table_ms']:.1f} + {registration['dataset_ms']:.1f} + "
        f"{registration['view_ms']:.1f}"
    )
    table = Table(
        title=f"{reader}: DuckDB over gold sensor_hourly ({data['rows']:,} rows, "
        f"{data['files']} files), target p50 <= 300 ms"
    )
    for column in (
        "query",
        "rows",
        "cold ms",
        "cold query ms",
        "warm p50",
        "p99",
        "min",
        "max",
        "checked",
        "target",
    ):
        table.add_column(column, justify="left" if column == "query" else "right")
    for query in result["queries"]:
        warm = query["warm_ms"]
        table.add_row(
            query["key"],
            f"{query['rows']:,}",
            f"{query['cold_ms']:.1f}",
            f"{query['cold_query_ms']:.1f}",
            f"{warm['p50']:.1f}",
            f"{warm['p99']:.1f}",
            f"{warm['min']:.1f}",
            f"{warm['max']:.1f}",
            "yes" if query["checked"] else f"[red]{query['problem']}[/]",
            "[green]met[/]" if query["meets_target"] else "[red]missed[/]",
        )
    console.print(table)
    for key, plan in result["plans_over_target"].items():
        console.rule(f"EXPLAIN ANALYZE {key} ({reader})")
        console.print(plan, markup=False, highlight=False)


def _save(document: dict[str, Any]) -> None:
    path = write(document)
    console.print(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    app()
