"""The default batch store: one immutable Arrow IPC file per publication under the lake
root, memory-mapped by the service.

Layout, under `<lake>/online/recommendations/`:

- `<publication_id>.arrow`: one record batch, a row per user sorted by `user_id`, with
  the user's products and scores as list columns (best first). The popularity list and
  the `Publication` ride in the schema's metadata. One batch keeps every column a single
  contiguous buffer, so opening is `pa.memory_map` plus reading the footer: nothing is
  copied, the pages are faulted in as users are looked up (1M users x 10 = 128 MB of file,
  12 bytes per recommendation plus 8 per user and 4 per list offset).
- `CURRENT.json`: the pointer, the `Publication` of the file to serve. It is replaced only
  after the file is complete (a rename locally, a single PUT on S3, both atomic), so a
  reader sees the old publication or the new one, never half of one. The last
  `KEEP_PUBLICATIONS` files stay, so a service still holding the previous one (it swaps
  on its next poll) never loses its file.

A lookup is `np.searchsorted` over the memory-mapped user ids and a slice of the offsets:
a few microseconds, no Python per row at load. S3 has no memory mapping; there the file
is read into memory once per publication.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from pyarrow import fs

from lakehouse.online.batch_store import NothingPublished, Publication, Ranked
from lakehouse.settings import Settings
from lakehouse.storage import filesystem

KEEP_PUBLICATIONS = 3
POINTER = "CURRENT.json"
_PUBLICATION_KEY = b"lakehouse.publication"
_POPULAR_KEY = b"lakehouse.popular"


def folder(settings: Settings) -> str:
    """Where the publications and their pointer live."""
    return f"{settings.lake_root}/online/recommendations"


def write_publication(
    settings: Settings, publication: Publication, users: pa.Table, popular: pa.Table
) -> int:
    """Write `users` (one row per user: `user_id`, `products`, `scores`, sorted by user)
    and the `popular` list (`product_id`, `buyers`, best first) as the file of
    `publication`, then point `CURRENT.json` at it; return the file's bytes."""
    popular_pairs = np.column_stack(
        [popular["product_id"].to_numpy(), popular["buyers"].to_numpy()]
    ).tolist()
    schema = users.schema.with_metadata(
        {
            _PUBLICATION_KEY: _to_json(publication),
            _POPULAR_KEY: json.dumps(popular_pairs).encode(),
        }
    )
    batches = users.cast(schema).combine_chunks().to_batches(max_chunksize=max(users.num_rows, 1))
    files, base = filesystem(settings, folder(settings))
    files.create_dir(base, recursive=True)
    target = f"{base}/{publication.publication_id}.arrow"
    with files.open_output_stream(target) as sink, ipc.new_file(sink, schema) as writer:
        for batch in batches:  # one: every column a single contiguous buffer
            writer.write_batch(batch)
    size = files.get_file_info(target).size
    _replace_pointer(settings, publication)
    _prune(settings, keep=publication.publication_id)
    return int(size)


def latest_publication(settings: Settings) -> Publication | None:
    """The publication `CURRENT.json` names; None before the first publish."""
    files, base = filesystem(settings, folder(settings))
    try:
        with files.open_input_stream(f"{base}/{POINTER}") as stream:
            return _from_json(stream.read())
    except FileNotFoundError:
        return None


class FileStore:
    """A publication's file, opened for reading (memory-mapped when local)."""

    def __init__(self, settings: Settings, publication: Publication) -> None:
        files, base = filesystem(settings, folder(settings))
        path = f"{base}/{publication.publication_id}.arrow"
        if settings.lake_is_s3:
            with files.open_input_file(path) as source:
                self._source: pa.NativeFile = pa.BufferReader(source.read_buffer())
        else:
            self._source = pa.memory_map(path, "r")
        table = ipc.open_file(self._source).read_all()
        self.publication = publication
        self.table = table
        users = table.column("user_id").combine_chunks()
        products = table.column("products").combine_chunks()
        scores = table.column("scores").combine_chunks()
        self._users = users.to_numpy()
        self._offsets = products.offsets.to_numpy()
        self._products = products.values.to_numpy()
        self._scores = scores.values.to_numpy()
        pairs = json.loads(table.schema.metadata[_POPULAR_KEY])
        self._popular: Ranked = [(int(product), float(buyers)) for product, buyers in pairs]

    def top(self, user_id: int, k: int) -> Ranked | None:
        """The user's best `k` batch recommendations; None if the publication has none."""
        row = int(np.searchsorted(self._users, user_id))
        if row >= self._users.size or self._users[row] != user_id:
            return None
        start = int(self._offsets[row])
        end = min(int(self._offsets[row + 1]), start + k)
        return list(
            zip(self._products[start:end].tolist(), self._scores[start:end].tolist(), strict=True)
        )

    def popular(self, k: int) -> Ranked:
        """The `k` products with the most distinct buyers."""
        return self._popular[:k]

    def close(self) -> None:
        """Unmap the file (the arrays above must not be used afterwards)."""
        self._source.close()


def open_file_store(settings: Settings, publication: Publication | None = None) -> FileStore:
    """The store of `publication` (default: the current one)."""
    publication = publication or latest_publication(settings)
    if publication is None:
        raise NothingPublished(f"nothing published under {folder(settings)} yet")
    return FileStore(settings, publication)


def _replace_pointer(settings: Settings, publication: Publication) -> None:
    files, base = filesystem(settings, folder(settings))
    body = _to_json(publication)
    if settings.lake_is_s3:
        with files.open_output_stream(f"{base}/{POINTER}") as stream:
            stream.write(body)  # one PUT: S3 readers see the old object or the new one
        return
    temporary = Path(base) / f".{POINTER}.{os.getpid()}"
    temporary.write_bytes(body)
    os.replace(temporary, Path(base) / POINTER)  # atomic on POSIX


def _prune(settings: Settings, keep: str) -> None:
    """Delete all but the newest `KEEP_PUBLICATIONS` files (ids sort by publish time)."""
    files, base = filesystem(settings, folder(settings))
    infos = files.get_file_info(fs.FileSelector(base))
    names = sorted(info.base_name for info in infos if info.base_name.endswith(".arrow"))
    for name in names[:-KEEP_PUBLICATIONS]:
        if not name.startswith(keep):
            files.delete_file(f"{base}/{name}")


def _to_json(publication: Publication) -> bytes:
    return json.dumps(asdict(publication), default=_iso).encode()


def _from_json(body: bytes) -> Publication:
    values: dict[str, Any] = json.loads(body)
    values["as_of"] = date.fromisoformat(values["as_of"])
    values["published_at"] = datetime.fromisoformat(values["published_at"])
    return Publication(**values)


def _iso(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {value!r}")
