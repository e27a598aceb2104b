"""The measured rates the capacity plan starts from, read from this project's own
benchmark results.

For each benchmark the newest result (by its envelope's `date`) among `bench/results/`
(fresh runs, git-ignored) and `bench/results/recorded/` (copies committed so that the plan
works from a clean clone) is used: a new run moves the plan at once, and copying it into
`recorded/` moves the committed plan. A missing result is an error that names the command
producing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.capacity.plan import events_per_core_s
from bench.envelope import RESULTS

RECORDED = RESULTS / "recorded"

COMMANDS = {
    "ingest": ".venv/bin/python -m bench.ingest",
    "engines": ".venv/bin/python -m bench.engines",
    "serving": ".venv/bin/python -m bench.serving --skip-feast --skip-stacks",
    "fraud": ".venv/bin/python -m bench.fraud",
}


class MissingResult(RuntimeError):
    """No usable result of a benchmark the plan needs."""


@dataclass(frozen=True)
class Measured:
    """A rate per core and where it came from."""

    value: float
    unit: str
    source: str  # the result file, relative to the repository
    date: str
    note: str
    load: str = "not recorded"  # cores others kept busy while it was measured
    latency_bound: float | None = None  # services: highest rate per core under the latency target
    command: str = ""  # the command that measured it (sizes below the default are visible)


def newest(
    benchmark: str, directories: tuple[Path, ...] = (RESULTS, RECORDED)
) -> tuple[Path, dict[str, Any]]:
    """The newest result document of `benchmark` and its path."""
    found: list[tuple[str, int, Path, dict[str, Any]]] = []
    for rank, directory in enumerate(directories):  # on a tie, the later directory (recorded)
        for path in sorted(directory.glob(f"{benchmark}-*.json")):
            document = json.loads(path.read_text())
            if document.get("benchmark") == benchmark:
                found.append((document.get("date", ""), rank, path, document))
    if not found:
        places = " or ".join(str(_relative(d)) + "/" for d in directories)
        raise MissingResult(
            f"no result of bench.{benchmark} in {places}: run `{COMMANDS[benchmark]}` "
            f"(it writes bench/results/{benchmark}-<time>.json)"
        )
    *_, path, document = max(found, key=lambda item: (item[0], item[1], item[2].name))
    return path, document


def _with_command(measured: Measured, document: dict[str, Any]) -> Measured:
    return replace(measured, command=str(document.get("command", "")))


def _relative(path: Path) -> Path:
    try:
        return path.relative_to(RESULTS.parents[1])
    except ValueError:
        return path


def _require(document: dict[str, Any], path: Path, *keys: str) -> Any:
    value: Any = document
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            raise MissingResult(
                f"{_relative(path)} has no {'.'.join(keys)}: an older or failed "
                f"run? re-run `{COMMANDS[document['benchmark']]}`"
            )
        value = value[key]
    return value


def ingest(directories: tuple[Path, ...] = (RESULTS, RECORDED)) -> tuple[Measured, float]:
    """Clickstream events per second per fully busy core of the ingest sidecar (median CPU
    per event, 0.1% poison) and the Parquet bytes per event it wrote."""
    path, document = newest("ingest", directories)
    us = _require(document, path, "throughput", "summary", "cpu_us_per_event", "p50")
    size = _require(document, path, "throughput", "summary", "bytes_per_event", "p50")
    measured = Measured(
        events_per_core_s(us),
        "events/s per core",
        str(_relative(path)),
        document["date"],
        f"{us:.2f} µs of ingest CPU per event (median), broker and producer not included",
        _cores(document.get("throughput", {}).get("summary", {}).get("other_cores_busy", {})),
    )
    return _with_command(measured, document), float(size)


def batch(
    engine: str, directories: tuple[Path, ...] = (RESULTS, RECORDED)
) -> tuple[Measured, float]:
    """Bronze rows per CPU second of one engine's silver + gold build, and its peak
    process-tree RSS in MiB at the measured size."""
    path, document = newest("engines", directories)
    if not document.get("success"):
        raise MissingResult(
            f"{_relative(path)}: the engines did not agree; re-run `{COMMANDS['engines']}`"
        )
    run = _require(document, path, "engines", engine)
    rate = _require(run, path, "bronze_rows_per_cpu_s")
    measured = Measured(
        float(rate),
        "bronze rows/s per core",
        str(_relative(path)),
        document["date"],
        f"{engine}, {document['bronze_rows']:,} bronze rows in {run['wall_s']:.1f} s on "
        f"{run['cores_used']:.2f} cores (silver x3 + gold.product_daily)",
        _cores(run.get("other_cores_during")),
    )
    return _with_command(measured, document), float(run["peak_rss_mib"])


KEPT_UP = 0.95  # a run whose achieved rate fell below this share of the offered one saturated


def _service(benchmark: str, document: dict[str, Any], path: Path, p99_key: str) -> Measured:
    """Requests per second one fully busy core serves: the service process's CPU per
    request (getrusage of the one pinned worker) in the fastest run that kept its offered
    rate, the main run first. CPU, not the highest rate under the latency target, because
    that collapses on a shared machine while CPU per request moves much less; the plan's
    utilisation target keeps the latency headroom. A run that fell behind its rate is not
    used: its requests queue and batch up, which flatters the CPU per request."""
    block = document if benchmark == "fraud" else document.get("service") or {}
    main = _require(document, path, *_main(benchmark))
    runs = [main, *block.get("steps", [])]
    kept = [
        run
        for run in runs
        if run.get("service_cpu_us_per_request")
        and run.get("achieved_rate", 0) >= KEPT_UP * run.get("rate", float("inf"))
    ]
    if not kept:
        raise MissingResult(
            f"{_relative(path)}: no run kept its offered rate (machine overloaded?), so its "
            f"CPU per request is not a capacity; re-run `{COMMANDS[benchmark]}` on a quieter "
            "machine"
        )
    run = main if main in kept else max(kept, key=lambda r: r["rate"])
    us = float(run["service_cpu_us_per_request"])
    p99_rate = block.get(p99_key)
    measured = Measured(
        events_per_core_s(us),
        "req/s per core",
        str(_relative(path)),
        document["date"],
        f"{us:.0f} µs of service CPU per request at {run['rate']:,.0f} req/s "
        f"(one worker, one core); highest step rate under the latency target: "
        f"{'none' if p99_rate is None else f'{p99_rate:,.0f} req/s'}",
        _cores(document.get("quiet_before_service")),
        None if p99_rate is None else float(p99_rate),
    )
    return _with_command(measured, document)


def _cores(value: Any) -> str:
    """Other load as recorded: a number, or the median of a summary."""
    if isinstance(value, dict):
        value = value.get("p50")
    return "not recorded" if value is None else f"{float(value):.2f} cores"


def _main(benchmark: str) -> tuple[str, ...]:
    return ("main",) if benchmark == "fraud" else ("service", "main")


def serving(directories: tuple[Path, ...] = (RESULTS, RECORDED)) -> Measured:
    """Recommendation requests per second per fully busy core of the service."""
    path, document = newest("serving", directories)
    return _service("serving", document, path, "highest_rate_p99_under_5ms")


def fraud(directories: tuple[Path, ...] = (RESULTS, RECORDED)) -> Measured:
    """Fraud decisions per second per fully busy core of the service."""
    path, document = newest("fraud", directories)
    return _service("fraud", document, path, "highest_rate_p99_under_10ms")
