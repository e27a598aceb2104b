"""Delta writes that meet a concurrent commit: a partition rebuild beside the compaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lakehouse.catalog import GOLD_SENSOR_HOURLY, table_uri
from lakehouse.delta import ensure_table, overwrite_where
from lakehouse.settings import Settings
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
