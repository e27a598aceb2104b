"""The plain Polars pipeline the benchmark measures the platform against writes the
project's rows: every e-commerce silver table and product_daily and user_activity_daily of
a generated day, with redeliveries and rule breakers landed in bronze among the events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from bench.plain.compare import compare_day, project_day, same_rows
from bench.plain.pipeline import TOPICS, run_plain
from lakehouse.catalog import CATALOG, table_uri
from lakehouse.settings import Settings
from lakehouse.transforms.ecommerce import (
    build_product_daily_partition,
    build_user_activity_daily_partition,
)
from lakehouse.transforms.engine import row_count
from lakehouse.transforms.silver import build_silver_partition
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

DAY = datetime(2026, 11, 24, tzinfo=UTC)
# A later copy of an event (a redelivery, with another payload: silver keeps the first)
# and rows that break one rule each.
FAULTS: dict[str, list[dict[str, object]]] = {
    "clickstream": [{"referrer": "redelivered"}, {"user_id": -1}, {"page": "nowhere"}],
    "cart_events": [{"quantity": 9}, {"quantity": 0}, {"action": None}],
    "search": [{"results_count": 99}, {"query": "   "}, {"results_count": -1}],
    "purchases": [{"quantity": 7}, {"currency": "eur"}, {"total_amount": 1e6}],
}


def land_faults(settings: Settings) -> None:
    """Per topic: a redelivery of the first event with a changed field, landed later, and
    copies of it under new ids that each break a rule."""
    for topic, changes in FAULTS.items():
        spec = CATALOG.bronze_for_topic(topic)
        first = DeltaTable(table_uri(spec, settings)).to_pyarrow_table().slice(0, 1).to_pylist()[0]
        rows = []
        for number, change in enumerate(changes):
            later = first["_ingested_at"] + timedelta(minutes=1)
            event_id = first["event_id"] if number == 0 else f"broken-{topic}-{number}"
            rows.append({**first, **change, "event_id": event_id, "_ingested_at": later})
        table = pa.Table.from_pylist(rows, spec.schema)
        write_deltalake(
            table_uri(spec, settings), table, mode="append", partition_by=["event_date"]
        )


def test_the_plain_pipeline_writes_the_projects_rows(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    land_in_bronze(settings, make_generator("ecommerce", seed=11, start=DAY), 4_000)
    land_faults(settings)
    day = DAY.date()
    for topic in TOPICS:
        result = build_silver_partition(settings, topic, day)
        assert result.duplicates == 1 and row_count(result.rejected) == 2, topic
    build_product_daily_partition(settings, day)
    build_user_activity_daily_partition(settings, day)

    out = tmp_path / "plain"
    seconds = run_plain(settings.lake_root, day, out)
    assert set(seconds) == {
        *(f"silver/{t}" for t in TOPICS),
        "gold/product_daily",
        "gold/user_activity_daily",
        "total",
    }
    assert compare_day(settings.lake_root, day, out) == dict.fromkeys(seconds.keys() - {"total"})

    # And the comparison sees a difference: one changed value, one missing row.
    project = project_day(settings.lake_root, "gold/product_daily", day)
    assert project.height > 0
    changed = project.with_columns(pl.col("views").add(pl.int_range(pl.len()) == 0))
    assert same_rows(changed, project, ("product_id",)) is not None
    assert same_rows(project.slice(1), project, ("product_id",)) is not None
