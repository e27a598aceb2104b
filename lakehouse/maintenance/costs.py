"""What the lake's storage costs per month, with and without S3 tiering.

Bytes come from the Delta logs alone (the add actions' `size_bytes`, no data is read),
aged by the partition date of each live file (its modification time for a table without
a date partition), and priced in the storage class the table's lifecycle rules put a
file of that age in (`lifecycle.live_tiers`). On a local lake the tiered figure is what
the same tables would cost on S3.

`seed_tiering_estimate` redoes the seed's arithmetic (50 TB/day, 1.5 PB/month: $34,500
all-Standard against "about $12,000" tiered) with a stated age assumption; see its
docstring and docs/storage-tiering.md for the figure it gives and the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import CATALOG, Catalog, StorageClass, TableSpec, TierRule
from lakehouse.delta import open_table
from lakehouse.maintenance.lifecycle import live_tiers
from lakehouse.models.plots import markdown_image, stacked_bars
from lakehouse.settings import Settings

TB = 10**12
"""Decimal terabytes, as the seed counts (1.5 PB = 1,500 TB) and S3 prices per GB."""

PRICES_PER_TB_MONTH = MappingProxyType(
    {
        # The seed's "Storage Tiering Strategy" table, which matches AWS's us-east-1 list
        # prices per GB-month (S3 Standard's first 50 TB tier; it drops to $22 and $21
        # above 50 and 500 TB, which the seed and this report ignore).
        StorageClass.STANDARD: 23.0,
        StorageClass.STANDARD_IA: 12.5,
        StorageClass.GLACIER_IR: 4.0,
        # Not in the seed: AWS us-east-1 list prices ($0.0036 and $0.00099 per GB-month);
        # the seed rounds Deep Archive to $1.
        StorageClass.GLACIER: 3.6,
        StorageClass.DEEP_ARCHIVE: 1.0,
    }
)
"""USD per TB-month by storage class (requests, retrievals and minimum charges aside)."""


@dataclass(frozen=True)
class AgeBand:
    """Files whose age in days is in [start, end); `end` None: no upper bound."""

    label: str
    start: int
    end: int | None


AGE_BANDS = (
    AgeBand("0-30 d", 0, 30),
    AgeBand("30-180 d", 30, 180),
    AgeBand("180-365 d", 180, 365),
    AgeBand("365+ d", 365, None),
)
"""The seed's tiers as age bands: Standard, IA, Glacier IR, then the archive tier."""

SEED_TIERS = (
    TierRule(StorageClass.STANDARD_IA, 30),
    TierRule(StorageClass.GLACIER_IR, 180),
    TierRule(StorageClass.DEEP_ARCHIVE, 365),
)
"""The seed's tiering as written, Deep Archive included: what its estimate assumes. The
catalog's tables stop at Glacier IR (lakehouse.catalog.STANDARD_TIERS)."""

SEED_DAILY_TB = 50.0
SEED_TIERED_USD = 12_000.0
"""The seed's 'with tiering' figure, which it derives from no stated age distribution."""


_PRICED_FILES = pa.schema(
    [
        ("table", pa.string()),
        ("band_start", pa.int64()),
        ("band", pa.string()),
        ("storage_class", pa.string()),
        ("bytes", pa.int64()),
        ("standard_usd", pa.float64()),
        ("tiered_usd", pa.float64()),
    ]
)


