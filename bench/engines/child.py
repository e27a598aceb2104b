"""One engine's build of the day, in its own process so that its whole tree is measured:
`python -m bench.engines.child duckdb|spark <day>` against the lake of `LAKEHOUSE_ROOT`.

Both build the same thing from the same bronze: silver clickstream, cart_events and
purchases for the day (dedupe by event id, the declared rules, the rejected rows counted),
then gold.product_daily for the day, each table's day replaced in one Delta commit.

- duckdb: `build_silver_partition` and `build_product_daily_partition`, what the
  `medallion` job's assets run with LAKEHOUSE_ENGINE=local.
- spark: a SparkSession from the settings (`SPARK_MASTER`, `SPARK_DRIVER_MEMORY`,
  `SPARK_CONF`), bronze read with `delta_bridge.read_table`, `to_silver_spark`, silver
  written with `replace_partition`, read back and `product_daily` (`spark_gold`) written
  the same way.

The last line of stdout is a JSON object of stage seconds and row counts.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

import orjson

from lakehouse.catalog import CATALOG, GOLD_PRODUCT_DAILY
from lakehouse.settings import get_settings

TOPICS = ("clickstream", "cart_events", "purchases")


def run_duckdb(day: date) -> dict[str, Any]:
    from lakehouse.transforms.ecommerce import build_product_daily_partition
    from lakehouse.transforms.silver import build_silver_partition

    settings = get_settings()
    stages: dict[str, float] = {}
    silver: dict[str, dict[str, int]] = {}
    for topic in TOPICS:
        started = time.perf_counter()
        result = build_silver_partition(settings, topic, day)
        stages[f"silver {topic}"] = time.perf_counter() - started
        silver[topic] = {
            "rows": result.rows.num_rows,
            "rejected": result.rejected.num_rows,
            "duplicates": result.duplicates,
        }
    started = time.perf_counter()
    gold = build_product_daily_partition(settings, day)
    stages["gold product_daily"] = time.perf_counter() - started
    return {
        "stages_s": stages,
        "silver": silver,
        "gold_rows": gold.num_rows,
        "gold_transform": "lakehouse.transforms.ecommerce.product_daily",
    }


def run_spark(day: date) -> dict[str, Any]:
    from bench.engines import spark_gold
    from lakehouse.spark.delta_bridge import read_table, replace_partition
    from lakehouse.spark.session import spark_session
    from lakehouse.transforms.ecommerce import _COLUMNS
    from lakehouse.transforms.silver_spark import to_silver_spark

    settings = get_settings()
    stages: dict[str, float] = {}
    started = time.perf_counter()
    spark = spark_session(settings)
    spark.sparkContext.setLogLevel("ERROR")
    stages["session start"] = time.perf_counter() - started
    silver: dict[str, dict[str, int]] = {}
    for topic in TOPICS:
        started = time.perf_counter()
        bronze = read_table(spark, CATALOG.bronze_for_topic(topic), settings, days=[day])
        bronze = bronze.persist()  # read once for the count, the rows and the rejected rows
        result = to_silver_spark(bronze, topic)
        replace_partition(result.rows, CATALOG.silver_for_topic(topic), settings, [day])
        rejected = result.rejected.count()
        bronze.unpersist()
        stages[f"silver {topic}"] = time.perf_counter() - started
        silver[topic] = {"rejected": rejected, "duplicates": result.duplicates}
    started = time.perf_counter()
    frames = {
        spec.name: read_table(spark, spec, settings, days=[day], columns=_COLUMNS[spec])
        for spec in (CATALOG.silver_for_topic(topic) for topic in TOPICS)
    }
    rows = spark_gold.product_daily(**frames)
    replace_partition(rows, GOLD_PRODUCT_DAILY, settings, [day])
    stages["gold product_daily"] = time.perf_counter() - started
    spark.stop()
    return {"stages_s": stages, "silver": silver, "gold_transform": spark_gold.transform_name()}


def main() -> None:
    engine, day = sys.argv[1], date.fromisoformat(sys.argv[2])
    started = time.perf_counter()
    result = run_duckdb(day) if engine == "duckdb" else run_spark(day)
    result["work_s"] = time.perf_counter() - started
    sys.stdout.write("\n" + orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
