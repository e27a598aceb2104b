"""Noticing a changed table cheaply: a catalogued Delta table (the model registry, the
per-device operating limits) is read only when its log has moved since the last look.

A service or processor polls every few seconds, in the same process (and under the same
interpreter lock) as its work, so a poll must cost next to nothing: one incremental read
of the log on a table kept open, and the table itself only when the version changed.
"""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.catalog import TableSpec
from lakehouse.delta import open_table
from lakehouse.settings import Settings


class TableWatch:
    """Tells whether `spec`'s table changed since the last `seen` call."""

    def __init__(self, spec: TableSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self._table: DeltaTable | None = None
        self._seen: int | None = None

    def version(self) -> int | None:
        """The table's Delta version now (None before it exists)."""
        if self._table is None:
            self._table = open_table(self.spec, self.settings)
            if self._table is None:
                return None
        else:
            self._table.update_incremental()
        return self._table.version()

    def rows(self) -> pa.Table:
        """The table's rows at the version `version` last read (none before it exists)."""
        if self._table is None:
            return self.spec.schema.empty_table()
        return self._table.to_pyarrow_table()

    def moved(self) -> int | None:
        """The version now when it differs from the last one marked `seen`, else None."""
        now = self.version()
        return None if now is None or now == self._seen else now

    def seen(self, version: int) -> None:
        """Mark `version` as handled (only once what it holds is loaded)."""
        self._seen = version
