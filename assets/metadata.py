"""Materialization metadata every table asset reports: rows, Delta version, files, bytes,
and, where a person would rather look than read, a preview table or a bar chart.

Charts are Markdown with Unicode bars: Dagster's UI renders Markdown metadata everywhere
(asset page, run logs, GraphQL) without extra packages, and numeric metadata is plotted
across materializations by the UI itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa

from lakehouse.catalog import TableSpec
from lakehouse.delta import table_stats
from lakehouse.settings import Settings

_BAR_WIDTH = 40


def table_metadata(
    spec: TableSpec, settings: Settings, written: pa.Table | int, partition: str | None = None
) -> dict[str, object]:
    """What a person wants to see after a materialization, in Dagster's metadata types.

    `written` is what this run wrote: the rows themselves, or their count when the run
    covered several partitions and kept none in memory.
    """
    stats = table_stats(spec, settings)
    count = written if isinstance(written, int) else written.num_rows
    metadata: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(count),
        "table": dg.MetadataValue.text(spec.key),
    }
    if partition is not None:
        metadata["partition"] = dg.MetadataValue.text(partition)
    if stats is not None:
        metadata.update(
            {
                "delta_version": dg.MetadataValue.int(stats.version),
                "table_rows": dg.MetadataValue.int(stats.rows),
                "table_files": dg.MetadataValue.int(stats.files),
                "table_bytes": dg.MetadataValue.int(stats.bytes),
            }
        )
    return metadata


def preview(rows: pa.Table, limit: int = 10) -> dg.MetadataValue:
    """The first `limit` rows as a Markdown table (floats to 4 significant digits)."""
    text = markdown_table(rows.slice(0, limit))
    if rows.num_rows > limit:
        text += f"\n\n_{limit} of {rows.num_rows:,} rows_"
    return dg.MetadataValue.md(text)


def markdown_table(rows: pa.Table) -> str:
    """Every row as a Markdown table: keep `rows` small, it is meant to be read."""
    names = rows.schema.names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows.to_pylist():
        lines.append("| " + " | ".join(_cell(row[name]) for name in names) + " |")
    return "\n".join(lines)


def bar_chart(title: str, labels: Sequence[object], values: Sequence[float]) -> dg.MetadataValue:
    """A horizontal bar chart in Markdown: one line per label, bars scaled to the maximum."""
    peak = max((float(value) for value in values), default=0.0)
    lines = [f"**{title}**", "", "```"]
    width = max((len(str(label)) for label in labels), default=0)
    for label, value in zip(labels, values, strict=True):
        length = round(_BAR_WIDTH * float(value) / peak) if peak > 0 else 0
        lines.append(f"{label!s:>{width}} {'█' * length} {_cell(value)}")
    lines.append("```")
    return dg.MetadataValue.md("\n".join(lines))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return "" if value is None else str(value).replace("|", "\\|")
