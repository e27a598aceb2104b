"""Compaction of one day partition: many small files into few target-size ones, z-ordered
by the catalog's columns where it names some.

The ingest sidecar flushes a file per topic every few seconds, so a bronze day holds
thousands of files; readers pay for each. `compact_day` rewrites one day at a time (delta-rs
z-order puts a whole partition in one bin and is known to exhaust memory on large ones),
with one task, under the table's maintenance lock (two concurrent OPTIMIZE runs duplicate
rows in delta-rs 1.6.6). It then proves from the Delta log that its commit changed no row
count: the figures are in the result, and a mismatch raises `CompactionRowsChanged`.

Appends do not conflict with a compaction in delta-rs's checker, so the sidecar keeps
landing meanwhile; a commit that does conflict (a rebuild or a retention delete of the
same day) is planned again from the new version, a bounded number of times.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from lakehouse.catalog import TableSpec, table_uri
from lakehouse.delta import commit_actions, open_table
from lakehouse.maintenance.locks import exclusive
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

ALREADY_COMPACTED = "already compacted"
# The commitInfo field naming one compaction's commit (Delta custom commit metadata).
COMMIT_ID_KEY = "lakehouse.compaction"
NO_FILES = "no files"


@dataclass(frozen=True)
class PartitionFiles:
    """A day partition's live files at one table version, from the Delta log alone."""

    version: int
    files: int
    bytes: int
    rows: int
    small_files: int  # under half the target size
    target: int

    @property
    def worth_compacting(self) -> bool:
        """Whether compacting would leave fewer, bigger files: see `_worth_compacting`."""
        return bool(_worth_compacting(self.files, self.bytes, self.small_files, self.target))


@dataclass(frozen=True)
class CompactionResult:
    """What one `compact_day` did (or, in a dry run, would do), for logs and metadata.

    `skipped` says why nothing was written ("already compacted", "no files"); None when
    the day was compacted, or in a dry run, would be. The before figures are the
    partition at `version_before`, the version the commit landed on; the after figures
    at `version_after`, the commit itself (both equal when nothing was written).
    """

    table: str
    day: date
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    rows_before: int
    rows_after: int
    zorder_by: tuple[str, ...]
    version_before: int
    version_after: int
    seconds: float
    skipped: str | None = None
    dry_run: bool = False

    @property
    def compacted(self) -> bool:
        """Whether a compaction was committed."""
        return self.skipped is None and not self.dry_run

    @property
    def rows_preserved(self) -> bool:
        """The check a compaction must pass: its commit changed the day's row count by 0."""
        return self.rows_before == self.rows_after


class CompactionRowsChanged(RuntimeError):
    """A compaction commit changed a day's row count: rows were lost or duplicated (two
    unlocked OPTIMIZE runs, or a delta-rs bug). The figures are in `result`."""

    def __init__(self, result: CompactionResult) -> None:
        self.result = result
        super().__init__(
            f"compaction of {result.table} {result.day} changed its rows from "
            f"{result.rows_before} to {result.rows_after} (Delta versions "
            f"{result.version_before} to {result.version_after})"
        )


def date_partition(spec: TableSpec) -> str:
    """The table's date partition column (`event_date`, `quarantine_date`): compaction
    works one day at a time, so a table without one is refused."""
    if spec.date_partition is not None:
        return spec.date_partition
    raise ValueError(
        f"{spec.key} is not partitioned by a date (partitions: {list(spec.partition_by)}); "
        "compaction works one day partition at a time"
    )


def _target(settings: Settings, target_size: int | None) -> int:
    """The target size of compacted files: the argument, else the setting."""
    return target_size or settings.maintenance_target_file_bytes


