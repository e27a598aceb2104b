"""Exactly-once appends of Kafka data to a Delta table, fenced by Delta transaction ids.

Each commit carries one `txn` action per Kafka partition it covers (app id
`{prefix}:{topic}:{partition}`, version = last offset covered), in the same commit as the
data files, so the Delta log alone records how far each partition has landed.
See docs/ingest.md for the protocol and why it is safe against zombies.

Two disciplines share one mechanism:
- `commit_contiguous` (bronze data tables): a batch covers every offset after `base` up to
  `last`. It commits only if the snapshot it commits against still records `base` for the
  partition; otherwise the partition is *fenced* and handed back to the consumer to rewind.
- `commit_above_watermark` (the quarantine table): admitted per partition only while the
  DATA table records exactly the batch's `base` (else fenced, for the data commit too);
  rows at or below the quarantine's recorded version are already there (written by a
  crashed run or a zombie), so they are dropped; the rest commit with the batch's last
  offset.
In both, the versions of the table written are read from the very `DeltaTable` snapshot
the commit is made against; delta-rs then rejects the commit if any later commit carried
one of its app ids, which closes the gap between the check and the write.

Storage failures are retried with backoff for at most `INGEST_RETRY_SECONDS` per
operation; anything else (a missing table, a schema or protocol error) is raised at once,
naming the table, so the worker stops instead of spinning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    SchemaMismatchError,
    TableNotFoundError,
)

from lakehouse.catalog import TableSpec, table_uri
from lakehouse.delta import ensure_table
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

PARTITION_COLUMN = "_kafka_partition"
OFFSET_COLUMN = "_kafka_offset"

# Columns (of any bronze table that has them) whose values are nearly unique per row:
# random ids, microsecond event times, offsets. A dictionary for them fills up and is
# abandoned in every column chunk, which costs encode time and leaves larger pages. They
# are delta-encoded instead of PLAIN: the strings' lengths (DELTA_LENGTH_BYTE_ARRAY), the
# integers themselves (DELTA_BINARY_PACKED: times and offsets mostly rise); standard
# Parquet encodings that DuckDB, Spark, pyarrow and delta-rs read.
_UNIQUE_PER_ROW = {
    "event_id": "DELTA_LENGTH_BYTE_ARRAY",
    "session_id": "DELTA_LENGTH_BYTE_ARRAY",
    "event_time": "DELTA_BINARY_PACKED",
    OFFSET_COLUMN: "DELTA_BINARY_PACKED",
}
# Bronze files in zstd level 1 rather than delta-rs's default Snappy: 32.9 bytes per event
# instead of 55.6 at the same throughput; without the dictionaries above, 30.5 bytes and
# about 0.15 µs less Parquet encoding per event; with the delta encodings, about 27.5
# bytes and 0.1 µs less again (docs/benchmarks.md, Ingest).
BRONZE_PARQUET = WriterProperties(
    compression="ZSTD",
    compression_level=1,
    column_properties={
        name: ColumnProperties(dictionary_enabled=False, encoding=encoding)
        for name, encoding in _UNIQUE_PER_ROW.items()
    },
)


class SinkError(RuntimeError):
    """A table cannot be written and retrying will not help; the message names the table."""


def _is_transient(error: Exception) -> bool:
    """Storage and network failures may heal; a missing table, a schema or protocol error
    will not (delta-rs reports outages as OSError or a plain DeltaError, and the typed
    DeltaError subclasses for everything that is not an outage)."""
    if isinstance(error, SchemaMismatchError | DeltaProtocolError | TableNotFoundError):
        return False
    return isinstance(error, OSError | DeltaError)


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
        self.uri = table_uri(spec, settings)
        self.app_prefix = settings.ingest_app_id
        self.partition_column = partition_column
        self.offset_column = offset_column
        self._storage_options = settings.storage_options()
        self._table: DeltaTable = ensure_table(spec, settings)
        self._backoff = retry_backoff or _exponential_backoff
        self._retry_seconds = settings.ingest_retry_seconds
        self._failures = 0  # consecutive transient failures of this operation, for the backoff
        self._failing_since: float | None = None  # first failure of this operation

    def app_id(self, partition: int) -> str:
        """The Delta txn app id recording this topic-partition's landed offset."""
        return f"{self.app_prefix}:{self.topic}:{partition}"

    def recorded_offsets(self, partitions: list[int]) -> dict[int, int | None]:
        """Last landed offset per partition on the newest snapshot (None: nothing yet)."""
        self._begin()
        return self._recorded(partitions)

    def commit_contiguous(self, rows: pa.Table, ranges: dict[int, PartitionRange]) -> CommitResult:
        """Append rows covering exactly `ranges`, or fence the partitions someone else moved."""
        self._begin()
        result = CommitResult()
        live = dict(ranges)
        while True:
            recorded_now = self._recorded(list(live))
            for partition, span in list(live.items()):
                recorded = recorded_now[partition]
                if recorded != span.base:
                    result.fenced[partition] = recorded
                    del live[partition]
            if not live:
                return result
            batch = self._only_partitions(rows, live)
            marks = {p: span.last for p, span in live.items()}
            if self._try_append(batch, marks):
                return self._committed(result, batch, marks)

    def commit_above_watermark(
        self, rows: pa.Table, ranges: dict[int, PartitionRange], data: PartitionedDeltaSink
    ) -> CommitResult:
        """Append a batch's poison rows that this table does not hold yet; idempotent.

        Admitted per partition only while `data` (the bronze table of the same batch)
        records exactly the range's `base`: the data has reached the batch's start. Other
        partitions are fenced, and the caller must not commit their data either. Read in
        this order (data offsets, then this table's snapshot) the admission makes "every
        poison message at or below the data table's offset is here" hold by construction;
        docs/ingest.md has the argument, zombies included.
        """
        self._begin()
        result = CommitResult()
        live = dict(ranges)
        while True:
            landed = data.recorded_offsets(list(live))
            for partition, span in list(live.items()):
                if landed[partition] != span.base:
                    result.fenced[partition] = landed[partition]
                    del live[partition]
            if not live:
                return result
            recorded = self._recorded(list(live))
            batch = self._above(self._only_partitions(rows, live), recorded)
            if batch.num_rows == 0:
                return result
            present = set(pc.unique(batch.column(self.partition_column)).to_pylist())
            marks = {p: span.last for p, span in live.items() if p in present}
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
        return True

    def _committed(
        self, result: CommitResult, batch: pa.Table, marks: dict[int, int]
    ) -> CommitResult:
        result.committed = marks
        result.version = self._table.version()
        result.rows = batch.num_rows
        return result

    def _recorded(self, partitions: list[int]) -> dict[int, int | None]:
        """Refresh the snapshot and read each partition's version on it; both read storage
        (the versions lazily), so both are retried together."""
        while True:
            try:
                self._table.update_incremental()
                return {p: self._table.transaction_version(self.app_id(p)) for p in partitions}
            except Exception as error:
                self._after_failure(error)

    def _append(self, rows: pa.Table, marks: dict[int, int]) -> None:
        transactions = [Transaction(app_id=self.app_id(p), version=o) for p, o in marks.items()]
        write_deltalake(
            self._table,
            rows,
            mode="append",
            commit_properties=CommitProperties(app_transactions=transactions),
            writer_properties=BRONZE_PARQUET,
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

    def _begin(self) -> None:
        """Start an operation: its retry budget and backoff start afresh."""
        self._failures = 0
        self._failing_since = None

    def _after_failure(self, error: Exception) -> None:
        """Back off after a transient storage failure, within the operation's retry budget;
        raise anything else, and a table that has disappeared, naming the table."""
        if not _is_transient(error):
            raise SinkError(f"{self.spec.key} ({self.uri}): {error}") from error
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if self._missing():
            raise SinkError(
                f"{self.spec.key}: the Delta table at {self.uri} no longer exists (deleted "
                "while ingest was running?); not retrying"
            ) from error
        elapsed = time.monotonic() - self._failing_since
        if elapsed >= self._retry_seconds:
            raise SinkError(
                f"{self.spec.key} ({self.uri}): storage still failing after {elapsed:.0f}s "
                f"of retries (INGEST_RETRY_SECONDS={self._retry_seconds:g}): {error}"
            ) from error
        self._failures += 1
        delay = min(self._backoff(self._failures), self._retry_seconds - elapsed)
        log.warning(
            "write to %s failed (attempt %d), retrying in %.1fs: %s",
            self.spec.key,
            self._failures,
            delay,
            error,
        )
        time.sleep(delay)

    def _missing(self) -> bool:
        """Whether the table is gone. delta-rs reports a deleted table's failed commit as a
        plain DeltaError, like an outage; only opening it afresh tells them apart (an
        unreachable store raises something else: no verdict, keep retrying)."""
        try:
            DeltaTable(self.uri, storage_options=self._storage_options)
        except TableNotFoundError:
            return True
        except Exception:
            return False
        return False


def _exponential_backoff(attempt: int) -> float:
    return min(30.0, 0.2 * 2 ** min(attempt, 8))
