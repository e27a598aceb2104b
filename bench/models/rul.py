"""`python -m bench.models.rul`: the remaining-useful-life model on NASA C-MAPSS FD001
(`REAL_DATA_DIR`/cmapss), judged on the 100 test engines against the baselines and the
published figures (`lakehouse.models.rul`, docs/models.md).

Loads the three files, trains as `evaluate_rul` does (hyper-parameters chosen on a split of
the training engines, refit on all of them), and prints the comparison with the
literature, the validation grid and every metric. The figures are deterministic (seeded,
one thread). Results go to bench/results/models.rul-<UTC time>.json; `--chart` also
saves the predicted-vs-true PNG.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.envelope import envelope, write
from lakehouse.models.rul import RUL_CAP, WINDOW_CYCLES, RulReport, evaluate_rul, load_fd001
from lakehouse.settings import Settings

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    chart: Annotated[
        Path | None, typer.Option(help="Save the predicted-vs-true chart (PNG) here")
    ] = None,
) -> None:
    """Train and evaluate on FD001; print and save the figures."""
    settings = Settings()
    started = time.perf_counter()
    data = load_fd001(settings)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = evaluate_rul(data.train, data.test, data.test_rul)
    seconds = time.perf_counter() - started
    _print(report, seconds)
    if chart is not None:
        chart.write_bytes(report.charts["predicted vs true RUL"])
        console.print(f"chart: {chart}")
    document = {
        **envelope("models.rul", {"data": str(settings.real_data_dir / "cmapss")}),
        **_result(report, load_seconds, seconds),
    }
    console.print(f"results: {write(document)}")


def _result(report: RulReport, load_seconds: float, seconds: float) -> dict[str, Any]:
    """What the result file keeps: the timings, choice, metrics and comparison."""
    return {
        "load_seconds": load_seconds,
        "train_and_evaluate_seconds": seconds,
        "fit_seconds": report.fit_seconds,
        "rul_cap": RUL_CAP,
        "window_cycles": WINDOW_CYCLES,
        "sensors": list(report.sensors),
        "hyperparameters": report.choice.hyperparameters,
        "rounds": report.choice.rounds,
        "trials": report.choice.trials,
        "metrics": report.metrics,
        "comparison": report.comparison,
        "predictions": {name: values.tolist() for name, values in report.predictions.items()},
        "true_rul": report.true_rul.tolist(),
    }


def _print(report: RulReport, seconds: float) -> None:
    """The comparison with the literature, then the validation grid."""
    table = Table(
        title=f"C-MAPSS FD001, 100 test engines at their last cycle ({seconds:.1f} s); "
        f"'capped': true RUL capped at {RUL_CAP}"
    )
    for column in ("model", "source", "RMSE", "RMSE capped", "NASA score", "NASA capped"):
        table.add_column(column, justify="left" if column in ("model", "source") else "right")
    for row in report.comparison:
        cells = (row["rmse"], row["rmse_capped"], row["nasa_score"], row["nasa_score_capped"])
        table.add_row(
            row["model"], row["source"], *("" if cell is None else f"{cell:.2f}" for cell in cells)
        )
    console.print(table)
    grid = Table(title="Validation engines (20% of training units), every cycle, capped RUL")
    for column in ("max_depth", "min_child_weight", "rounds", "validation RMSE"):
        grid.add_column(column, justify="right")
    for trial in report.choice.trials:
        grid.add_row(
            str(trial["max_depth"]),
            f"{trial['min_child_weight']:g}",
            str(trial["rounds"]),
            f"{trial['validation_rmse']:.3f}",
        )
    console.print(grid)
    console.print(
        f"chosen: {report.choice.hyperparameters}, {report.choice.rounds} rounds; "
        f"refit on every training engine in {report.fit_seconds:.1f} s"
    )


if __name__ == "__main__":
    app()
