"""Exactly-once appends of Kafka data to a Delta table, fenced by Delta transaction ids.

Each commit carries one `txn` action per Kafka partition it covers (app id
`{prefix}:{topic}:{partition}`, version = last offset covered), in the same commit as the
data files, so the Delta log alone records how far each partition has landed.
See docs/ingest.md for the protocol and why it is safe against zombies.

Two disciplines share one mechanism:
- `commit_contiguous` (bronze data tables): a batch covers every offset after `base` up to
  `last`. It commits only if the snapshot it commits against still records `base` for the
  partition; otherwise the partition is *fenced* and handed back to the consumer to rewind.
- `commit_above_watermark` (the quarantine table): rows at or below the recorded version
  are already there (written by a crashed run or a zombie), so they are dropped; the rest
  commit with the batch's last offset.
In both, the recorded versions are read from the very `DeltaTable` snapshot the commit is
made against; delta-rs then rejects the commit if any later commit carried one of its app
ids, which closes the gap between the check and the write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    SchemaMismatchError,
)

from lakehouse.catalog import TableSpec
from lakehouse.delta import ensure_table
from lakehouse.settings import Settings

log = logging.getLogger(__name__)


def _is_transient(error: Exception) -> bool:
    """Storage and network failures are retried; schema or protocol errors are bugs, raised."""
    if isinstance(error, SchemaMismatchError | DeltaProtocolError):
        return False
    return isinstance(error, OSError | DeltaError)


PARTITION_COLUMN = "_kafka_partition"
OFFSET_COLUMN = "_kafka_offset"


@dataclass(frozen=True)
class PartitionRange:
    """The offsets a batch covers for one partition: everything after `base` up to `last`.

    `base` is None when the table has never recorded the partition (read from the start).
    """

    base: int | None
    last: int


@dataclass
class CommitResult:
    """Which partitions a commit recorded, and which were fenced with the table's version."""

    committed: dict[int, int] = field(default_factory=dict)
    fenced: dict[int, int | None] = field(default_factory=dict)
    version: int | None = None
    rows: int = 0


class PartitionedDeltaSink:
    """Writes one topic's rows into one Delta table with per-partition offset bookkeeping."""

    def __init__(
        self,
        spec: TableSpec,
        settings: Settings,
        topic: str,
        *,
        partition_column: str = PARTITION_COLUMN,
        offset_column: str = OFFSET_COLUMN,
        retry_backoff: Callable[[int], float] | None = None,
    ) -> None:
        self.spec = spec
        self.topic = topic
        self.app_prefix = settings.ingest_app_id
        self.partition_column = partition_column
        self.offset_column = offset_column
        self._table: DeltaTable = ensure_table(spec, settings)
        self._backoff = retry_backoff or _exponential_backoff
        self._failures = 0  # consecutive transient failures, for the backoff

    def app_id(self, partition: int) -> str:
        """The Delta txn app id recording this topic-partition's landed offset."""
        return f"{self.app_prefix}:{self.topic}:{partition}"

    def recorded_offsets(self, partitions: list[int]) -> dict[int, int | None]:
        """Last landed offset per partition on the newest snapshot (None: nothing yet)."""
        self._refresh()
        return {p: self._table.transaction_version(self.app_id(p)) for p in partitions}

    def commit_contiguous(self, rows: pa.Table, ranges: dict[int, PartitionRange]) -> CommitResult:
        """Append rows covering exactly `ranges`, or fence the partitions someone else moved."""
        result = CommitResult()
        live = dict(ranges)
        while True:
            self._refresh()
            for partition, span in list(live.items()):
                recorded = self._table.transaction_version(self.app_id(partition))
                if recorded != span.base:
                    result.fenced[partition] = recorded
                    del live[partition]
            if not live:
                return result
            batch = self._only_partitions(rows, live)
            marks = {p: span.last for p, span in live.items()}
            if self._try_append(batch, marks):
                return self._committed(result, batch, marks)

    def commit_above_watermark(self, rows: pa.Table, last: dict[int, int]) -> CommitResult:
        """Append the rows not yet recorded for their partition; idempotent under replay."""
        result = CommitResult()
        while True:
            self._refresh()
            recorded = {p: self._table.transaction_version(self.app_id(p)) for p in last}
            batch = self._above(rows, recorded)
            if batch.num_rows == 0:
                return result
            present = set(pc.unique(batch.column(self.partition_column)).to_pylist())
            marks = {p: offset for p, offset in last.items() if p in present}
            if self._try_append(batch, marks):
                return self._committed(result, batch, marks)

    def _try_append(self, rows: pa.Table, marks: dict[int, int]) -> bool:
        """Commit once; False when the caller must re-read the table and decide again.

        That is the case after a conflict (someone committed one of our app ids after our
        snapshot) and after a transient storage failure (the commit may or may not have
        landed: the re-read tells). Anything else is a bug and is raised.
        """
        try:
            self._append(rows, marks)
        except CommitFailedError as error:
            log.info("commit conflict on %s, re-checking offsets: %s", self.spec.key, error)
            return False
        except Exception as error:
            self._after_failure(error)
            return False
        self._failures = 0
        return True

    def _committed(
        self, result: CommitResult, batch: pa.Table, marks: dict[int, int]
    ) -> CommitResult:
        result.committed = marks
        result.version = self._table.version()
        result.rows = batch.num_rows
        return result

    def _refresh(self) -> None:
        while True:
            try:
                self._table.update_incremental()
                return
            except Exception as error:
                self._after_failure(error)

    def _append(self, rows: pa.Table, marks: dict[int, int]) -> None:
        transactions = [Transaction(app_id=self.app_id(p), version=o) for p, o in marks.items()]
        write_deltalake(
            self._table,
            rows,
            mode="append",
            commit_properties=CommitProperties(app_transactions=transactions),
        )

    def _only_partitions(self, rows: pa.Table, keep: dict[int, PartitionRange]) -> pa.Table:
        partitions = rows.column(self.partition_column)
        present = pc.unique(partitions).to_pylist()
        if all(p in keep for p in present):
            return rows
        return rows.filter(pc.is_in(partitions, pa.array(list(keep), partitions.type)))

    def _above(self, rows: pa.Table, recorded: dict[int, int | None]) -> pa.Table:
        if rows.num_rows == 0:
            return rows
        partitions = rows.column(self.partition_column).to_numpy()
        offsets = rows.column(self.offset_column).to_numpy()
        floor = np.full(len(partitions), -1, dtype=np.int64)
        for partition, version in recorded.items():
            if version is not None:
                floor[partitions == partition] = version
        keep = offsets > floor
        return rows if keep.all() else rows.filter(pa.array(keep))

    def _after_failure(self, error: Exception) -> None:
        """Back off after a transient storage failure; raise anything else."""
        if not _is_transient(error):
            raise error
        self._failures += 1
        delay = self._backoff(self._failures)
        log.warning(
            "write to %s failed (attempt %d), retrying in %.1fs: %s",
            self.spec.key,
            self._failures,
            delay,
            error,
        )
        time.sleep(delay)


def _exponential_backoff(attempt: int) -> float:
    return min(30.0, 0.2 * 2 ** min(attempt, 8))
