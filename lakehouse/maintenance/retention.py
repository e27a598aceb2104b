"""Data retention: delete a table's date partitions older than the catalog's retention.

The catalog declares each table's `retention_days` (7 years for the fraud audit trail and
decisions, 5 years for IoT gold, ...). The rule, for a table kept N days and a run on
`today`: the cutoff is `today - N days`; partitions of days before the cutoff are
deleted, the cutoff day itself and every later day are kept. So the last N + 1 days
(today included) stay, and no row is deleted before it is at least N days old: the last
event of the cutoff day turns N days old only at the end of today.

What expires is read from the Delta log's per-file statistics (no data is read), and the
deletion is one Delta `delete` with a partition predicate: delta-rs removes the expired
partitions' files whole, rewrites nothing, and the other days are untouched. The files
stay on storage, readable by time travel, until VACUUM deletes them after its retention.
A concurrent append to an expired day (late data years old) makes the delete fail its
conflict check rather than lose that append; the next run deletes it.

Whether a run deletes or only lists is `Settings.retention_enforced`: a dry run in the
local profile, deletion in production-like, `MAINTENANCE_RETENTION_DRY_RUN` either way.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import TableSpec
from lakehouse.delta import open_table
from lakehouse.maintenance.locks import exclusive
from lakehouse.settings import Settings


@dataclass(frozen=True)
class ExpiredPartition:
    """One day past the table's retention, as the Delta log describes it."""

    day: date
    files: int
    rows: int
    bytes: int


@dataclass(frozen=True)
class RetentionResult:
    """What a retention run deleted (or, for a dry run, would delete) from one table.

    `skipped` says why nothing applies (no retention declared, no date partition, table
    not created yet); `cutoff` is the first day kept; `version` the table's Delta version
    after the run.
    """

    table: str
    dry_run: bool
    cutoff: date | None
    partitions: tuple[ExpiredPartition, ...]
    version: int | None
    skipped: str | None = None

    @property
    def rows(self) -> int:
        """Rows in the expired partitions."""
        return sum(partition.rows for partition in self.partitions)

    @property
    def bytes(self) -> int:
        """Bytes of the expired partitions' files."""
        return sum(partition.bytes for partition in self.partitions)


def retention_cutoff(spec: TableSpec, today: date) -> date | None:
    """The first day a table keeps on `today` (None: kept forever); days before it expire."""
    if spec.retention_days is None:
        return None
    return today - timedelta(days=spec.retention_days)


def expired_partitions(spec: TableSpec, settings: Settings, today: date) -> list[ExpiredPartition]:
    """The partitions past the table's retention on `today`, oldest first, with their
    files, rows and bytes from the Delta log (no data read)."""
    return list(apply_retention(spec, settings, today, dry_run=True).partitions)


def apply_retention(
    spec: TableSpec, settings: Settings, today: date, *, dry_run: bool, lock_timeout: float = 0.0
) -> RetentionResult:
    """Delete (or, for a dry run, list) the table's partitions past its retention.

    Callers pass `dry_run=not settings.retention_enforced` for the profile's default. The
    delete holds the table's maintenance lock (waiting up to `lock_timeout` seconds, else
    `MaintenanceBusy`), so it never races a compaction of the same table.
    """
    cutoff, column = retention_cutoff(spec, today), spec.date_partition
    if cutoff is None:
        return RetentionResult(spec.key, dry_run, None, (), None, "no retention declared")
    if column is None:
        return RetentionResult(spec.key, dry_run, cutoff, (), None, "no date partition")
    if open_table(spec, settings) is None:
        return RetentionResult(spec.key, dry_run, cutoff, (), None, "table not created yet")
    lock = nullcontext() if dry_run else exclusive(spec, settings, "retention", lock_timeout)
    with lock:
        # One snapshot for the listing and the delete: what is reported is what goes.
        table = open_table(spec, settings)
        actions = pa.table(table.get_add_actions(flatten=True))
        expired = _expired(actions, f"partition.{column}", cutoff)
        if expired and not dry_run:
            table.delete(f"{column} < '{cutoff.isoformat()}'")
    return RetentionResult(spec.key, dry_run, cutoff, tuple(expired), table.version())


def _expired(actions: pa.Table, column: str, cutoff: date) -> list[ExpiredPartition]:
    """Files, rows and bytes per partition day before `cutoff`, oldest first."""
    if actions.num_rows == 0:
        return []
    old = actions.filter(pc.less(actions[column], pa.scalar(cutoff, pa.date32())))
    per_day = old.group_by(column).aggregate(
        [("path", "count"), ("num_records", "sum"), ("size_bytes", "sum")]
    )
    per_day = per_day.sort_by(column)
    return [
        ExpiredPartition(day, files, rows or 0, size)
        for day, files, rows, size in zip(
            per_day[column].to_pylist(),
            per_day["path_count"].to_pylist(),
            per_day["num_records_sum"].to_pylist(),
            per_day["size_bytes_sum"].to_pylist(),
            strict=True,
        )
    ]
