"""What every importer shares: why a line will not reach silver, the plan an import
counts before it sends, and the checks on where the data set lies and how much to send.
Kept apart from any one data set's module, so each importer depends on this, not on
another importer."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lakehouse.catalog import QUARANTINE

CLEAN = "clean"
"""The reason of a line that reaches silver."""

QUARANTINED = f"{QUARANTINE.key} (missing_required_field)"
"""Where a line goes whose message lacks a field the contract requires."""

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


@dataclass(frozen=True)
class BadRowReason:
    """Why an imported line will not reach silver, and where the platform puts it.
    `predicate` states which lines: SQL for an importer that classifies its lines in
    DuckDB (Online Retail), words for one that does so line by line (NAB)."""

    name: str
    goes_to: str
    predicate: str


@dataclass(frozen=True)
class ImportPlan:
    """What an import will send: lines selected, lines outside the window, and the count
    per reason (`CLEAN` included), which add up to the lines selected."""

    selected: int
    outside_window: int
    per_reason: dict[str, int]


def counted_plan(reasons: Iterable[str]) -> ImportPlan:
    """The plan of an import that judges its lines one at a time (NAB, C-MAPSS): each
    selected line's reason counted, in first-seen order; such imports have no window, so
    nothing lies outside one."""
    per_reason = Counter(reasons)
    return ImportPlan(sum(per_reason.values()), 0, dict(per_reason))


def check_source(path: Path, title: str, source: Path, limit: int | None) -> None:
    """Refuse, before anything is read or sent, a data set that is not at `path` (naming
    the folder REAL_DATA_DIR must hold) and a negative `limit`."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{title} is not at {path}; set REAL_DATA_DIR to the folder holding {source}"
        )
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")


def parse_number(text: str) -> float | None:
    """A number in plain or exponent notation, or None when the text is not one or the
    number is not finite (`nan`, `inf`, `1e999`, `1_000` and words are not read)."""
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None
