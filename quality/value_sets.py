"""In-set expectations over large reference sets (purchases' known products: thousands of
values a day). GX re-serialises an expectation, value set included, through pydantic a
hundred times or more per validation: about 2 s for a 5,000-value set, whatever the rows.
The DuckDB and Spark paths (`quality/relation.py`, `quality/spark.py`) judge such an
expectation as GX's `UnexpectedRowsExpectation` instead, a query of the rows outside a
table of the values, and report its outcome as the in-set expectation's; this module
decides which expectations they translate, so both translate the same ones.
"""

from __future__ import annotations

from typing import Any

from quality.checks import Expect

LARGE_VALUE_SET = 64
"""An in-set expectation with more values than this runs as a query of the rows outside
the set; the vocabularies' short lists stay GX's own in-set expectations."""


def in_large_set(expect: Expect) -> list[Any] | None:
    """The values of `expect` if it is an in-set expectation judged as a query of the rows
    outside the set: more than LARGE_VALUE_SET values, on every row (no `where`, no
    `mostly`, whose semantics the query does not carry); otherwise None."""
    values = expect.kwargs.get("value_set")
    plain = set(expect.kwargs) == {"column", "value_set"} and expect.where is None
    if expect.type != "ExpectColumnValuesToBeInSet" or not plain:
        return None
    return (
        list(values) if isinstance(values, list | tuple) and len(values) > LARGE_VALUE_SET else None
    )
