"""One engine's build of the day, in its own process so that its whole tree is measured:
`python -m bench.engines.child duckdb|spark <day>` (duckdb: the local engine), against the
lake of `LAKEHOUSE_ROOT`.

Both build the same thing from the same bronze with the functions the `medallion` job's
assets run on that engine (`lakehouse.transforms.engine.on_engine`): silver clickstream,
cart_events and purchases for the day (dedupe by event id, the declared rules, the
rejected rows counted), then gold.product_daily for the day, each table's day replaced
in one Delta commit. No quality gate: the comparison is of the engines, not the checks.
On Spark the session comes from the settings (`SPARK_MASTER`, `SPARK_DRIVER_MEMORY`,
`SPARK_CONF`) and its start is timed apart.

The last line of stdout is a JSON object of stage seconds and row counts.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

import orjson

from lakehouse.settings import get_settings
from lakehouse.transforms.ecommerce import build_product_daily_partition
from lakehouse.transforms.engine import on_engine, row_count
from lakehouse.transforms.silver import build_silver_partition

TOPICS = ("clickstream", "cart_events", "purchases")


def run(engine: str, day: date) -> dict[str, Any]:
    """Build the day on `engine` (local or spark); stage seconds and row counts."""
    settings = get_settings().model_copy(update={"lakehouse_engine": engine})
    stages: dict[str, float] = {}
    if engine == "spark":
        from lakehouse.spark.session import spark_session

        started = time.perf_counter()
        spark_session(settings).sparkContext.setLogLevel("ERROR")
        stages["session start"] = time.perf_counter() - started
    build_silver = on_engine(build_silver_partition, settings)
    build_gold = on_engine(build_product_daily_partition, settings)
    silver: dict[str, dict[str, int]] = {}
    for topic in TOPICS:
        started = time.perf_counter()
        result = build_silver(settings, topic, day)
        stages[f"silver {topic}"] = time.perf_counter() - started
        silver[topic] = {
            "rows": row_count(result.rows),
            "rejected": row_count(result.rejected),
            "duplicates": result.duplicates,
        }
    started = time.perf_counter()
    gold = build_gold(settings, day)
    stages["gold product_daily"] = time.perf_counter() - started
    return {
        "stages_s": stages,
        "silver": silver,
        "gold_rows": row_count(gold),
        "gold_transform": f"{build_gold.__module__}.{build_gold.__name__}",
    }


def main() -> None:
    engine, day = sys.argv[1], date.fromisoformat(sys.argv[2])
    started = time.perf_counter()
    result = run("local" if engine == "duckdb" else engine, day)
    result["work_s"] = time.perf_counter() - started
    sys.stdout.write("\n" + orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
