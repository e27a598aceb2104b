"""The quality gate between a transform and its table, and what Dagster shows of it.

The gate is the `guard` a table asset hands to `replace_day`: it validates the day's rows
against the table's suite before they are written. A blocking failure refuses the write
(the day keeps its previous rows) and stops the run, so nothing downstream reads the bad
day; every check's verdict, with what GX observed and a sample of failing rows, becomes a
Dagster asset check result either way.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import dagster as dg
import pyarrow as pa

from lakehouse.settings import Settings
from quality.checks import Check
from quality.suites import SUITES, suite_for
from quality.validate import CheckOutcome, validate  # GX itself loads on first use

_SHOWN_SAMPLE_COLUMNS = 8


class BlockedWrite(Exception):
    """Rows failed a blocking check; the day was not written."""

    def __init__(self, key: str, day: date, failed: list[str]) -> None:
        super().__init__(
            f"{key} {day}: blocking checks failed: {', '.join(failed)}; the day was not "
            "written and downstream assets will not run. The checks' results show the "
            "failing rows."
        )
        self.key, self.day, self.failed = key, day, failed


def check_specs(key: str) -> list[dg.AssetCheckSpec]:
    """One Dagster asset check per suite check of the table (none if it has no suite)."""
    if key not in SUITES:
        return []
    layer, name = key.split(".", 1)
    return [
        dg.AssetCheckSpec(
            check.name,
            asset=dg.AssetKey([layer, name]),
            blocking=check.blocking,
            description=check.description,
        )
        for check in suite_for(key).checks
    ]


class QualityGate:
    """Validates each day a run writes; collects the outcomes for the check results."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._outcomes: dict[str, list[CheckOutcome]] = defaultdict(list)

    def __call__(self, key: str, day: date, rows: pa.Table) -> None:
        """The guard: validate, remember, and refuse the write on a blocking failure."""
        outcomes = validate(suite_for(key), rows, day, self.settings)
        self._outcomes[key].extend(outcomes)
        failed = [o.check.name for o in outcomes if o.check.blocking and not o.passed]
        if failed:
            raise BlockedWrite(key, day, failed)

    def results(self, key: str) -> list[dg.AssetCheckResult]:
        """Per check, one result over every day validated in this run."""
        by_check: dict[str, list[CheckOutcome]] = defaultdict(list)
        for outcome in self._outcomes[key]:
            by_check[outcome.check.name].append(outcome)
        return [_result(key, outcomes[0].check, outcomes) for outcomes in by_check.values()]


def _result(key: str, check: Check, outcomes: list[CheckOutcome]) -> dg.AssetCheckResult:
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
        asset_key=dg.AssetKey(key.split(".", 1)),
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
        lines += ["", "Failing rows (sample):", "", _markdown_rows(shown)]
    return "\n".join(lines)


def _markdown_rows(rows: pa.Table) -> str:
    names = rows.schema.names
    out = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows.to_pylist():
        out.append("| " + " | ".join("" if row[n] is None else str(row[n]) for n in names) + " |")
    return "\n".join(out)