@dataclass(frozen=True)
class CostReport:
    """Monthly storage cost per table, age band and storage class.

    `rows`: table, band, storage_class, files, bytes, standard_usd (everything in S3
    Standard) and tiered_usd (each file in its lifecycle class), ordered by table, band.
    """

    as_of: date
    rows: pa.Table

    @property
    def total_bytes(self) -> int:
        """Bytes of every live file of every table."""
        return int(pc.sum(self.rows["bytes"]).as_py() or 0)

    @property
    def standard_usd(self) -> float:
        """Monthly cost with everything in S3 Standard."""
        return float(pc.sum(self.rows["standard_usd"]).as_py() or 0.0)

    @property
    def tiered_usd(self) -> float:
        """Monthly cost with the lifecycle rules applied."""
        return float(pc.sum(self.rows["tiered_usd"]).as_py() or 0.0)

    def markdown(self) -> str:
        """The rows as a Markdown table, for Dagster's `MetadataValue.md`."""
        lines = [
            "| table | age | class | files | bytes | USD/month Standard | USD/month tiered |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for row in self.rows.to_pylist():
            lines.append(
                f"| {row['table']} | {row['band']} | {row['storage_class']} | {row['files']} "
                f"| {row['bytes']:,} | {_usd(row['standard_usd'])} "
                f"| {_usd(row['tiered_usd'])} |"
            )
        files = pc.sum(self.rows["files"]).as_py() or 0
        lines.append(
            f"| **all** | | | {files} | {self.total_bytes:,} | {_usd(self.standard_usd)} "
            f"| {_usd(self.tiered_usd)} |"
        )
        return "\n".join(lines)


def _usd(value: float) -> str:
    """Cents for real lakes; significant digits for the tiny ones of a demo or a test."""
    return f"{value:,.2f}" if value >= 0.01 or value == 0 else f"{value:.2e}"


def cost_report(
    settings: Settings, *, as_of: date | None = None, catalog: Catalog = CATALOG
) -> CostReport:
    """Bytes and monthly cost per table and age band, from the Delta logs (no data read).

    `as_of` (default today, UTC) is the day ages are counted to. Tables not created yet
    are left out.
    """
    day = as_of or datetime.now(UTC).date()
    parts = []
    for spec in catalog.tables.values():
        table = open_table(spec, settings)
        actions = pa.table(table.get_add_actions(flatten=True)) if table else None
        if actions is not None and actions.num_rows:
            parts.append(_priced_files(spec, settings, actions, day))
    files = pa.concat_tables(parts) if parts else _PRICED_FILES.empty_table()
    grouped = files.group_by(["table", "band_start", "band", "storage_class"]).aggregate(
        [
            ("bytes", "count"),
            ("bytes", "sum"),
            ("standard_usd", "sum"),
            ("tiered_usd", "sum"),
        ]
    )
    rows = grouped.sort_by([("table", "ascending"), ("band_start", "ascending")])
    return CostReport(
        as_of=day,
        rows=pa.table(
            {
                "table": rows["table"],
                "band": rows["band"],
                "storage_class": rows["storage_class"],
                "files": rows["bytes_count"],
                "bytes": rows["bytes_sum"],
                "standard_usd": rows["standard_usd_sum"],
                "tiered_usd": rows["tiered_usd_sum"],
            }
        ),
    )


def cost_chart(report: CostReport) -> str:
    """Markdown for Dagster's metadata: a chart of the tiered monthly cost per table,
    stacked by age band, with the all-Standard total beside it, then the report table."""
    per_table: dict[str, dict[str, float]] = {}
    for row in report.rows.to_pylist():
        bands = per_table.setdefault(row["table"], {})
        bands[row["band"]] = bands.get(row["band"], 0.0) + row["tiered_usd"]
    title = (
        f"Storage USD/month as of {report.as_of}: {_usd(report.tiered_usd)} tiered, "
        f"{_usd(report.standard_usd)} all Standard"
    )
    png = stacked_bars(per_table, [band.label for band in AGE_BANDS], title, "USD/month tiered")
    return f"{markdown_image(png, 'storage cost per table and age band')}\n\n{report.markdown()}"


@dataclass(frozen=True)
class SeedEstimate:
    """The seed's storage arithmetic: monthly USD for `stored_tb` all in Standard and
    tiered, beside the seed's own tiered figure."""

    stored_tb: float
    all_standard_usd: float
    tiered_usd: float
    seed_tiered_usd: float = SEED_TIERED_USD

    @property
    def gap_usd(self) -> float:
        """How far our tiered figure is above (positive) the seed's."""
        return self.tiered_usd - self.seed_tiered_usd


def seed_tiering_estimate(
    *,
    daily_tb: float = SEED_DAILY_TB,
    days: int = 30,
    horizon_days: int = 365,
    tiers: Sequence[TierRule] = SEED_TIERS,
) -> SeedEstimate:
    """The seed's 50 TB/day: one month's ingest (1.5 PB) costs $34,500 a month in Standard.

    The seed gives "about $12,000" tiered without saying how old the data is. Assumption
    here: that month of data, priced over the first `horizon_days` of its life, each day
    in the class the tiers put data of that age in (30 days Standard, 150 IA, 185 Glacier
    IR for the first year); the same average holds in the steady state of a constant
    ingest kept for `horizon_days`, whose ages are spread evenly. With the defaults that
    is 1,500 TB x (30 x 23 + 150 x 12.5 + 185 x 4) / 365 = $13,582.19 a month, $1,582
    (13%) above the seed's $12,000. Over a five-year horizon it is $3,916 with the seed's
    Deep Archive and $7,516 with the catalog's tiers (Glacier IR kept for live files).
    """
    stored_tb = daily_tb * days
    standard = PRICES_PER_TB_MONTH[StorageClass.STANDARD]
    _, prices = _classes_and_prices(tiers, np.arange(horizon_days))
    return SeedEstimate(
        stored_tb=stored_tb,
        all_standard_usd=stored_tb * standard,
        tiered_usd=stored_tb * float(prices.mean()),
    )


def _classes_and_prices(
    tiers: Sequence[TierRule], ages: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The storage class (S3 name) and USD per TB-month of data at each age in days: a
    transition after N days applies from age N on."""
    ordered = sorted(tiers, key=lambda tier: tier.after_days)
    classes = [StorageClass.STANDARD, *(tier.storage_class for tier in ordered)]
    index = np.searchsorted([tier.after_days for tier in ordered], ages, side="right")
    names = np.array([cls.value for cls in classes])[index]
    prices = np.array([PRICES_PER_TB_MONTH[cls] for cls in classes])[index]
    return names, prices


def _priced_files(
    spec: TableSpec, settings: Settings, actions: pa.Table, as_of: date
) -> pa.Table:
    """One row per live file: table, age band, storage class, bytes and both costs."""
    ages = pc.days_between(_days(spec, actions), pa.scalar(as_of, pa.date32()))
    ages = pc.fill_null(pc.max_element_wise(ages, 0), 0).to_numpy(zero_copy_only=False)
    sizes = actions["size_bytes"].to_numpy().astype(np.float64)
    names, prices = _classes_and_prices(live_tiers(spec, settings), ages)
    band = np.searchsorted([b.start for b in AGE_BANDS[1:]], ages, side="right")
    return pa.table(
        {
            "table": pa.array([spec.key] * len(ages), pa.string()),
            "band_start": pa.array(np.array([b.start for b in AGE_BANDS])[band], pa.int64()),
            "band": pa.array(np.array([b.label for b in AGE_BANDS])[band], pa.string()),
            "storage_class": pa.array(names, pa.string()),
            "bytes": actions["size_bytes"].cast(pa.int64()),
            "standard_usd": pa.array(
                sizes / TB * PRICES_PER_TB_MONTH[StorageClass.STANDARD], pa.float64()
            ),
            "tiered_usd": pa.array(sizes / TB * prices, pa.float64()),
        },
        schema=_PRICED_FILES,
    )


def _days(spec: TableSpec, actions: pa.Table) -> pa.ChunkedArray:
    """Each file's day: its date partition's value, else the day it was written."""
    for column in spec.partition_by:
        if spec.schema.field(column).type == pa.date32():
            return actions[f"partition.{column}"]
    return actions["modification_time"].cast(pa.timestamp("ms")).cast(pa.date32())
