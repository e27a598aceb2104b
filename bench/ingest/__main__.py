"""`python -m bench.ingest`: the Kafka-to-bronze benchmark, end to end, in one command.

1. Throughput: a broker on a free port, N clickstream events (0.1% poison) produced once,
   then `--runs` drains by one ingest process each into a fresh lake, each verified.
2. Profile: one more drain with py-spy attached (not counted in the figures).
3. Freshness: live events at a steady rate with a 10 s flush; produce-to-visible p50/p99.
Results go to bench/results/ingest-<UTC time>.json; docs/benchmarks.md records them.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bench.envelope import envelope, write
from bench.ingest import report
from bench.ingest.harness import create_topics, lake_settings, running_broker
from bench.ingest.latency import LatencyResult, latency_run
from bench.ingest.profile import Profile, Profiler
from bench.ingest.throughput import ProduceCost, ThroughputRun, produce_traffic, throughput_run

# Wide tables stay readable when the output goes to a file or a CI log.
console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    events: Annotated[int, typer.Option(help="Clickstream messages to produce and drain")] = (
        2_000_000
    ),
    runs: Annotated[int, typer.Option(help="Throughput runs, each on a fresh lake")] = 3,
    poison_rate: Annotated[float, typer.Option(help="Share of poison messages")] = 0.001,
    profile: Annotated[bool, typer.Option(help="One extra run under py-spy")] = True,
    latency: Annotated[bool, typer.Option(help="Run the freshness experiment")] = True,
    latency_seconds: Annotated[float, typer.Option(help="Seconds of live traffic")] = 90.0,
    latency_rate: Annotated[float, typer.Option(help="Live events per second")] = 20_000.0,
    flush_seconds: Annotated[float, typer.Option(help="Flush interval for freshness")] = 10.0,
    keep: Annotated[bool, typer.Option(help="Keep the work folder (logs, profile)")] = False,
) -> None:
    """Measure one ingest process: events/s, freshness, CPU and bytes per event."""
    config = {
        "events": events,
        "runs": runs,
        "poison_rate": poison_rate,
        "partitions": 4,
        "latency_seconds": latency_seconds if latency else None,
        "latency_rate": latency_rate if latency else None,
        "flush_seconds": flush_seconds,
    }
    document = envelope("ingest", config)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    console.print(f"[bold]ingest benchmark[/] {config}; work folder {workdir}")
    try:
        produced, measured, profiled = None, [], None
        if runs or profile:
            produced, measured, profiled = _throughput_phase(
                workdir, events, runs, poison_rate, profile
            )
        freshness = None
        if latency:
            console.rule(f"freshness: {latency_rate:,.0f} events/s for {latency_seconds:.0f} s")
            freshness = latency_run(
                workdir,
                latency_seconds,
                latency_rate,
                flush_seconds=flush_seconds,
                poison_rate=poison_rate,
            )
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    _finish(document, produced, measured, profiled, freshness)


def _throughput_phase(
    workdir: Path, events: int, runs: int, poison_rate: float, profile: bool
) -> tuple[ProduceCost, list[ThroughputRun], tuple[ThroughputRun, Profile] | None]:
    with running_broker(workdir, "throughput") as broker:
        assert broker.process is not None
        pid = broker.process.pid
        create_topics(lake_settings(workdir, "topics", broker.bootstrap))
        console.rule(f"producing {events:,} clickstream events")
        produced = produce_traffic(
            lake_settings(workdir, "produce", broker.bootstrap),
            events,
            pid,
            poison_rate=poison_rate,
        )
        console.print(
            f"produced {produced.events:,} in {produced.seconds:.1f}s "
            f"({produced.events_per_s:,.0f}/s), poison {sum(produced.poison.values()):,}"
        )
        measured = []
        for index in range(1, runs + 1):
            console.rule(f"throughput run {index}/{runs}")
            run = throughput_run(workdir, broker.bootstrap, pid, index, produced)
            _print_run(run)
            measured.append(run)
        profiled = None
        if profile:
            if Profiler.available() is None:
                console.print("[yellow]py-spy not installed: .venv/bin/pip install py-spy[/]")
            else:
                console.rule("profile run (py-spy attached, not counted)")
                profiler = Profiler(workdir / "py-spy-raw.txt")
                run = throughput_run(
                    workdir, broker.bootstrap, pid, 0, produced, on_start=profiler.attach
                )
                _print_run(run)
                profiled = (run, profiler.wait())
    return produced, measured, profiled


def _print_run(run: ThroughputRun) -> None:
    verdict = "[green]verified[/]" if run.check.ok else f"[red]WRONG[/]: {run.check.problems}"
    console.print(
        f"{run.events:,} events in {run.seconds:.2f}s = [bold]{run.events_per_s:,.0f}/s[/] "
        f"(join {run.join_s:.1f}s, {run.cpu_us_per_event:.2f} µs CPU/event, "
        f"other load {run.other_cores_busy:.2f} cores) {verdict}"
    )


def _finish(
    document: dict[str, Any],
    produced: ProduceCost | None,
    measured: list[ThroughputRun],
    profiled: tuple[ThroughputRun, Profile] | None,
    freshness: LatencyResult | None,
) -> None:
    verified = [run for run in measured if run.check.ok]
    document["throughput"] = {
        "produce": report.produce_summary(produced),
        "runs": [report.run_dict(run) for run in measured],
        "summary": report.throughput_summary(verified),
        "breakdown": report.stage_breakdown(verified),
    }
    if profiled is not None:
        run, samples = profiled
        document["profile"] = {
            **(report.profile_summary(samples) or {}),
            "run": report.run_dict(run),
            "breakdown": report.stage_breakdown([run]),
        }
    document["latency"] = report.latency_summary(freshness)
    document["verdict"] = report.verdict(document["throughput"]["summary"], document["latency"])
    report.print_all(console, document, measured)
    path = write(document)
    console.print(f"results written to [bold]{path}[/]")
    failed = len(measured) - len(verified)
    if failed or (freshness is not None and not freshness.check.ok):
        console.print(f"[red]verification failed: {failed} throughput run(s) or freshness[/]")
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
