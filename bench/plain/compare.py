"""Whether the plain pipeline's Parquet files hold the project's rows for the day."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from bench.plain.pipeline import TOPICS
from lakehouse.catalog import CATALOG

# Each output, by its path under the plain pipeline's folder, with the project's table and
# the key both sides are sorted by before comparing row for row.
KEYS = {
    **{f"silver/{topic}": ("event_id",) for topic in TOPICS},
    "gold/product_daily": ("event_date", "product_id"),
    "gold/user_activity_daily": ("event_date", "user_id"),
}
# Floats agree to this relative (and absolute, near zero) tolerance: sums over the same
# numbers in another order differ in the last bits.
REL_TOL = 1e-9
ABS_TOL = 1e-9


def project_day(lake_root: str, key: str, day: date) -> pl.DataFrame:
    """One day of a project table, read from its Delta table."""
    spec = CATALOG.table(key.replace("/", "."))
    dataset = DeltaTable(f"{lake_root}/{spec.layer}/{spec.name}").to_pyarrow_dataset()
    return pl.DataFrame(dataset.to_table(filter=ds.field("event_date") == day))


def same_rows(plain: pl.DataFrame, project: pl.DataFrame, key: tuple[str, ...]) -> str | None:
    """None when both hold the same rows (sorted by `key`, floats to the tolerance), else
    what differs."""
    if plain.columns != project.columns:
        return f"columns differ: {plain.columns} != {project.columns}"
    if plain.height != project.height:
        return f"{plain.height:,} rows != the project's {project.height:,}"
    try:
        assert_frame_equal(plain.sort(key), project.sort(key), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    except AssertionError as error:
        return str(error)
    return None


def compare_day(lake_root: str, day: date, out_dir: Path) -> dict[str, str | None]:
    """Per output of `run_plain` under `out_dir`: None if it equals the project's table
    for `day`, else what differs."""
    return {
        key: same_rows(
            pl.read_parquet(out_dir / f"{key}.parquet"), project_day(lake_root, key, day), columns
        )
        for key, columns in KEYS.items()
    }
