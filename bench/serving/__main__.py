"""`python -m bench.serving`: recommendation serving over HTTP, open-loop, in one command.

1. The generator's floor and the HTTP stacks: a trivial ASGI app (orjson body) under
   uvicorn (uvloop, httptools) and granian, one worker each, at `--rate`.
2. The Feast peer: Feast 0.67's HTTP feature server over a private Redis
   (bench/.feast-venv, made by bench/serving/feast_peer/setup.sh), at 250/500/1,000 req/s.
3. The service: `lakehouse serve recommendations` over a real lake and a private Redis,
   a 60/30/10 realtime/batch/popular user mix at `--rate` for `--duration` seconds, then
   a step search for the highest rate whose p99 stays under 5 ms.

The generator is pinned to core 0, each server to core 1 (`taskset`), Redis to core 0.
Results go to bench/results/serving-<UTC time>.json; docs/benchmarks.md records them.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.envelope import envelope, write
from bench.ingest.procstat import wait_for_quiet
from bench.serving.servers import GENERATOR_CORE, SERVER_CORE, pin_generator

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)

STEP_RATES = [250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 2000.0, 2500.0, 3000.0]
COLUMNS = [
    ("rate", "rate"), ("achieved_rate", "achieved"), ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"), ("p999_ms", "p99.9 ms"), ("max_ms", "max ms"),
    ("errors", "errors"), ("send_lag_p99_ms", "send lag p99"),
    ("generator_cpu_us_per_request", "gen µs/req"),
]  # fmt: skip


def table(title: str, rows: list[dict[str, Any]], label: str, extra: list[str]) -> Table:
    out = Table(title=title)
    out.add_column(label)
    for _, name in COLUMNS:
        out.add_column(name, justify="right")
    for key in extra:
        out.add_column(key, justify="right")
    for row in rows:
        cells = [str(row.get(label, ""))]
        cells += [str(row.get(key)) for key, _ in COLUMNS] + [str(row.get(k)) for k in extra]
        out.add_row(*cells)
    return out


@app.command()
def main(
    quick: Annotated[bool, typer.Option(help="5-15 s per measurement: a quick look")] = False,
    skip_feast: Annotated[bool, typer.Option(help="Leave out the Feast peer")] = False,
    skip_stacks: Annotated[bool, typer.Option(help="Leave out the HTTP stacks")] = False,
    skip_service: Annotated[bool, typer.Option(help="Leave out the service mix")] = False,
    rate: Annotated[float, typer.Option(help="Requests per second")] = 1000.0,
    duration: Annotated[float, typer.Option(help="Seconds of the service mix")] = 60.0,
) -> None:
    """Measure the HTTP stacks, the Feast peer and the service, open-loop."""
    seconds = 5.0 if quick else 30.0
    step_seconds = 5.0 if quick else 20.0
    duration = 15.0 if quick else duration
    config = {
        "rate": rate,
        "duration": duration,
        "stack_and_feast_seconds": seconds,
        "step_seconds": step_seconds,
        "step_rates": STEP_RATES,
        "connections": 64,
        "timeout_s": 1.0,
        "generator_core": GENERATOR_CORE,
        "server_core": SERVER_CORE,
        "generator": "bench/serving/loadgen.py (open-loop, latency from the intended send)",
    }
    document: dict[str, Any] = envelope("serving", config)
    console.print(f"[bold]serving benchmark[/] {config}")
    pin_generator()

    from bench.serving.stacks import measure_stacks

    if not skip_stacks:
        document["quiet_before_stacks"] = wait_for_quiet(timeout=30)
        stacks = measure_stacks(rate, seconds)
        document["stacks"] = stacks
        console.print(table("HTTP stacks, trivial ASGI app (generator floor)", stacks, "stack",
                        ["server_cpu_us_per_request"]))  # fmt: skip

    if not skip_feast:
        from bench.serving.feast_peer import measure_feast

        document["quiet_before_feast"] = wait_for_quiet(timeout=30)
        feast = measure_feast([250.0, 500.0, rate], seconds)
        document["feast"] = feast
        extra = ["server_cpu_us_per_request", "redis_cpu_us_per_request"]
        title = "Feast 0.67 feature server + Redis, one user per request"
        console.print(table(title, feast, "server", extra))

    if not skip_service:
        from bench.serving.mix import run_mix

        document["quiet_before_service"] = wait_for_quiet(timeout=30)
        mix = run_mix(rate, duration, STEP_RATES, step_seconds)
        document["service"] = mix
        extra = ["service_cpu_us_per_request", "redis_cpu_us_per_request"]
        console.print(table(f"Recommendation service, mix {mix['population']['mix']}",
                            [{"run": "main", **mix["main"]}], "run", extra))  # fmt: skip
        console.print(table("Step search (stops at the first p99 >= 5 ms)", mix["steps"],
                            "run", extra))  # fmt: skip
        console.print(f"highest rate with p99 < 5 ms: {mix['highest_rate_p99_under_5ms']}")
        console.print(f"slowest seconds of the main run: {mix['main']['worst_seconds']}")

    path = write(document)
    console.print(f"results: {path}")


if __name__ == "__main__":
    app()
