"""The columns ingest adds to every decoded event before it lands in bronze.

One function, used by the ingest sidecar's writer and by `tests/support/landing.py`
(traffic landed straight into bronze without Kafka), so every layer above bronze sees the
same provenance columns whichever way the rows arrived.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.schemas import INGEST_COLUMNS, TIMESTAMP


def with_provenance(
    events: pa.Table, partitions: np.ndarray, offsets: np.ndarray, ingested_at: datetime
) -> pa.Table:
    """`events` (decoded, one row per landed message) plus `_kafka_partition`,
    `_kafka_offset`, `_ingested_at` and `event_date` (the UTC date of `event_time`, the
    bronze tables' partition column); columnar, no per-row Python."""
    rows = events.num_rows
    columns = [
        *events.columns,
        pa.array(partitions, pa.int32()),
        pa.array(offsets, pa.int64()),
        pa.repeat(pa.scalar(ingested_at, TIMESTAMP), rows),
        pc.cast(events.column("event_time"), pa.date32()),
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema([*events.schema, *INGEST_COLUMNS]))
