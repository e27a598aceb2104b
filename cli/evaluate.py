"""`lakehouse evaluate real-data`: the models judged on public data (the on-demand
`real_data_evaluations` job) from a shell, with their headline figures as a table.

The job runs in this process against the profile's Dagster instance, as `lakehouse
materialize` and `lakehouse train` run theirs, so the run shows in the UI afterwards with
its full metadata (comparison tables, charts). The table printed here is read from that
run's materialization events: the figures the run recorded, never recomputed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.views import cell

if TYPE_CHECKING:
    from orchestration.materialize import Figure

evaluate_app = typer.Typer(
    help="Judge the models on public data (REAL_DATA_DIR and the imported lines in silver).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)


@evaluate_app.command("real-data")
def real_data(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this evaluation, by the last part of its asset key (repeatable; "
            "default: all of the job's)",
        ),
    ] = None,
) -> None:
    """Run the `real_data_evaluations` job (RUL on C-MAPSS, NAB's machine temperature, the
    recommenders on the imported Online Retail lines) and print each one's headline figures."""
    from orchestration.materialize import evaluate_real_data, evaluation_names

    names = evaluation_names()
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise typer.BadParameter(
            f"unknown evaluation {', '.join(unknown)}; known: {', '.join(names)}",
            param_hint="--only",
        )
    chosen = {names[name] for name in only or ()}
    which = ", ".join(sorted(only)) if only else ", ".join(names)
    with console.status(f"evaluating on real data: {which} (minutes for all three)"):
        run = evaluate_real_data(chosen or None)
    for view in figures_views(run.figures):
        console.print(view)
    if not run.success:
        for failure in run.failures:
            err_console.print(f"[red]{escape(failure)}[/]")
        err_console.print(
            f"[red]run {run.run_id} of {run.job} FAILED[/]: see its logs in the Dagster UI "
            "(`dagster dev`)"
        )
        raise typer.Exit(code=1)
    console.print(f"[green]run {run.run_id} of {run.job} succeeded[/]")


def figures_views(figures: tuple[Figure, ...]) -> list[Table]:
    """A table per evaluation, titled with its asset key: each headline figure's label
    (the metadata entry of that name is in the UI) and its value, in the headline order."""
    views: dict[str, Table] = {}
    for figure in figures:
        view = views.get(figure.asset)
        if view is None:
            view = views[figure.asset] = Table(title=figure.asset, title_justify="left")
            view.add_column("figure")
            view.add_column("value", justify="right", no_wrap=True)
        value = figure.value
        view.add_row(figure.label, f"{value:.4f}" if isinstance(value, float) else cell(value))
    return list(views.values())
