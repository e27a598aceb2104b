"""`python -m bench.retail`: every recommender candidate on UCI Online Retail.

Loads the order lines from `REAL_DATA_DIR` (`online_retail`), runs
`lakehouse.models.retail_evaluation.evaluate_candidates` (the Dagster asset
`evaluations/online_retail_recommenders` runs the very same function): each grid judged
on the validation month, each family's best settings refit on everything before the test
month and judged once on it, the champion chosen on validation precision@10. Prints every
validation trial and the comparison, and writes them to bench/results/retail-<UTC time>.json.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.envelope import envelope, write
from lakehouse.models.real_data import online_retail
from lakehouse.models.retail_evaluation import (
    RetailEvaluation,
    comparison_rows,
    evaluate_candidates,
)
from lakehouse.settings import Settings

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    show_trials: Annotated[
        bool, typer.Option(help="Also print every validation trial of every grid")
    ] = True,
) -> None:
    """Run the evaluation, print it and save it."""
    started = time.perf_counter()
    events = online_retail(Settings()).events
    result = evaluate_candidates(events)
    seconds = time.perf_counter() - started
    if show_trials:
        console.print(trials_table(result))
    console.print(comparison_table(result, events.num_rows, seconds))
    document = envelope("retail", {"show_trials": show_trials})
    document |= as_json(result, events.num_rows, seconds)
    console.print(f"results: {write(document)}")


def trials_table(result: RetailEvaluation) -> Table:
    """Every candidate setting on the validation month, in grid order."""
    table = Table(title=f"Validation month from {result.validation_start.date()}")
    for column in ("candidate", "settings", "P@10", "R@10", "coverage", "users", "fit s"):
        table.add_column(column, justify="left" if column in ("candidate", "settings") else "right")
    for trial in result.trials:
        figures = trial.evaluation
        table.add_row(
            trial.candidate.family,
            _settings(trial.candidate.settings),
            f"{figures.precision:.4f}",
            f"{figures.recall:.4f}",
            f"{figures.coverage:.1%}",
            str(figures.users),
            f"{trial.fit_seconds:.2f}",
        )
    return table


def comparison_table(result: RetailEvaluation, lines: int, seconds: float) -> Table:
    """Each family at its validation-chosen settings: validation and test side by side."""
    table = Table(
        title=f"UCI Online Retail ({lines:,} order lines): test month from "
        f"{result.test_start.date()}, champion {result.champion} (on validation), "
        f"{seconds:.0f} s in all"
    )
    columns = ("candidate", "settings", "val P@10", "val R@10", "val cov", "test P@10",
               "test R@10", "test cov", "test / popularity")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:2] else "right")
    for row in comparison_rows(result):
        table.add_row(
            row["candidate"] + (" *" if row["champion"] else ""),
            row["settings"],
            f"{row['validation_precision_at_10']:.4f}",
            f"{row['validation_recall_at_10']:.4f}",
            f"{row['validation_coverage']:.1%}",
            f"{row['test_precision_at_10']:.4f}",
            f"{row['test_recall_at_10']:.4f}",
            f"{row['test_coverage']:.1%}",
            f"{row['test_over_popularity']:.2f}x",
        )
    return table


def as_json(result: RetailEvaluation, lines: int, seconds: float) -> dict[str, Any]:
    """The figures for the results file: the comparison and every validation trial."""
    return {
        "order_lines": lines,
        "seconds": seconds,
        "validation_start": result.validation_start.isoformat(),
        "test_start": result.test_start.isoformat(),
        "champion": result.champion,
        "candidates": comparison_rows(result),
        "trials": [
            {
                "candidate": trial.candidate.family,
                "settings": trial.candidate.settings,
                **asdict(trial.evaluation),
                "fit_seconds": trial.fit_seconds,
            }
            for trial in result.trials
        ],
    }


def _settings(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items()) or "-"


if __name__ == "__main__":
    app()