def partition_files(table: DeltaTable, column: str, day: date, target: int) -> PartitionFiles:
    """One day's files, bytes and rows (num_records of the Delta log's file statistics)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows:
        actions = actions.filter(pc.equal(actions[f"partition.{column}"], pa.scalar(day)))
    if actions["num_records"].null_count:
        raise ValueError(
            f"{day} has files without row statistics in the Delta log; compaction cannot "
            "prove it keeps every row"
        )
    sizes = actions["size_bytes"]
    return PartitionFiles(
        version=table.version(),
        files=actions.num_rows,
        bytes=pc.sum(sizes).as_py() or 0,
        rows=pc.sum(actions["num_records"]).as_py() or 0,
        small_files=pc.sum(pc.less(sizes, target // 2)).as_py() or 0,
        target=target,
    )


def days_to_compact(
    spec: TableSpec, settings: Settings, since: date | None = None, target_size: int | None = None
) -> list[date]:
    """The days (from `since` on) that compacting would leave with fewer, bigger files,
    from the Delta log alone: what "compact every day that needs it" runs over."""
    table = open_table(spec, settings)
    if table is None:
        return []
    column = f"partition.{date_partition(spec)}"
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return []
    if since is not None:
        actions = actions.filter(pc.greater_equal(actions[column], pa.scalar(since)))
    target = _target(settings, target_size)
    small = pc.cast(pc.less(actions["size_bytes"], target // 2), pa.int64())
    per_day = (
        actions.select([column, "size_bytes"])
        .append_column("small", small)
        .group_by(column)
        .aggregate([("size_bytes", "count"), ("size_bytes", "sum"), ("small", "sum")])
    )
    worth = _worth_compacting(
        per_day["size_bytes_count"], per_day["size_bytes_sum"], per_day["small_sum"], target
    )
    return sorted(per_day.filter(worth)[column].drop_null().to_pylist())


def _worth_compacting(files: Any, size: Any, small: Any, target: int) -> Any:
    """Whether a day (or, on Arrow arrays, each day) is worth compacting: it has at least
    two files under half the target size, and its bytes would fit in fewer files of at
    least half the target, `(files - 1) * target / 2 >= bytes`.

    The second test keeps a compacted day from being rewritten night after night:
    merged files come out smaller than the bytes that went in (one footer instead of
    many, better compression), so "no small files left" would never hold, and delta-rs's
    z-order rewrites a whole partition every time it runs. A few late files beside a
    compacted day wait until they are worth a rewrite.
    """
    enough_small = pc.greater_equal(small, 2)
    fits_fewer = pc.greater_equal(pc.multiply(pc.subtract(files, 1), target // 2), size)
    return pc.and_(enough_small, fits_fewer)


def compact_day(
    spec: TableSpec,
    settings: Settings,
    day: date,
    *,
    target_size: int | None = None,
    dry_run: bool = False,
    lock_timeout: float = 0.0,
) -> CompactionResult:
    """Compact (and z-order, where the catalog says) one day of a table, exclusively.

    Raises `MaintenanceBusy` when another process maintains the table (after waiting up
    to `lock_timeout` seconds), `CompactionRowsChanged` when the commit changed the day's
    row count. A dry run takes no lock and writes nothing: it reports the day's figures
    and whether it would be compacted.
    """
    began = time.monotonic()
    column = date_partition(spec)
    target = _target(settings, target_size)
    if dry_run:
        plan = partition_files(_open(spec, settings), column, day, target)
        return _unchanged(spec, day, plan, began, _why_not(plan), dry_run=True)
    with exclusive(spec, settings, "compaction", timeout=lock_timeout):
        retries = 0
        while True:
            table = _open(spec, settings)
            plan = partition_files(table, column, day, target)
            reason = _why_not(plan)
            if reason is not None:
                return _unchanged(spec, day, plan, began, reason)
            commit_id = uuid.uuid4().hex
            try:
                spill = settings.maintenance_spill_bytes
                _optimize(table, spec, column, day, target, spill, commit_id)
            except CommitFailedError as error:
                if retries == settings.maintenance_commit_retries:
                    raise
                retries += 1
                log.info(
                    "compaction of %s %s conflicted, planning again: %s", spec.key, day, error,
                    extra={"table": spec.key},
                )
                continue
            version = _committed_version(spec, settings, plan.version, commit_id)
            if version is None:  # delta-rs found nothing to merge
                return _unchanged(spec, day, plan, began, ALREADY_COMPACTED)
            result = verify_compaction(
                spec, settings, day, version, seconds=time.monotonic() - began
            )
            log.info(
                "compacted %s %s: %d files to %d in %.1f s",
                spec.key, day, result.files_before, result.files_after, result.seconds,
                extra={"table": spec.key},
            )
            return result


def _optimize(
    table: DeltaTable,
    spec: TableSpec,
    column: str,
    day: date,
    target: int,
    spill: int,
    commit_id: str,
) -> None:
    """One OPTIMIZE of one partition, one task at a time and spilling past `spill` bytes
    so memory stays bounded (z-order sorts the whole partition); its commit carries
    `commit_id` so that it can be found among the sidecar's."""
    options = {
        "partition_filters": [(column, "=", day.isoformat())],
        "target_size": target,
        "max_concurrent_tasks": 1,
        "max_spill_size": spill,
        "commit_properties": CommitProperties(custom_metadata={COMMIT_ID_KEY: commit_id}),
    }
    if spec.zorder_by:
        table.optimize.z_order(list(spec.zorder_by), **options)
    else:
        table.optimize.compact(**options)


