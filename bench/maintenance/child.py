"""The compaction, alone in a process so its peak memory is its own.

Usage: `python -m bench.maintenance.child LAKE_ROOT HOME DAY TARGET_BYTES RESULT.json`.
Runs `compact_day` (the function `lakehouse maintain` and the nightly asset call) on the
day and writes the CompactionResult with the process's peak RSS (`ru_maxrss`).
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path

from lakehouse.catalog import SILVER_SENSOR_READINGS
from lakehouse.maintenance.compaction import compact_day
from lakehouse.settings import Settings


def main(root: str, home: str, day: str, target: str, out: str) -> None:
    """Compact one day of silver sensor_readings and record what it cost."""
    settings = Settings(lakehouse_root=root, lakehouse_home=Path(home))
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = compact_day(
        SILVER_SENSOR_READINGS, settings, date.fromisoformat(day), target_size=int(target)
    )
    document = {
        **asdict(result),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_before_bytes": baseline_kib * 1024,
    }
    Path(out).write_text(json.dumps(document, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
