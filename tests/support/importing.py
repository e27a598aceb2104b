"""What the importers' tests share: a data set's CSV written from rows, and the messages an
import would send, decoded back, so a test reads the mapping as the broker receives it."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson


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
