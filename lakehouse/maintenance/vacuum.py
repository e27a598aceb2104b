"""VACUUM, checkpoint and expired-log cleanup of one Delta table, with their figures.

Three steps, in this order, each bounded by a retention that protects readers:

1. `vacuum` deletes the data files that a commit removed (an overwrite, a compaction, a
   retention delete) longer ago than the vacuum retention (`MAINTENANCE_VACUUM_RETENTION_HOURS`,
   7 days). Files the current snapshot uses are never touched, and neither are files of
   any version committed within the retention: time travel to those keeps working, and a
   run that started reading a snapshot less than `MAINTENANCE_LONGEST_RUN_HOURS` ago keeps
   its files. Older versions stop reading (their files are gone). Never `full=True`: it
   also deletes files the log does not mention yet, which includes the Parquet files a
   concurrent writer (the ingest sidecar) has written but not committed.
2. `create_checkpoint` writes the current state as one Parquet file, so opening the table
   reads that instead of replaying every JSON commit since the last checkpoint (the
   sidecar commits every few seconds: thousands a day).
3. `cleanup_metadata` deletes JSON commits and checkpoints older than the table's
   `delta.logRetentionDuration` (30 days by default) that no version inside that
   retention needs: everything from the newest checkpoint at or before the oldest such
   version stays. A checkpoint therefore frees the log before it only once it is itself
   30 days old (delta-rs also writes one every 100 commits). A version whose log is gone
   cannot be loaded at all; one whose files VACUUM deleted loads but fails to read. Time
   travel is thus guaranteed for the vacuum retention (7 days), and the log reaches back
   30 days or a little more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from deltalake import DeltaTable
from pyarrow import fs

from lakehouse.catalog import TableSpec, table_uri
from lakehouse.delta import open_table
from lakehouse.settings import Settings
from lakehouse.storage import filesystem

# delta-rs refuses a shorter retention unless told not to enforce it (its default for
# `delta.deletedFileRetentionDuration`); the settings validate ours instead.
DELTA_DEFAULT_RETENTION_HOURS = 168


@dataclass(frozen=True)
class VacuumResult:
    """What one maintenance pass did to a table (or, for a dry run, would do).

    `paths`: the data files deleted (or that would be), relative to the table; `bytes_removed`
    counts those that were there to stat. `version`, `checkpoint_version` and
    `oldest_readable_version` are None for a table not created yet; the checkpoint is
    also None for a dry run. `oldest_readable_version`: every version from it on still
    loads and reads after the pass (earlier ones may, if nothing they used was deleted).
    """

    table: str
    dry_run: bool
    retention_hours: int
    paths: tuple[str, ...]
    bytes_removed: int
    version: int | None
    checkpoint_version: int | None
    log_files_removed: int
    oldest_readable_version: int | None
    seconds: float

    @property
    def files_removed(self) -> int:
        """How many data files went (or would go)."""
        return len(self.paths)


def vacuum_table(
    spec: TableSpec,
    settings: Settings,
    *,
    dry_run: bool = False,
    retention_hours: int | None = None,
) -> VacuumResult:
    """Vacuum, checkpoint and clean the log of one table; a dry run only lists the files.

    `retention_hours` overrides `MAINTENANCE_VACUUM_RETENTION_HOURS` for one call (the
    command line); it is refused below `MAINTENANCE_LONGEST_RUN_HOURS` like the setting.
    """
    started = time.monotonic()
    hours = _retention(settings, retention_hours)
    table = open_table(spec, settings)
    if table is None:
        return VacuumResult(spec.key, dry_run, hours, (), 0, None, None, 0, None, 0.0)
    files, root = filesystem(settings, table_uri(spec, settings))
    log_dir = f"{root}/_delta_log"
    enforce = hours >= DELTA_DEFAULT_RETENTION_HOURS
    # Listed first even for a real run: a file's size can only be read before it goes.
    listed = table.vacuum(hours, dry_run=True, enforce_retention_duration=enforce)
    sizes = _sizes(files, root, listed)
    log_before = _log_files(files, log_dir)
    checkpoint = None
    paths = listed
    if not dry_run:
        paths = table.vacuum(hours, dry_run=False, enforce_retention_duration=enforce)
        table.create_checkpoint()
        checkpoint = table.version()
        table.cleanup_metadata()
    log_after = _log_files(files, log_dir) if not dry_run else log_before
    return VacuumResult(
        table=spec.key,
        dry_run=dry_run,
        retention_hours=hours,
        paths=tuple(sorted(paths)),
        bytes_removed=sum(sizes.get(path, 0) for path in paths),
        version=table.version(),
        checkpoint_version=checkpoint,
        log_files_removed=len(set(log_before) - set(log_after)),
        oldest_readable_version=_oldest_readable(log_after, hours, table),
        seconds=time.monotonic() - started,
    )


def _retention(settings: Settings, override: int | None) -> int:
    hours = settings.maintenance_vacuum_retention_hours if override is None else override
    if hours < settings.maintenance_longest_run_hours:
        raise ValueError(
            f"a vacuum retention of {hours} h is below MAINTENANCE_LONGEST_RUN_HOURS="
            f"{settings.maintenance_longest_run_hours}: it would delete files that a run "
            "still reading an older snapshot needs"
        )
    return hours


def _sizes(files: fs.FileSystem, root: str, paths: list[str]) -> dict[str, int]:
    """Sizes of the listed files that exist (a tombstone's file may be gone already: a
    vacuum lists every expired tombstone the log still carries)."""
    infos = files.get_file_info([f"{root}/{path}" for path in paths])
    return {
        path: info.size
        for path, info in zip(paths, infos, strict=True)
        if info.type is fs.FileType.File and info.size is not None
    }


def _log_files(files: fs.FileSystem, log_dir: str) -> dict[str, int]:
    """The log's commit and checkpoint files by name, with their modification times in
    milliseconds (delta-rs ages log files by the same clock)."""
    infos = files.get_file_info(fs.FileSelector(log_dir, allow_not_found=True))
    return {
        info.base_name: info.mtime_ns // 1_000_000
        for info in infos
        if info.type is fs.FileType.File and info.base_name[:1].isdigit()
    }


def _oldest_readable(log: dict[str, int], hours: int, table: DeltaTable) -> int:
    """The oldest version guaranteed to load and read: the later of the oldest version
    the remaining log can rebuild and the version current when the vacuum retention began
    (files removed by later commits are still there; the ones it needed removed earlier
    may not be)."""
    commits = {
        int(name.split(".")[0]): mtime for name, mtime in log.items() if name.endswith(".json")
    }
    checkpoints = {int(name.split(".")[0]) for name in log if ".checkpoint." in name}
    if not commits:
        return table.version()
    first = min(commits)
    rebuildable = [0] if first == 0 else [c for c in checkpoints if c + 1 >= first]
    oldest_log = min(rebuildable, default=table.version())
    cutoff = time.time() * 1000 - hours * 3_600_000
    at_cutoff = max((v for v, mtime in commits.items() if mtime <= cutoff), default=oldest_log)
    return max(oldest_log, at_cutoff)
