"""The medallion's fixed cost on empty days: one day of e-commerce traffic in bronze, then
one `medallion` run over that day alone and one over it and the empty days after it.

What a backfill of one imported data set looks like (UCI Online Retail: purchases only,
19 of the 23 tables without input on every day): the difference between the two runs,
per asset and empty day, is what an empty day costs. Both runs are checked to succeed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
import typer
from rich.console import Console

from bench.envelope import envelope, write
from lakehouse.catalog import Domain
from lakehouse.settings import get_settings
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
FIRST_DAY = date(2026, 10, 1)


@app.command()
def main(
    days: Annotated[int, typer.Option(help="Days in the long run (the first holds data)")] = 12,
    events: Annotated[int, typer.Option(help="E-commerce events on the first day")] = 5_000,
    seed: Annotated[int, typer.Option(help="Generator seed")] = 7,
) -> None:
    """Land the first day, then time a one-day run and a `days`-day run over it."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-empty-days-"))
    # The job's resources and the daily partitions read the environment: set it first.
    os.environ["LAKEHOUSE_ROOT"] = str(workdir / "lake")
    os.environ["LAKEHOUSE_HOME"] = str(workdir / "home")
    os.environ["LAKEHOUSE_FIRST_DAY"] = FIRST_DAY.isoformat()
    os.environ.pop("DAGSTER_HOME", None)
    get_settings.cache_clear()
    start = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
    generator = make_generator(Domain.ECOMMERCE, seed=seed, start=start)
    try:
        landed = land_in_bronze(get_settings(), generator, events)
        one = _run(FIRST_DAY, FIRST_DAY)
        many = _run(FIRST_DAY, FIRST_DAY + timedelta(days=days - 1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assets = len(many["steps"])
    per_empty_day = (many["steps_s"] - one["steps_s"]) / ((days - 1) * assets)
    document = {
        **envelope("empty_days", {"days": days, "events": events, "seed": seed}),
        "bronze": landed,
        "one_day": one,
        "range": many,
        "assets": assets,
        "per_asset_and_empty_day_s": per_empty_day,
    }
    for name, run in (("1 day", one), (f"{days} days", many)):
        console.print(
            f"{name}: run {run['seconds']:.1f} s, steps {run['steps_s']:.1f} s, "
            f"slowest {max(run['steps'].items(), key=lambda item: item[1])}"
        )
    console.print(f"per asset and empty day: {per_empty_day * 1000:.0f} ms ({assets} assets)")
    console.print(f"results: {write(document)}")
    if not (one["success"] and many["success"]):
        raise typer.Exit(1)


def _run(first: date, last: date) -> dict[str, Any]:
    """One ranged `medallion` run in a throwaway instance: its wall time and each
    step's, from the run's own step events."""
    # Imported here: the daily partitions start where LAKEHOUSE_FIRST_DAY says at import.
    from orchestration.materialize import rebuild_days

    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        run = rebuild_days(first, last, instance=instance)
        seconds = time.perf_counter() - started
        bounds: dict[str, list[float]] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is not None and event.event_type_value in (
                "STEP_START",
                "STEP_SUCCESS",
                "STEP_FAILURE",
            ):
                bounds.setdefault(str(event.step_key), []).append(record.timestamp)
    steps = {key: times[-1] - times[0] for key, times in bounds.items()}
    return {
        "success": run.success,
        "seconds": seconds,
        "steps": steps,
        "steps_s": sum(steps.values()),
    }


if __name__ == "__main__":
    app()
