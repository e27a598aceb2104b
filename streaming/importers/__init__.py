"""Public data sets sent to the platform as its own events, the way real traffic comes.

Each importer reads one data set beside the repository (`Settings.real_data_dir`) and is
an event source `streaming.producer.produce` sends like a generator: `plan()` counts what
it will send and why lines will not reach silver, `batches()` yields the messages. A data
set that real traffic brings over MQTT (NAB's machine temperature) is published through
the edge instead (`streaming.importers.nab.publish`), from the same batches.
`docs/events.md` documents each mapping field by field. Adding a data set is a module
with such a class, one entry in `IMPORTERS` and its command in `cli/imports.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

from streaming.generators import DomainGenerator
from streaming.importers.cmapss import CmapssImport
from streaming.importers.common import BadRowReason, ImportPlan
from streaming.importers.nab import NabImport
from streaming.importers.online_retail import OnlineRetailImport


class Importer(DomainGenerator, Protocol):
    """What `lakehouse import` needs beyond a generator: where the data set lies, the
    reasons its lines may not reach silver, and a count of what it will send."""

    source: ClassVar[Path]
    reasons: ClassVar[tuple[BadRowReason, ...]]

    def plan(self) -> ImportPlan:
        """Lines selected, lines outside the window, and the count per reason."""
        ...


IMPORTERS: dict[str, type[Importer]] = {
    "online-retail": OnlineRetailImport,
    "nab": NabImport,
    "cmapss": CmapssImport,
}
"""The importers by the name `lakehouse import <name>` takes."""

__all__ = [
    "IMPORTERS",
    "BadRowReason",
    "CmapssImport",
    "ImportPlan",
    "Importer",
    "NabImport",
    "OnlineRetailImport",
]
