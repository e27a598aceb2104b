"""Which instants a lake timestamp column may hold, and Kafka timestamps turned into one.

Arrow, Parquet and DuckDB hold microsecond timestamps for about +-290,000 years, but
Python's `datetime` (what `to_pylist()`, pandas' object path and most client code use)
only holds years 1 to 9999. A value outside that range is stored without complaint and
then breaks every reader that converts it, far from where it came in. So every timestamp
the ingest sidecar writes is kept within Python's range: event timestamps outside it are
rejected by the decoder (`schema_mismatch`), Kafka timestamps outside it become null in the
quarantine's `kafka_timestamp` column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.schemas import TIMESTAMP

# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, in microseconds since the epoch.
MIN_MICROS = -62_135_596_800_000_000
MAX_MICROS = 253_402_300_799_999_999
# Kafka's "no timestamp" (RecordBatch.NO_TIMESTAMP).
KAFKA_NO_TIMESTAMP = -1
KAFKA_TIMESTAMP_NOT_AVAILABLE = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


def out_of_range(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """True where a timestamp lies outside what Python's datetime can hold (null stays null)."""
    micros = pc.cast(column, pa.int64())
    return pc.or_(pc.less(micros, MIN_MICROS), pc.greater(micros, MAX_MICROS))


def kafka_timestamps(kinds: np.ndarray, millis: np.ndarray) -> pa.Array:
    """Kafka (type, milliseconds) pairs as a timestamp column, null where there is none.

    Null when the type is TIMESTAMP_NOT_AVAILABLE, when the value is Kafka's -1 ("no
    timestamp"), or when it lies outside years 1-9999 UTC. Any producer may set any 64-bit
    value, so this is checked in bulk, before any multiplication could overflow.
    """
    millis = millis.astype(np.int64, copy=False)
    valid = (
        (kinds != KAFKA_TIMESTAMP_NOT_AVAILABLE)
        & (millis != KAFKA_NO_TIMESTAMP)
        & (millis >= MIN_MICROS // 1000)
        & (millis <= MAX_MICROS // 1000)
    )
    micros = np.where(valid, millis, 0) * 1000
    return pa.array(micros, pa.int64(), mask=~valid).cast(TIMESTAMP)
