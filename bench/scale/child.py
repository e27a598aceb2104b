"""One e-commerce day, bronze to every e-commerce gold table, in its own process so that
its whole footprint is measured: `python -m bench.scale.child checked|bare <day> [all|plain]`,
against the lake of `LAKEHOUSE_ROOT`, bounded by the `DUCKDB_*` settings. `plain` builds
only the tables the plain pipeline of `bench.plain` writes (the four silver tables,
user_activity_daily and product_daily), for `bench.versus`.

It runs what the `medallion` job's assets run for the day, in their order, without
Dagster around them: the four silver builds, then the six gold builds, each inside
`duck.bounded(settings)` as `assets.resources.transform_on_engine` runs them. `checked`
guards every write with the tables' quality gate (every check of every suite, as the
assets do); `bare` writes unguarded, so that the two give the checks' cost.

Great Expectations, and Polars, which the uniqueness checks import lazily, are imported
before the clock starts (in a long-lived process each is imported once; a plain script's
imports are not timed either). The last line of stdout is a JSON object of per-table
seconds, row counts and the work's seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from lakehouse.catalog import CATALOG, Domain
from lakehouse.settings import get_settings
from lakehouse.transforms import duck, ecommerce
from lakehouse.transforms.engine import row_count
from lakehouse.transforms.silver import build_silver_partition
from quality.gate import QualityGate

GOLD: dict[str, Callable[..., Any]] = {
    "user_activity_daily": ecommerce.build_user_activity_daily_partition,
    "product_daily": ecommerce.build_product_daily_partition,
    "session_funnel_daily": ecommerce.build_session_funnel_daily_partition,
    "ab_test_daily": ecommerce.build_ab_test_daily_partition,
    "user_features": ecommerce.build_user_features_partition,
    "product_trending": ecommerce.build_product_trending_partition,
}
"""In dependency order: the windowed snapshots read the daily tables built before them."""
PLAIN = ("user_activity_daily", "product_daily")
"""The gold tables `bench.plain`'s pipeline writes too."""


def run(mode: str, day: date, tables: str = "all") -> dict[str, Any]:
    """Build the day's e-commerce silver and gold (`tables`: all, or plain's set);
    seconds and rows per table."""
    settings = get_settings()
    guard = QualityGate(settings) if mode == "checked" else None
    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    with duck.bounded(settings):
        for topic in CATALOG.topics_of(Domain.ECOMMERCE):
            started = time.perf_counter()
            result = build_silver_partition(settings, topic.name, day, guard)
            seconds[f"silver.{topic.name}"] = time.perf_counter() - started
            rows[f"silver.{topic.name}"] = row_count(result.rows)
            rows[f"rejected.{topic.name}"] = row_count(result.rejected)
        for name, build in GOLD.items():
            if tables == "plain" and name not in PLAIN:
                continue
            started = time.perf_counter()
            rows[f"gold.{name}"] = row_count(build(settings, day, guard))
            seconds[f"gold.{name}"] = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows}


def main() -> None:
    mode, day = sys.argv[1], date.fromisoformat(sys.argv[2])
    tables = sys.argv[3] if len(sys.argv) > 3 else "all"
    if mode not in ("checked", "bare") or tables not in ("all", "plain"):
        raise SystemExit(f"usage: checked|bare <day> [all|plain], not {sys.argv[1:]}")
    if mode == "checked":
        import great_expectations  # noqa: F401 (imported once, before the clock)
        import polars  # noqa: F401 (the uniqueness checks' lazy import, likewise)
    started = time.perf_counter()
    result = run(mode, day, tables)
    result["work_s"] = time.perf_counter() - started
    sys.stdout.write("\n" + orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
