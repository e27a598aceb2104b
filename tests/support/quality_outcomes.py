"""One suite's outcomes on another engine against the pandas engine's on the same rows as
Arrow: what the DuckDB and Spark quality tests assert, so both hold their engine to the
same standard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.catalog import TableSpec
from lakehouse.settings import Settings
from quality import validate as validate_module
from quality.checks import Suite
from quality.suites import suite_for
from quality.validate import SAMPLE_ROWS, CheckOutcome, validate


def ids(outcome: Any) -> set[frozenset[tuple[str, Any]]]:
    """An expectation's failing ids, comparable whatever order the engine met them in."""
    return {frozenset(row.items()) for row in outcome.failing_ids}


def assert_same_outcomes(
    table: TableSpec,
    rows: pa.Table,
    on_engine: Callable[[pa.Table], Any],
    day: date,
    settings: Settings,
    suite: Suite | None = None,
) -> list[CheckOutcome]:
    """Validate `rows` as Arrow and as `on_engine` hands them to the gate; the outcomes
    must agree: verdicts, observed values, unexpected counts and percents, failing ids and
    samples. GX lists at most SAMPLE_ROWS failing ids, the first it meets, and the other
    engine has no row order: with more failures, its ids are among all the failing ids
    (the pandas engine's, asked for every one). Returns the other engine's outcomes."""
    suite = suite or suite_for(table)
    on_arrow = validate(suite, rows, day, settings)
    on_other = validate(suite, on_engine(rows), day, settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validate_module, "SAMPLE_ROWS", rows.num_rows)
        every_id = validate(suite, rows, day, settings)
    assert [o.check.name for o in on_other] == [o.check.name for o in on_arrow]
    for arrow, other, complete in zip(on_arrow, on_other, every_id, strict=True):
        assert other.passed == arrow.passed, arrow.check.name
        for a, o, c in zip(
            arrow.expectations, other.expectations, complete.expectations, strict=True
        ):
            what = (arrow.check.name, a.expect.describe())
            assert (o.expect, o.success, o.observed, o.unexpected_count) == (
                a.expect,
                a.success,
                a.observed,
                a.unexpected_count,
            ), what
            assert o.unexpected_percent == pytest.approx(a.unexpected_percent), what
            if (a.unexpected_count or 0) <= SAMPLE_ROWS:
                assert ids(o) == ids(a), what
            else:
                assert len(o.failing_ids) == len(a.failing_ids) == SAMPLE_ROWS, what
                assert ids(o) <= ids(c), what
        if arrow.sample is None:
            assert other.sample is None
        else:
            assert other.sample is not None and other.sample.schema == arrow.sample.schema
            assert other.sample.num_rows == arrow.sample.num_rows
    return on_other
