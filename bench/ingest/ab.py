"""`python -m bench.ingest.ab`: two versions of the sidecar, drained in turn on one topic.

On a shared machine the load of other sessions moves the figures of `python -m
bench.ingest` from one invocation to the next; an A/B comparison is only fair within one
session. This produces the traffic once, then drains it with each code tree in turn
(alternating the order every round), with the same harness, verification and figures as
`bench.ingest` (its wait for a quiet machine is skipped: the comparison is the point).
A tree is a checkout of this repository, e.g. the old code from `git worktree add
/tmp/old <commit>` or `git archive <commit> | tar -x -C /tmp/old`; its own
`bench.ingest.child` and sidecar run, under this interpreter.

    .venv/bin/python -m bench.ingest.ab old=/tmp/old new=. --events 2000000 --rounds 3
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from bench.ingest import harness, throughput
from bench.ingest.harness import create_topics, lake_settings, running_broker
from bench.ingest.throughput import produce_traffic, throughput_run

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    trees: Annotated[list[str], typer.Argument(help="NAME=PATH of each code tree")],
    events: Annotated[int, typer.Option(help="Clickstream messages to produce")] = 2_000_000,
    poison_rate: Annotated[float, typer.Option(help="Share of poison messages")] = 0.001,
    rounds: Annotated[int, typer.Option(help="Drains per tree")] = 3,
) -> None:
    """Drain one produced topic `rounds` times per tree, alternating; print medians."""
    paths = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in trees)}
    throughput.wait_for_quiet = lambda: 0.0  # type: ignore[assignment]
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-ab-"))
    runs: dict[str, list[throughput.ThroughputRun]] = {name: [] for name in paths}
    try:
        with running_broker(workdir, "ab") as broker:
            assert broker.process is not None
            settings = lake_settings(workdir, "producer", broker.bootstrap)
            create_topics(settings)
            produced = produce_traffic(
                settings, events, broker.process.pid, poison_rate=poison_rate
            )
            index = 0
            for round_ in range(rounds):
                order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
                for name in order:
                    harness.REPO = paths[name]  # the child runs from this tree
                    index += 1
                    run = throughput_run(
                        workdir, broker.bootstrap, broker.process.pid, index, produced
                    )
                    runs[name].append(run)
                    typer.echo(
                        f"{name}: {run.events_per_s:,.0f} events/s, "
                        f"{run.cpu_us_per_event:.2f} µs CPU/event, "
                        f"GC {100 * run.gc_pause_s / run.seconds:.1f}%, "
                        f"other load {run.other_cores_busy:.2f} cores, "
                        f"{'verified' if run.check.ok else run.check.problems}"
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for name, measured in runs.items():
        rates = [run.events_per_s for run in measured]
        cpu = statistics.median(run.cpu_us_per_event for run in measured)
        typer.echo(
            f"{name} median: {statistics.median(rates):,.0f} events/s "
            f"({min(rates):,.0f}-{max(rates):,.0f}), {cpu:.2f} µs CPU/event"
        )


if __name__ == "__main__":
    app()
