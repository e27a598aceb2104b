"""What landed, checked against what was produced, and what it costs on disk.

A throughput figure is only reported for a run that passes these checks: every produced
message is in bronze or in quarantine exactly once, with the right quarantine reasons,
and each partition's offset recorded in the Delta log is its last offset, none missing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse.catalog import CATALOG, QUARANTINE, table_uri
from lakehouse.settings import Settings


@dataclass
class LakeCheck:
    """The outcome of comparing a lake with the produced traffic; `ok` is the verdict."""

    produced: int
    expected_poison: dict[str, int]
    bronze_rows: int = 0
    distinct_event_ids: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    distinct_offsets: int = 0
    recorded_offsets_at_end: bool = False
    bronze_bytes: int = 0
    bronze_files: int = 0
    bronze_commits: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_lake(
    settings: Settings, topic: str, produced: int, expected_poison: dict[str, int]
) -> LakeCheck:
    """Count, dedupe and reconcile the bronze and quarantine tables of one topic."""
    check = LakeCheck(produced=produced, expected_poison=dict(expected_poison))
    spec = CATALOG.bronze_for_topic(topic)
    bronze = DeltaTable(table_uri(spec, settings))
    rows = bronze.to_pyarrow_table(columns=["event_id", "_kafka_partition", "_kafka_offset"])
    check.bronze_rows = rows.num_rows
    check.distinct_event_ids = pc.count_distinct(rows.column("event_id")).as_py()
    _measure_files(bronze, check)

    quarantine = DeltaTable(table_uri(QUARANTINE, settings)).to_pyarrow_table(
        columns=["topic", "partition", "offset", "reason"]
    )
    quarantine = quarantine.filter(pc.equal(quarantine.column("topic"), topic))
    check.quarantined = quarantine.num_rows
    check.quarantine_reasons = dict(Counter(quarantine.column("reason").to_pylist()))

    keys = np.concatenate(
        [
            _position_keys(rows.column("_kafka_partition"), rows.column("_kafka_offset")),
            _position_keys(quarantine.column("partition"), quarantine.column("offset")),
        ]
    )
    unique = np.unique(keys)
    check.distinct_offsets = len(unique)
    check.recorded_offsets_at_end = _offsets_complete(bronze, settings.ingest_app_id, topic, unique)
    _judge(check)
    return check


def _position_keys(partitions: pa.ChunkedArray, offsets: pa.ChunkedArray) -> np.ndarray:
    """One int64 per (partition, offset): partition in the top bits, offset below."""
    partition = partitions.to_numpy().astype(np.int64)
    return (partition << 40) | offsets.to_numpy().astype(np.int64)


def _measure_files(table: DeltaTable, check: LakeCheck) -> None:
    actions = table.get_add_actions(flatten=True)
    check.bronze_files = actions.num_rows
    check.bronze_bytes = sum(actions.column("size_bytes").to_pylist())
    check.bronze_commits = table.version()  # version 0 is the table's creation


def _offsets_complete(table: DeltaTable, app_prefix: str, topic: str, keys: np.ndarray) -> bool:
    """Whether each partition's txn version is its last landed offset, with none missing.

    Offsets of a partition written without transactions run 0..n-1, so a partition is
    complete when it landed exactly recorded + 1 distinct offsets. (tansu's ListOffsets
    is not exact, so the topic's watermarks are not used here.)
    """
    partitions = keys >> 40
    for partition in np.unique(partitions).tolist():
        offsets = keys[partitions == partition] & ((1 << 40) - 1)
        recorded = table.transaction_version(f"{app_prefix}:{topic}:{partition}")
        if recorded is None or recorded != offsets.max() or len(offsets) != recorded + 1:
            return False
    return True


def _judge(check: LakeCheck) -> None:
    poison = sum(check.expected_poison.values())
    valid = check.produced - poison
    if check.bronze_rows != valid:
        check.problems.append(f"bronze has {check.bronze_rows:,} rows, expected {valid:,}")
    if check.distinct_event_ids != check.bronze_rows:
        duplicates = check.bronze_rows - check.distinct_event_ids
        check.problems.append(f"{duplicates:,} duplicate event ids in bronze")
    if check.quarantine_reasons != check.expected_poison:
        check.problems.append(
            f"quarantine reasons {check.quarantine_reasons} != injected {check.expected_poison}"
        )
    if check.distinct_offsets != check.produced:
        check.problems.append(
            f"{check.distinct_offsets:,} distinct offsets landed, {check.produced:,} produced"
        )
    if not check.recorded_offsets_at_end:
        check.problems.append("a partition's recorded offset is not its last landed offset")
