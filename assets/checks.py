"""The quality gate's verdicts as Dagster asset check results.

`quality/` validates and decides; this module only shows: per check, one result over
every day the run validated, with the expectations, what GX observed and a sample of the
failing rows as Markdown, at the severity the check's blocking flag implies.
"""

from __future__ import annotations

from collections import defaultdict

import dagster as dg

from assets.metadata import markdown_table
from assets.tables import asset_key
from lakehouse.catalog import TableSpec
from quality.checks import Check
from quality.gate import QualityGate
from quality.validate import CheckOutcome

_SHOWN_SAMPLE_COLUMNS = 8


def check_results(gate: QualityGate, table: TableSpec) -> list[dg.AssetCheckResult]:
    """Per check of `table`, one result over every day `gate` validated in this run."""
    by_check: dict[str, list[CheckOutcome]] = defaultdict(list)
    for outcome in gate.outcomes(table):
        by_check[outcome.check.name].append(outcome)
    return [_result(table, outcomes[0].check, outcomes) for outcomes in by_check.values()]


def _result(table: TableSpec, check: Check, outcomes: list[CheckOutcome]) -> dg.AssetCheckResult:
    passed = all(outcome.passed for outcome in outcomes)
    failing_days = [outcome.day.isoformat() for outcome in outcomes if not outcome.passed]
    latest = next((o for o in reversed(outcomes) if not o.passed), outcomes[-1])
    metadata: dict[str, object] = {
        "days_checked": dg.MetadataValue.int(len(outcomes)),
        "failing_days": dg.MetadataValue.text(", ".join(failing_days) or "none"),
        "report": dg.MetadataValue.md(_report(check, latest)),
    }
    unexpected = [e.unexpected_count for e in latest.expectations if e.unexpected_count is not None]
    if unexpected:
        metadata["unexpected_rows"] = dg.MetadataValue.int(sum(unexpected))
    return dg.AssetCheckResult(
        asset_key=asset_key(table),
        check_name=check.name,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def _report(check: Check, outcome: CheckOutcome) -> str:
    """The check's validation report as Markdown: each expectation, what GX observed, and
    a sample of the failing rows."""
    verdict = "passed" if outcome.passed else "FAILED"
    kind = "blocking" if check.blocking else "warning"
    lines = [
        f"**{check.name}** {verdict} on {outcome.day} ({kind})",
        "",
        check.description,
        "",
        "| expectation | result | observed | unexpected rows |",
        "|---|---|---|---|",
    ]
    for expectation in outcome.expectations:
        share = (
            f"{expectation.unexpected_count:,} ({expectation.unexpected_percent:.3g}%)"
            if expectation.unexpected_count is not None
            and expectation.unexpected_percent is not None
            else ""
        )
        lines.append(
            f"| `{expectation.expect.describe()}` | {'ok' if expectation.success else 'FAILED'} "
            f"| {'' if expectation.observed is None else expectation.observed} | {share} |"
        )
    if outcome.sample is not None and outcome.sample.num_rows:
        shown = outcome.sample.select(outcome.sample.schema.names[:_SHOWN_SAMPLE_COLUMNS])
        lines += ["", "Failing rows (sample):", "", markdown_table(shown)]
    return "\n".join(lines)
