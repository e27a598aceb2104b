"""Noticing a new champion cheaply: the model registry is read only when its Delta log
has moved since the last look.

A service polls every few seconds, in the same process (and under the same interpreter
lock) as its requests, so a poll must cost next to nothing: one incremental read of the
log on a table kept open, and the registry itself only when the version changed.
"""

from __future__ import annotations

from deltalake import DeltaTable

from lakehouse.catalog import MODEL_REGISTRY
from lakehouse.delta import open_table
from lakehouse.settings import Settings


class RegistryWatch:
    """Tells whether the registry changed since the last `seen` call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._table: DeltaTable | None = None
        self._seen: int | None = None

    def version(self) -> int | None:
        """The registry table's Delta version now (None before it exists)."""
        if self._table is None:
            self._table = open_table(MODEL_REGISTRY, self.settings)
            if self._table is None:
                return None
        else:
            self._table.update_incremental()
        return self._table.version()

    def moved(self) -> int | None:
        """The version now when it differs from the last one marked `seen`, else None."""
        now = self.version()
        return None if now is None or now == self._seen else now

    def seen(self, version: int) -> None:
        """Mark `version` as handled (only once what it holds is loaded)."""
        self._seen = version
