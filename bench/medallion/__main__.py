"""`python -m bench.medallion`: bronze to gold for one day of e-commerce traffic.

1. Generate a day of e-commerce traffic holding `--clickstream` clickstream events (plus
   the carts, searches and purchases that come with them), decode it with the ingest
   sidecar's own decoder and append it to bronze in commits of `INGEST_FLUSH_ROWS`
   (250K) rows, as ingest would (`tests/support/landing.py`).
2. Run the `medallion` job for that day over the e-commerce silver and gold assets,
   in process through Dagster (an ephemeral instance), `--runs` times (the first run
   creates the tables, later ones replace the day's partitions), and read each step's
   duration from the run's events. A run counts only if silver holds every clickstream
   event once, nothing was rejected and every gold table has rows. Its peak memory is the
   process's resident set sampled while the run executes (`TreeSampler`), not the
   process's lifetime peak (`ru_maxrss`), which the landing's generator would set.
Results go to bench/results/medallion-<UTC time>.json; docs/benchmarks.md records them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.engines.proctree import TreeSampler
from bench.envelope import envelope, summary, write
from lakehouse.catalog import CATALOG, REJECTED_ROWS, Domain
from lakehouse.delta import table_stats
from lakehouse.settings import Settings, get_settings
from orchestration.definitions import defs
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
ROOT = Path(__file__).resolve().parents[2]
TARGET_S = 60.0
CLICKSTREAM_SHARE = 0.888  # of e-commerce events, measured from the generator's output


@app.command()
def main(
    clickstream: Annotated[int, typer.Option(help="Clickstream events in the day")] = 10_000_000,
    seed: Annotated[int, typer.Option(help="Generator seed")] = 7,
    runs: Annotated[int, typer.Option(help="Medallion runs over the same day")] = 3,
    keep: Annotated[bool, typer.Option(help="Keep the temporary lake")] = False,
) -> None:
    """Land a day in bronze, then time the e-commerce silver and gold assets for it."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-medallion-"))
    # The job's resources read the environment, as under `dagster dev`: point it at the lake.
    os.environ["LAKEHOUSE_ROOT"] = str(workdir / "lake")
    os.environ["LAKEHOUSE_HOME"] = str(workdir / "home")
    get_settings.cache_clear()
    settings = get_settings()
    # Yesterday: always a daily partition, whatever the code location found at import.
    day = datetime.now(UTC).date() - timedelta(days=1)
    try:
        landed = land_day(settings, day, clickstream, seed)
        results = [_materialize(settings, day, landed) for _ in range(runs)]
    finally:
        if keep:
            console.print(f"lake kept at {settings.lake_root}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    config = {"clickstream": clickstream, "seed": seed, "day": day.isoformat(), "runs": runs}
    document = {
        **envelope("medallion", config),
        "bronze": landed,
        "runs": results,
        "seconds": summary(run["seconds"] for run in results),
        "target_s": TARGET_S,
    }
    document["met"] = document["seconds"]["p50"] <= TARGET_S and all(
        r["success"] for r in results
    )
    _print(document)
    console.print(f"results: {write(document)}")
    if not all(run["success"] for run in results):
        raise typer.Exit(1)


def land_day(settings: Settings, day: Any, clickstream: int, seed: int) -> dict[str, Any]:
    """Generate, decode and append to bronze in ingest-sized commits; return what landed.
    `bench.engines` lands its day with it too."""
    events = round(clickstream / CLICKSTREAM_SHARE)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    generator = make_generator(Domain.ECOMMERCE, seed=seed, start=start)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generate + decode + land in bronze", total=events)
        land_in_bronze(settings, generator, events, on_batch=lambda n: progress.advance(task, n))
    seconds = time.perf_counter() - started
    tables = {}
    for topic in CATALOG.topics_of(Domain.ECOMMERCE):
        stats = table_stats(CATALOG.bronze_for_topic(topic.name), settings)
        assert stats is not None
        tables[topic.name] = {"rows": stats.rows, "files": stats.files, "bytes": stats.bytes}
    console.print(f"bronze: {tables} in {seconds:.1f} s")
    return {"events": events, "seconds": seconds, "tables": tables}


def _materialize(settings: Settings, day: Any, landed: dict[str, Any]) -> dict[str, Any]:
    """One medallion run for the day over the e-commerce silver and gold assets."""
    graph = defs.resolve_asset_graph()
    selection = sorted(
        (
            key
            for key in graph.materializable_asset_keys
            if graph.get(key).group_name == Domain.ECOMMERCE.value
            and key.path[0] in ("silver", "gold")  # the domain's models are not medallion
        ),
        key=lambda key: key.to_user_string(),
    )
    job = defs.resolve_job_def("medallion")
    sampler = TreeSampler(os.getpid()).start()
    started = time.perf_counter()
    with console.status(f"materializing {len(selection)} e-commerce assets for {day}"):
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            asset_selection=selection,
            instance=dg.DagsterInstance.ephemeral(),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    seconds = time.perf_counter() - started
    sampler.stop()
    steps = {
        event.step_key: event.event_specific_data.duration_ms / 1000
        for event in result.all_events
        if event.event_type_value == "STEP_SUCCESS"
    }
    rows = {}
    for key in selection:
        stats = table_stats(CATALOG.table(".".join(key.path)), settings)
        rows[key.to_user_string()] = stats.rows if stats else 0
    rejected = table_stats(REJECTED_ROWS, settings)
    checks = {
        "silver keeps every clickstream event once": rows["silver/clickstream"]
        == landed["tables"]["clickstream"]["rows"],
        "no row rejected": rejected is not None and rejected.rows == 0,
        "every gold table has rows": all(n > 0 for k, n in rows.items() if k[:4] == "gold"),
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        console.print(f"[red]run not counted, checks failed:[/] {failed}; rows {rows}")
    console.print(f"run: {seconds:.1f} s")
    return {
        "success": result.success and not failed,
        "seconds": seconds,
        "steps_s": steps,
        "rows": rows,
        "peak_rss_mib": sampler.peak_rss_mib,
    }


def _print(document: dict[str, Any]) -> None:
    runs = sorted(document["runs"], key=lambda run: run["seconds"])
    run = runs[len(runs) // 2]
    table = Table(title=f"bronze to gold, {document['config']['clickstream']:,} clickstream events")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("rows out", justify="right")
    for step, seconds in sorted(run["steps_s"].items(), key=lambda item: -item[1]):
        key = step.replace("__", "/")
        rows = run["rows"].get(key)
        table.add_row(step, f"{seconds:.1f}", f"{rows:,}" if rows is not None else "")
    table.add_row("[bold]whole run (median)", f"[bold]{run['seconds']:.1f}", "")
    console.print(table)
    verdict = "[green]met" if document["met"] else "[red]missed"
    every = ", ".join(f"{r['seconds']:.1f}" for r in document["runs"])
    console.print(
        f"runs: {every} s; target <= {TARGET_S:.0f} s: {verdict}[/]; "
        f"peak RSS {max(r['peak_rss_mib'] for r in runs):.0f} MiB"
    )


if __name__ == "__main__":
    app()
