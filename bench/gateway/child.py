"""The gateway under test: one `Gateway`, in its own process, its CPU its own.

Usage: `python -m bench.gateway.child SETTINGS.json RESULT.json`. It runs until idle and
writes its report and the CPU seconds it used, so the benchmark reads figures the
production code produced (the same class `lakehouse gateway` runs).
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict
from pathlib import Path

from lakehouse.settings import Settings
from streaming.edge.gateway import Gateway, GatewayOptions


def main(settings_path: str, result_path: str) -> None:
    """Run one gateway until 2 s without traffic; write its report and CPU seconds."""
    settings = Settings(**json.loads(Path(settings_path).read_text()))
    gateway = Gateway(settings, GatewayOptions(until_idle=2.0))
    started = _cpu()  # imports and set-up excluded: they are paid once per process
    report = gateway.run()
    Path(result_path).write_text(json.dumps({
        **asdict(report), "rate": report.rate, "cpu_seconds": _cpu() - started,
    }))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main(*sys.argv[1:3])