def verify_compaction(
    spec: TableSpec, settings: Settings, day: date, version: int, seconds: float = 0.0
) -> CompactionResult:
    """The figures of the compaction commit `version` of `day`, checked: the day at the
    version the commit landed on against the day at the commit. Raises
    `CompactionRowsChanged` if the row counts differ (the Delta log's statistics alone).

    Comparing those two versions, not the one the compaction read, keeps the check exact
    while the sidecar appends to the same day between the read and the commit; and it
    catches the duplicating commit of a second, unlocked OPTIMIZE.
    """
    column, target = date_partition(spec), settings.maintenance_target_file_bytes
    before = partition_files(_open(spec, settings, version - 1), column, day, target)
    after = partition_files(_open(spec, settings, version), column, day, target)
    result = _result(spec, day, before, after, seconds)
    if not result.rows_preserved:
        raise CompactionRowsChanged(result)
    return result


def _committed_version(
    spec: TableSpec, settings: Settings, read: int, commit_id: str
) -> int | None:
    """The version of the commit carrying `commit_id` (after `read`, the version the
    compaction planned on), None if it made none.

    From the log files themselves (see `lakehouse.delta.commit_actions`): the handle's
    version after the commit may already include appends that landed next, and
    comparing the day across one of those would look like a changed row count.
    """
    version = read + 1
    while True:
        try:
            actions = commit_actions(spec, settings, version)
        except FileNotFoundError:
            return None
        if any(action.get("commitInfo", {}).get(COMMIT_ID_KEY) == commit_id for action in actions):
            return version
        version += 1


def _why_not(plan: PartitionFiles) -> str | None:
    """Why a day is left as it is, or None if it is worth compacting."""
    if plan.files == 0:
        return NO_FILES
    return None if plan.worth_compacting else ALREADY_COMPACTED


def _unchanged(
    spec: TableSpec,
    day: date,
    plan: PartitionFiles,
    began: float,
    skipped: str | None,
    dry_run: bool = False,
) -> CompactionResult:
    """The result of a day left as it is: the after figures are the before figures."""
    return _result(spec, day, plan, plan, time.monotonic() - began, skipped, dry_run)


def _result(
    spec: TableSpec,
    day: date,
    before: PartitionFiles,
    after: PartitionFiles,
    seconds: float,
    skipped: str | None = None,
    dry_run: bool = False,
) -> CompactionResult:
    """A day's figures at two versions of the table, as a result."""
    return CompactionResult(
        table=spec.key,
        day=day,
        files_before=before.files,
        files_after=after.files,
        bytes_before=before.bytes,
        bytes_after=after.bytes,
        rows_before=before.rows,
        rows_after=after.rows,
        zorder_by=spec.zorder_by,
        version_before=before.version,
        version_after=after.version,
        seconds=seconds,
        skipped=skipped,
        dry_run=dry_run,
    )


def _open(spec: TableSpec, settings: Settings, version: int | None = None) -> DeltaTable:
    """The table (at `version`, else the latest), with a clear error if it was never
    created."""
    uri = table_uri(spec, settings)
    try:
        return DeltaTable(uri, version=version, storage_options=settings.storage_options())
    except TableNotFoundError:
        raise LookupError(f"{spec.key} has not been created yet: nothing to compact") from None
