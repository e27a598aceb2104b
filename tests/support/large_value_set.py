"""In-set expectations over a large value set, as the DuckDB and Spark quality tests check
them: each engine judges such an expectation as a query of the rows outside the set
(`quality/value_sets.py`), and its outcome must still be the pandas engine's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.catalog import SILVER_TRANSACTIONS
from lakehouse.settings import Settings
from quality.checks import Check, Expect, Suite
from quality.value_sets import LARGE_VALUE_SET
from tests.support.quality_outcomes import assert_same_outcomes, ids

KNOWN = list(range(100, 100 + LARGE_VALUE_SET + 36))
PLAIN = Expect("ExpectColumnValuesToBeInSet", {"column": "user_id", "value_set": KNOWN})
WHERE = Expect(PLAIN.type, PLAIN.kwargs, where=("channel", "web"))
MOSTLY = Expect(PLAIN.type, {**PLAIN.kwargs, "mostly": 0.5})
"""The same large set on every row, on web rows only, and for half the rows: only the
first is translated, the others carry semantics the query does not."""


@contextmanager
def translated(engine: ModuleType) -> Iterator[list[Expect]]:
    """The expectations `engine.outside_set` (DuckDB's or Spark's) translates into a query
    while the block runs, in order."""
    queried: list[Expect] = []
    original: Callable[..., Any] = engine.outside_set

    def recording(gxe: Any, expect: Expect, index: int) -> Any:
        queried.append(expect)
        return original(gxe, expect, index)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "outside_set", recording)
        yield queried


def assert_large_sets_judged_as_pandas(
    engine: ModuleType, on_engine: Callable[[pa.Table], Any], day: date, settings: Settings
) -> None:
    """PLAIN, WHERE and MOSTLY over eight rows, with nulls and values outside the set:
    `engine` translates PLAIN only, and all three outcomes are the pandas engine's, which
    are checked by hand too (three of seven non-null values outside, two on the web)."""
    rows = pa.table(
        {
            "event_id": [f"e{i}" for i in range(8)],
            "user_id": [100, 101, 7, None, 8, 102, 9, 100],
            "channel": ["web", "web", "web", "web", "app", "app", "web", "app"],
        }
    )
    suite = Suite(
        SILVER_TRANSACTIONS,
        tuple(Check(f"known_{i}", "", (e,)) for i, e in enumerate((PLAIN, WHERE, MOSTLY))),
        ("event_id",),
    )
    with translated(engine) as queried:
        outcomes = assert_same_outcomes(SILVER_TRANSACTIONS, rows, on_engine, day, settings, suite)
    assert queried == [PLAIN]
    counted = [(o.expectations[0].unexpected_count, o.passed) for o in outcomes]
    assert counted == [(3, False), (2, False), (3, True)]
    assert outcomes[0].expectations[0].unexpected_percent == pytest.approx(3 / 7 * 100)
    assert ids(outcomes[0].expectations[0]) == {
        frozenset({("event_id", f"e{i}")}) for i in (2, 4, 6)
    }
