"""What the importers' tests share: a data set's CSV written from rows, the messages an
import would send, decoded back, so a test reads the mapping as the broker receives it,
and a clean day of imported engine cycles for the tests that build a day of every table."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from lakehouse.catalog import BRONZE_ENGINE_CYCLES, ENGINE_CYCLES
from lakehouse.settings import Settings
from streaming.importers.cmapss import EPOCH, SOURCE, CmapssImport
from streaming.ingest.decode import BatchDecoder
from streaming.ingest.provenance import with_provenance


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """`rows` under `header` as the data set's CSV at `path` (DuckDB and the importers read
    plain CSV as they read the gzipped original)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sent_messages(importer: Any, batch_size: int) -> list[dict[str, object]]:
    """Every message `importer` sends, decoded back from JSON, in file order; a small
    `batch_size` so that the batching is exercised too."""
    batches = importer.batches(importer.plan().selected, batch_size=batch_size)
    return [orjson.loads(value) for batch in batches for value in batch.values]


def engine_cycles_messages(day: date) -> list[bytes]:
    """The import's messages for the real FD001's training and test engine 1, their cycles
    1 to 23, moved from the import's first day (EPOCH) to `day`: a clean day of
    `engine_cycles` to produce beside the generators' days."""
    importer = CmapssImport(Settings().real_data_dir / SOURCE, limit=23)
    shift = datetime.combine(day, datetime.min.time(), UTC) - EPOCH
    messages = []
    for batch in importer.batches(46):
        for value in batch.values:
            message = orjson.loads(value)
            moved = datetime.fromisoformat(str(message["event_time"])) + shift
            message["event_time"] = moved.isoformat(timespec="microseconds").replace("+00:00", "Z")
            messages.append(orjson.dumps(message))
    return messages


def engine_cycles_bronze(day: date) -> pa.Table:
    """`engine_cycles_messages(day)` as the ingest lands them in bronze."""
    decoded = BatchDecoder(ENGINE_CYCLES.event, 1 << 20).decode(engine_cycles_messages(day))
    assert not decoded.rejects, decoded.rejects
    rows = with_provenance(
        decoded.table,
        np.zeros(decoded.table.num_rows, np.int32),
        decoded.indices.astype(np.int64),
        datetime.now(UTC),
    )
    return rows.cast(BRONZE_ENGINE_CYCLES.schema)
