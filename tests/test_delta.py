"""Delta writes that meet a concurrent commit: a partition rebuild beside the compaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lakehouse.catalog import GOLD_SENSOR_HOURLY, TableSpec, table_uri
from lakehouse.delta import ensure_table, overwrite_where
from lakehouse.settings import Settings
from lakehouse.transforms.tables import replace_day
from tests.test_query import hourly

SPEC = GOLD_SENSOR_HOURLY
DAY = date(2026, 11, 23)
PREDICATE = f"event_date = '{DAY}'"


def small_files_then_a_stale_handle_then_a_compaction(settings: Settings) -> DeltaTable:
    """A day of four small files, a handle opened on it, and a compaction committed after."""
    for sensor in "abcd":
        write_deltalake(ensure_table(SPEC, settings), hourly(DAY, [sensor], 1.0), mode="append")
    stale = ensure_table(SPEC, settings)
    DeltaTable(table_uri(SPEC, settings)).optimize.compact()
    return stale


def test_a_rebuild_that_read_the_table_before_a_compaction_retries_on_the_new_snapshot(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    stale = small_files_then_a_stale_handle_then_a_compaction(settings)

    version = overwrite_where(stale, SPEC, hourly(DAY, ["x", "y"], 2.0), PREDICATE)

    now = DeltaTable(table_uri(SPEC, settings))
    assert sorted(now.to_pyarrow_table()["sensor_id"].to_pylist()) == ["x", "y"]
    assert version == now.version()


def test_without_the_retry_delta_rs_refuses_that_rebuild(
    make_settings: Callable[..., Settings],
) -> None:
    """Why the retry exists: the conflict is real, not hypothetical."""
    stale = small_files_then_a_stale_handle_then_a_compaction(make_settings())

    with pytest.raises(CommitFailedError):
        overwrite_where(stale, SPEC, hourly(DAY, ["x"], 2.0), PREDICATE, attempts=1)


def test_an_empty_day_is_left_alone_unless_it_held_rows(
    make_settings: Callable[..., Settings],
) -> None:
    """No rows for a day that holds none: no check, no commit, no empty file, but the
    table exists; no rows for a day that held some: checked and replaced, as ever."""
    settings = make_settings()
    guarded: list[tuple[date, int]] = []

    def guard(spec: TableSpec, day: date, rows: pa.Table) -> None:
        guarded.append((day, rows.num_rows))

    empty = SPEC.schema.empty_table()
    replace_day(settings, SPEC, empty, DAY, guard)
    table = DeltaTable(table_uri(SPEC, settings))
    assert (table.version(), table.get_add_actions().num_rows, guarded) == (0, 0, [])

    replace_day(settings, SPEC, hourly(DAY, ["a"], 1.0), DAY, guard)
    replace_day(settings, SPEC, empty, DAY, guard)
    table = DeltaTable(table_uri(SPEC, settings))
    assert table.to_pyarrow_table().num_rows == 0
    assert (table.version(), guarded) == (2, [(DAY, 1), (DAY, 0)])
    replace_day(settings, SPEC, empty, DAY, guard)
    assert DeltaTable(table_uri(SPEC, settings)).version() == 2


def test_an_empty_day_still_brings_a_catalogued_column_the_table_lacks(
    make_settings: Callable[..., Settings],
) -> None:
    """A column the catalog added since the table was written reaches it with the next
    rebuild, even an empty one (the schema merge), so readers can select it."""
    settings = make_settings()
    older = hourly(DAY, ["a"], 1.0).drop_columns(["stddev_value"])
    write_deltalake(table_uri(SPEC, settings), older, partition_by=["event_date"])

    replace_day(settings, SPEC, SPEC.schema.empty_table(), DAY + timedelta(days=1))

    table = DeltaTable(table_uri(SPEC, settings))
    assert "stddev_value" in {field.name for field in table.schema().fields}
    assert table.to_pyarrow_table().num_rows == 1
