"""Comparing two builds' rows: what tests that pit one way of building a table against
another (bounded against in memory, one engine against another) assert."""

from __future__ import annotations

import math

import pyarrow as pa

REL_TOL = 1e-9
"""Doubles summed in a different order (more threads, spilled partitions) differ in the
last bits; everything else must be equal."""


def assert_same_rows(expected: pa.Table, actual: pa.Table, what: str = "") -> None:
    """Same schema, same rows in the same order: doubles to REL_TOL, the rest exactly."""
    assert actual.schema == expected.schema, what
    assert actual.num_rows == expected.num_rows, what
    for want, got in zip(expected.to_pylist(), actual.to_pylist(), strict=True):
        for name, value in want.items():
            if isinstance(value, float) and got[name] is not None and not math.isnan(value):
                assert math.isclose(got[name], value, rel_tol=REL_TOL), (what, name, want, got)
            else:
                assert got[name] == value, (what, name, want, got)
