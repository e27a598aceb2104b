"""Rows that break a quality expectation on purpose: how the quality tests show a check
catches what it should, on every engine that runs it."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from lakehouse.catalog import TableSpec
from lakehouse.settings import Settings
from quality.checks import Expect
from quality.suites import suite_for

WHOLE_TABLE = ("ExpectTableColumnsToMatchOrderedList", "ExpectTableRowCountToBeBetween")
"""Expectations on the table as a whole (its schema, its volume), not on its values."""


def broken(rows: pa.Table, expect: Expect) -> pa.Table:
    """`rows` changed so that exactly this expectation no longer holds."""
    kind, kwargs = expect.type, expect.kwargs
    if kind == "ExpectTableColumnsToMatchOrderedList":
        return rows.drop_columns([rows.schema.names[-1]])
    if kind in ("ExpectColumnValuesToBeUnique", "ExpectCompoundColumnsToBeUnique"):
        return pa.concat_tables([rows, rows.slice(0, 1)])
    first = 0
    if expect.where is not None:  # damage a row the expectation applies to
        column, value = expect.where
        first = rows[column].to_pylist().index(value)
    column = kwargs.get("column") or kwargs.get("column_B")
    values = rows[column].to_pylist()
    if kind == "ExpectColumnValuesToBeBetween":
        bad = (
            kwargs["max_value"] + 1 if kwargs["max_value"] is not None else kwargs["min_value"] - 1
        )
    elif kind == "ExpectColumnValuesToBeInSet":
        textual = pa.types.is_string(rows.schema.field(column).type)
        bad = "not-a-known-value" if textual else -987654321
    elif kind == "ExpectColumnValuesToNotBeNull":
        share = 1.0 - kwargs.get("mostly", 1.0)  # a "mostly" check needs more than its allowance
        count = int(len(values) * share) + 1
        values[first : first + count] = [None] * count
        bad = None
    elif kind == "ExpectColumnPairValuesAToBeGreaterThanB":
        bad = rows[kwargs["column_A"]][first].as_py() + 1
    else:
        raise AssertionError(f"no way to break {kind} yet: add one here")
    values[first] = bad
    field = rows.schema.field(column)
    return rows.set_column(rows.schema.get_field_index(column), field, pa.array(values, field.type))


def every_rule_broken(table: TableSpec, rows: pa.Table, settings: Settings, day: date) -> pa.Table:
    """`rows` with each value rule of the table's suite broken once (the schema kept)."""
    for check in suite_for(table).checks:
        for expect in check.expectations_for(settings, day):
            if expect.type not in WHOLE_TABLE:
                rows = broken(rows, expect)
    return rows
