"""Delta table I/O through delta-rs: create, open and describe catalogued tables."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from pyarrow import fs

from lakehouse import storage
from lakehouse.catalog import TableSpec, table_uri
from lakehouse.file_actions import WrittenFile, add_action
from lakehouse.settings import Settings

Rows = pa.Table | Callable[[], pa.RecordBatchReader]
"""What a partition is replaced with: rows in memory, or a function that streams them
(called once per commit attempt, since a retried commit must read them again)."""


def ensure_table(spec: TableSpec, settings: Settings) -> DeltaTable:
    """Open a catalogued table, creating it empty with its schema and partitioning if absent.

    Safe when several processes start at once: a lost creation race just opens the winner's.
    """
    uri = table_uri(spec, settings)
    options = settings.storage_options()
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        pass
    # Another process may create it between our check and our create: then open theirs.
    with contextlib.suppress(CommitFailedError):
        DeltaTable.create(
            uri,
            schema=spec.schema,
            partition_by=list(spec.partition_by) or None,
            mode="ignore",
            name=spec.key,
            description=spec.description,
            storage_options=options,
        )
    return DeltaTable(uri, storage_options=options)


def open_table(spec: TableSpec, settings: Settings) -> DeltaTable | None:
    """Open a catalogued table, or None if it has not been created yet."""
    try:
        return DeltaTable(table_uri(spec, settings), storage_options=settings.storage_options())
    except TableNotFoundError:
        return None


def replace_partition(spec: TableSpec, settings: Settings, rows: Rows, predicate: str) -> int:
    """Atomically replace the rows matching `predicate` with `rows`; return the new version.

    Re-running with the same rows leaves the table's contents as they were: this is what
    makes a partition's materialization idempotent. `rows` must all match `predicate`
    (delta-rs refuses the commit otherwise), so nothing outside it is touched.

    A column the catalog added since the table was created is added to the table by the
    first rebuild (Delta's schema merge); the days not rebuilt yet read it as NULL until
    the weekly reprocessing reaches them. Anything else (a dropped column, a changed
    type) is refused by delta-rs. Rows never carry a column the catalog lacks: the
    transforms cast to the catalogued schema and the quality gate's `schema_matches`
    check guards the write.
    """
    return overwrite_where(ensure_table(spec, settings), spec, rows, predicate)


def overwrite_where(
    table: DeltaTable, spec: TableSpec, rows: Rows, predicate: str, attempts: int = 5
) -> int:
    """`replace_partition` on a table already open: the predicate overwrite, retried on a
    fresh snapshot when a concurrent commit rewrote the files it read.

    The nightly compaction rewrites a day's files; a rebuild of that day that read the
    table before the compaction committed is refused by delta-rs's conflict checker
    ("a concurrent transaction added new data"). The overwrite replaces the whole
    predicate with `rows`, so redoing it on the newer snapshot gives exactly the intended
    contents: retrying is safe, and it saves the run a failed step.
    """
    return retry_on_conflict(table, lambda: _overwrite(table, spec, rows, predicate), attempts)


def retry_on_conflict(table: DeltaTable, commit: Callable[[], int], attempts: int = 5) -> int:
    """Run `commit` (a write through `table` that replaces whole partitions); when a
    concurrent commit conflicts with it, bring `table` up to date and run it again, up to
    `attempts` times in all. Safe only for writes whose result does not depend on what
    they read: a predicate or partition overwrite with its rows in hand."""
    for _ in range(attempts - 1):
        try:
            return commit()
        except CommitFailedError:
            table.update_incremental()
    return commit()


def _overwrite(table: DeltaTable, spec: TableSpec, rows: Rows, predicate: str) -> int:
    write_deltalake(
        table,
        rows if isinstance(rows, pa.Table) else rows(),
        mode="overwrite",
        predicate=predicate,
        partition_by=list(spec.partition_by) or None,
        schema_mode="merge",
    )
    return table.version()


def replace_partition_files(
    spec: TableSpec, settings: Settings, files: list[Path], partition: dict[str, str]
) -> int:
    """Replace one partition (`partition`: its column values) of a table in a local folder
    with Parquet `files` already written inside the table's folder, in one Delta commit;
    return the new version.

    Written by hand around delta-rs's write transaction because its streaming writer
    holds memory in proportion to what it is given in one call (measured with delta-rs
    1.6.6: 0.4 GiB for 2M silver rows, 2.3 GiB for 16M, 100 MB files either way), so a
    day larger than memory is written by DuckDB under its limit and only committed here.
    The add actions carry each file's row count and its columns' min, max and null count
    from the Parquet footer, as delta-rs's own writer records them, for file skipping.
    Retried on a conflicting concurrent commit as `overwrite_where` is.
    """
    table = ensure_table(spec, settings)
    root = Path(table_uri(spec, settings))
    local = fs.LocalFileSystem()
    actions = [
        add_action(
            WrittenFile(local, root.as_posix(), file.relative_to(root).as_posix()),
            spec.partition_by,
        )
        for file in files
    ]

    def commit() -> int:
        table.create_write_transaction(
            actions,
            mode="overwrite",
            schema=table.schema(),
            partition_by=list(spec.partition_by) or None,
            partition_filters=[(column, "=", value) for column, value in partition.items()],
        )
        return table.version()

    return retry_on_conflict(table, commit)


@dataclass(frozen=True)
class TableStats:
    """What `lakehouse tables` shows for one table."""

    key: str
    version: int
    files: int
    rows: int
    bytes: int


def table_stats(spec: TableSpec, settings: Settings) -> TableStats | None:
    """Version, live file count, row count and size of a table, from the Delta log alone."""
    table = open_table(spec, settings)
    return None if table is None else snapshot_stats(spec, table)


def snapshot_stats(spec: TableSpec, table: DeltaTable) -> TableStats:
    """The same figures for a table already open: all of one snapshot, whatever commits
    land meanwhile."""
    actions = table.get_add_actions(flatten=True)
    num_records = actions.column("num_records").to_pylist() if actions.num_rows else []
    sizes = actions.column("size_bytes").to_pylist() if actions.num_rows else []
    return TableStats(
        key=spec.key,
        version=table.version(),
        files=actions.num_rows,
        rows=sum(n or 0 for n in num_records),
        bytes=sum(sizes),
    )


def partitions_added_since(
    spec: TableSpec, settings: Settings, version: int | None, column: str = "event_date"
) -> list[date]:
    """The partition values whose data changed after `version` (every value with live files
    if None), from the Delta log alone.

    This is how the bronze sensor learns which event days new commits touched without
    reading any data: a day counts when files live now but not at `version` belong to it
    (whichever writer added them, whatever the clocks said) and its row count differs
    between the two snapshots. The second test leaves out the days a compaction only
    rewrote (same rows, new files); it is exact for append-only tables such as bronze,
    where data can only add rows, so a compaction and an append in one interval still
    report the day. A day whose files lack row statistics always counts. If `version` is
    no longer in the log (cleaned up after the log retention), every live file counts.
    """
    table = open_table(spec, settings)
    if table is None:
        return []
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return []
    partition = f"partition.{column}"
    before = _actions_at(spec, settings, version) if version is not None else None
    if before is None:
        return sorted(pc.unique(actions[partition]).drop_null().to_pylist())
    added = actions.filter(pc.invert(pc.is_in(actions["path"], value_set=before["path"])))
    days = pc.unique(added[partition]).drop_null()
    if len(days) == 0:
        return []
    rows_now = _rows_by_partition(actions.filter(pc.is_in(actions[partition], days)), column)
    if before.num_rows:
        before = before.filter(pc.is_in(before[partition], days))
    rows_then = _rows_by_partition(before, column) if before.num_rows else {}
    return sorted(
        day
        for day in days.to_pylist()
        if rows_now[day] is None or rows_now[day] != rows_then.get(day)
    )


def _actions_at(spec: TableSpec, settings: Settings, version: int) -> pa.Table | None:
    """The live files at `version`, or None if that version is no longer in the log."""
    try:
        uri, options = table_uri(spec, settings), settings.storage_options()
        table = DeltaTable(uri, version=version, storage_options=options)
    except DeltaError:
        return None
    return pa.table(table.get_add_actions(flatten=True))


def _rows_by_partition(actions: pa.Table, column: str) -> dict[date, int | None]:
    """Rows per partition value from the files' statistics; None for a value some of whose
    files have no row count."""
    per_day = actions.group_by(f"partition.{column}").aggregate(
        [("num_records", "sum"), ("num_records", "count", pc.CountOptions(mode="only_null"))]
    )
    days = per_day[f"partition.{column}"].to_pylist()
    sums = per_day["num_records_sum"].to_pylist()
    unknown = per_day["num_records_count"].to_pylist()
    return {
        day: None if missing else int(rows or 0)
        for day, rows, missing in zip(days, sums, unknown, strict=True)
        if day is not None
    }


def partition_rows(
    spec: TableSpec, settings: Settings, column: str = "event_date"
) -> dict[date, int]:
    """Rows per partition value, from the Delta log's file statistics alone (no data read).

    What volume checks compare a new day with: the same table's recent days.
    """
    table = open_table(spec, settings)
    if table is None:
        return {}
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return {}
    return {day: rows or 0 for day, rows in _rows_by_partition(actions, column).items()}


def commit_actions(spec: TableSpec, settings: Settings, version: int) -> list[dict[str, Any]]:
    """The actions of one commit, read from its file `_delta_log/<version>.json` (local
    folder or S3); FileNotFoundError if the log no longer holds it.

    Read directly because delta-rs 1.6.6's `history()` can number its entries wrongly
    while other commits are landing (seen one or two versions off beside a running
    appender; right again once the writes stop), and a handle's `version()` after a
    commit may already include the commits that landed next.
    """
    filesystem, root = storage.filesystem(settings, table_uri(spec, settings))
    with filesystem.open_input_stream(f"{root}/_delta_log/{version:020d}.json") as stream:
        return [orjson.loads(line) for line in stream.read().splitlines() if line.strip()]


def changes_data(actions: list[dict[str, Any]]) -> bool:
    """Whether a commit changed what the table holds: it adds or removes a file with
    `dataChange` true. Compactions (OPTIMIZE) and vacuums do not."""
    return any(
        action[kind].get("dataChange", True)
        for action in actions
        for kind in ("add", "remove")
        if kind in action
    )


def last_data_version(spec: TableSpec, settings: Settings, version: int) -> int:
    """The version of the last commit up to `version` that changed the table's data, so
    that a compaction does not make what was built from the table look stale. Walks the
    log back from `version` (usually one commit); if the log no longer reaches a data
    commit, its oldest remaining version."""
    for candidate in range(version, 0, -1):
        try:
            if changes_data(commit_actions(spec, settings, candidate)):
                return candidate
        except FileNotFoundError:
            return candidate + 1
    return 0


def current_versions(specs: Iterable[TableSpec], settings: Settings) -> dict[str, int]:
    """The Delta version of each catalogued table that exists, by its `layer.name`: what a
    model trained now learns from, recorded in the registry so it can be retrained exactly."""
    versions = {}
    for spec in specs:
        table = open_table(spec, settings)
        if table is not None:
            versions[spec.key] = table.version()
    return versions


def day_holds_rows(table: DeltaTable, day: date, column: str = "event_date") -> bool:
    """Whether the partition `column` = `day` of an open table holds any row, from the
    Delta log's file statistics alone (no data read); a file without a row count counts
    as holding rows. What tells a rebuild that writing no rows to the day would change
    nothing, so that it need not commit (`transforms.tables.changes_nothing`)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return False
    mine = actions.filter(pc.equal(actions[f"partition.{column}"], day))
    counts = mine["num_records"]
    return counts.null_count > 0 or (pc.sum(counts).as_py() or 0) > 0


def first_partition(spec: TableSpec, settings: Settings, column: str = "event_date") -> date | None:
    """The earliest partition value with rows, from the Delta log alone (None if empty)."""
    days = partition_rows(spec, settings, column)
    return min(days) if days else None
