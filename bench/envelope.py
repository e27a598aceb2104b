"""What every benchmark writes, the same way: one JSON document per invocation under
`bench/results/`, opened by the same envelope (which benchmark, when, the exact command,
the machine, the configuration), with repeated measurements summarised by the same
statistics. docs/benchmarks.md quotes these files.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def envelope(benchmark: str, config: dict[str, Any]) -> dict[str, Any]:
    """The head of a result document; the benchmark adds its figures to it."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m", f"bench.{benchmark}", *sys.argv[1:]]),
        "machine": machine(),
        "config": config,
    }


def machine() -> dict[str, Any]:
    """Where the figures were measured: the machines are shared and differ, so every
    figure travels with the cores, CPU model, memory and software it came from."""
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def summary(
    values: Iterable[float], percentiles: tuple[float, ...] = (50, 90, 99)
) -> dict[str, float]:
    """Count, minimum, the percentiles (`p50` is the median) and maximum of repeated
    measurements; empty for no values. With few runs, p99 is close to the maximum."""
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        return {}
    result = {"n": float(array.size), "min": float(array.min())}
    for q in percentiles:
        result[f"p{q:g}"] = float(np.percentile(array, q))
    result["max"] = float(array.max())
    return result


def write(document: dict[str, Any], directory: Path = RESULTS) -> Path:
    """Save `document` as `<benchmark>-<UTC time>.json`; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{document['benchmark']}-{stamp}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    return path


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"
