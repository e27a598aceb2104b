"""`python -m bench.capacity`: cores, memory and dollars a month for the seed's volumes,
from this project's own measurements.

Reads the newest results of `bench.ingest`, `bench.engines`, `bench.serving` and
`bench.fraud` (`bench/results/`, else the committed copies in `bench/results/recorded/`),
sizes each workload of the three case studies (`bench/capacity/plan.py` says how), prints
the plan beside the seed's own cost tables and writes it to docs/capacity.md. Prices are
assumptions (`plan.INSTANCES`); so are the volumes the seed does not give (options below).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench.capacity import inputs
from bench.capacity.plan import (
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    INSTANCES,
    MIN_INSTANCES,
    TARGET_UTILISATION,
    Plan,
    always_on,
    batch,
    storage_tb_per_day,
    total,
)

console = Console(width=None if sys.stdout.isatty() else 160)
app = typer.Typer(add_completion=False, help=__doc__)
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "capacity.md"

# The seed's volumes (shared/seed/case-studies.md).
ECOM_EVENTS_PER_DAY = 500e6
ECOM_PEAK_PER_S = 50_000.0
PAYMENTS_PER_S = 10_000.0
IOT_MESSAGES_PER_DAY = 1e9
# The measured build (silver clickstream, cart_events, purchases + gold.product_daily) is
# about 77% of the whole e-commerce medallion's work on DuckDB (docs/benchmarks.md,
# "Medallion", run 1: silver clickstream 11.9 s + cart_events and purchases about 1.0 s +
# product_daily 1.74 s of the 19.0 s run; search and four more gold tables are the rest).
BATCH_SCOPE = 1.3

# The seed's rows that the plan's compute stands beside, per case.
SEED_COMPARABLE = {
    "e-commerce (case 1)": ("EMR + K8s", 24_000),
    "fraud (case 2)": ("Flink cluster (K8s)", 25_000),
    "IoT (case 3)": ("none given (Spark on K8s, Spot)", None),
}

# The seed's cost tables, dollars a month (case-studies.md).
SEED_COSTS = {
    "e-commerce (case 1)": [
        ("Kafka", 8_000),
        ("EMR", 12_000),
        ("Redis", 10_000),
        ("K8s", 12_000),
        ("total (target < $50K)", 42_000),
    ],
    "fraud (case 2)": [
        ("Flink cluster (K8s), 50 nodes", 25_000),
        ("Kafka (Confluent)", 15_000),
        ("Redis Enterprise", 12_000),
        ("S3, 7 years", 5_000),
        ("ML training (EMR)", 3_000),
        ("total", 60_000),
    ],
    "IoT (case 3)": [
        ("Kafka, Strimzi self-managed (MSK: $20K+)", 8_000),
        ("S3 with lifecycle (all Standard: $34,500)", 12_000),
    ],
}


@app.command()
def main(
    recommendation_rps: Annotated[
        float, typer.Option(help="Peak recommendation requests/s (ASSUMED: the seed gives none)")
    ] = 5_000.0,
    iot_peak_factor: Annotated[
        float, typer.Option(help="IoT peak over the day's average rate (ASSUMED)")
    ] = 2.0,
    batch_window_hours: Annotated[
        float, typer.Option(help="Hours the nightly bronze-to-gold may take")
    ] = 1.0,
    engine: Annotated[str, typer.Option(help="Engine whose batch rate sizes the batch")] = "spark",
    write_doc: Annotated[bool, typer.Option(help="Write docs/capacity.md")] = True,
) -> None:
    """Print the capacity plan and write it to docs/capacity.md."""
    try:
        ingest, bytes_per_event = inputs.ingest()
        rows, peak_rss_mib = inputs.batch(engine)
        serving = inputs.serving()
        fraud = inputs.fraud()
    except inputs.MissingResult as error:
        console.print(f"[red]{error}")
        raise typer.Exit(2) from error
    m6i, r6i = INSTANCES["m6i.xlarge"], INSTANCES["r6i.2xlarge"]
    batch_rate = rows.value / BATCH_SCOPE
    iot_peak = IOT_MESSAGES_PER_DAY / 86_400 * iot_peak_factor
    plans = {
        "e-commerce (case 1)": [
            always_on(
                "ingest sidecars (Kafka to bronze)",
                "50K events/s peak",
                ECOM_PEAK_PER_S,
                ingest.value,
                ingest.unit,
                m6i,
            ),
            batch(
                "bronze to gold, nightly (Spark on EMR)",
                "500M events/day",
                ECOM_EVENTS_PER_DAY,
                batch_rate,
                r6i,
                window_hours=batch_window_hours,
            ),
            always_on(
                "recommendation API",
                f"{recommendation_rps:,.0f} req/s peak (assumed)",
                recommendation_rps,
                serving.value,
                serving.unit,
                m6i,
            ),
        ],
        "fraud (case 2)": [
            always_on(
                "fraud decision service",
                "10K payments/s",
                PAYMENTS_PER_S,
                fraud.value,
                fraud.unit,
                m6i,
            ),
        ],
        "IoT (case 3)": [
            always_on(
                "ingest sidecars (Kafka to bronze)",
                f"1B msgs/day, {iot_peak:,.0f}/s peak (x{iot_peak_factor:g}, assumed)",
                iot_peak,
                ingest.value,
                ingest.unit,
                m6i,
            ),
            batch(
                "bronze to gold, nightly (Spark on K8s)",
                "1B msgs/day",
                IOT_MESSAGES_PER_DAY,
                batch_rate,
                r6i,
                window_hours=batch_window_hours,
                emr=False,
            ),
        ],
    }
    measured = [
        ("ingest", ingest),
        (f"bronze to gold ({engine})", rows),
        ("recommendation API", serving),
        ("fraud decisions", fraud),
    ]
    storage = storage_tb_per_day(ECOM_EVENTS_PER_DAY, bytes_per_event)
    notes = [
        f"bronze to gold rate divided by {BATCH_SCOPE} for the medallion's tables the "
        f"benchmark does not build: {batch_rate:,.0f} rows/s per core",
        f"peak RSS of the measured {engine} build: {peak_rss_mib:,.0f} MiB (process tree); "
        f"{r6i.name} gives {r6i.gib_per_vcpu:g} GiB per vCPU",
        f"e-commerce bronze at the ingest benchmark's {bytes_per_event:.0f} bytes/event: "
        f"{storage:.2f} TB/day, {storage * DAYS_PER_MONTH:.1f} TB/month",
    ]
    for name, service, demand, target in (
        ("recommendation API", serving, recommendation_rps, "p99 <= 5 ms"),
        ("fraud service", fraud, PAYMENTS_PER_S, "p99 <= 10 ms"),
    ):
        if service.latency_bound:
            notes.append(
                f"{name}: sized for throughput within the seed's SLA; at this project's own "
                f"{target} one core held {service.latency_bound:,.0f} req/s, so that target "
                f"would take {demand / service.latency_bound:,.0f} cores of work for "
                f"{demand:,.0f} req/s"
            )
    notes.append(
        "IoT is sized with the e-commerce rates (proxies: a sensor reading is a smaller JSON "
        "message than a click, and hourly aggregates are simpler than the e-commerce build), "
        "so its rows err on the costly side"
    )
    other = "duckdb" if engine == "spark" else "spark"
    try:
        alternative, _ = inputs.batch(other)
    except inputs.MissingResult:
        alternative = None
    if alternative is not None:
        work = ECOM_EVENTS_PER_DAY / (alternative.value / BATCH_SCOPE) / (batch_window_hours * 3600)
        notes.append(
            f"the same e-commerce build at {other}'s measured rate "
            f"({alternative.value:,.0f} rows/s per core): {work:,.1f} cores of work in the "
            f"{batch_window_hours:g} h window on one machine (the local engine builds a day "
            "out of core since step 11: a 50M-event day with every check in 3.2 GiB, its "
            "time 4.8x the 10M day's: docs/benchmarks.md, Bounded memory)"
        )
    _print(measured, plans, notes)
    if write_doc:
        DOC.write_text(
            _markdown(
                measured,
                plans,
                notes,
                recommendation_rps,
                iot_peak_factor,
                batch_window_hours,
                engine,
            )
        )
        console.print(f"written: {DOC.relative_to(ROOT)}")


def _plan_table(title: str, plans: list[Plan]) -> Table:
    table = Table(title=title)
    for column in (
        "workload",
        "demand",
        "measured rate",
        "work cores",
        "instances",
        "cores",
        "memory GiB",
        "hours/month",
        "$/month",
    ):
        table.add_column(column, justify="left" if column in ("workload", "demand") else "right")
    for plan in plans:
        table.add_row(*_plan_row(plan))
    table.add_row("[bold]total", "", "", "", "", "", "", "", f"[bold]{total(plans):,.0f}")
    return table


def _plan_row(plan: Plan) -> list[str]:
    fee = " + EMR" if plan.emr else ""
    return [
        plan.workload,
        plan.demand,
        f"{plan.rate_per_core:,.0f} {plan.rate_unit}",
        f"{plan.work_cores:,.1f}",
        f"{plan.instances} x {plan.instance.name}{fee}",
        f"{plan.cores}",
        f"{plan.memory_gib:,.0f}",
        f"{plan.hours_per_month:,.0f}",
        f"{plan.usd_per_month:,.0f}",
    ]


def _print(measured: list, plans: dict[str, list[Plan]], notes: list[str]) -> None:
    table = Table(title="measured rates (newest result of each benchmark)")
    for column in ("input", "per core", "source", "measured", "other load", "what"):
        table.add_column(column)
    for name, m in measured:
        table.add_row(name, f"{m.value:,.0f} {m.unit}", m.source, m.date, m.load, m.note)
    console.print(table)
    for title, group in plans.items():
        console.print(_plan_table(title, group))
    seed = Table(title="the seed's cost tables, $/month")
    seed.add_column("case")
    seed.add_column("item")
    seed.add_column("$/month", justify="right")
    for case, rows in SEED_COSTS.items():
        for item, usd in rows:
            seed.add_row(case, item, f"{usd:,}")
    console.print(seed)
    for note in notes:
        console.print(f"- {note}")


def _markdown(
    measured: list,
    plans: dict[str, list[Plan]],
    notes: list[str],
    recommendation_rps: float,
    iot_peak_factor: float,
    window: float,
    engine: str,
) -> str:
    lines = [
        "# Capacity plan",
        "",
        "Generated by `.venv/bin/python -m bench.capacity` "
        f"({datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}); do not edit by hand, re-run it.",
        "It sizes the seed's volumes (shared/seed/case-studies.md) from this project's own",
        "benchmark results, the newest of each in `bench/results/` or, from a clean clone, the",
        "committed copies in `bench/results/recorded/`. A new benchmark run moves the plan;",
        "copy its JSON into `bench/results/recorded/` to move the committed one.",
        "",
        "How each figure is made (`bench/capacity/plan.py`): a core is a vCPU; always-on",
        f"services are sized for their peak at {TARGET_UTILISATION:.0%} of the measured rate per",
        f"core, in whole instances, at least {MIN_INSTANCES}; the nightly batch is the cluster",
        f"that does the day's rows in {window:g} h, paid for that window every day. A month is",
        f"{HOURS_PER_MONTH:g} hours. Options: `--recommendation-rps` ({recommendation_rps:,.0f},",
        "assumed: the seed gives no request rate),",
        f"`--iot-peak-factor` ({iot_peak_factor:g}, assumed), `--batch-window-hours`,",
        f"`--engine` ({engine}).",
        "",
        "## Headline",
        "",
        "| case | planned compute, $/month | the seed's comparable rows | $/month |",
        "| --- | --- | --- | --- |",
        *(
            f"| {case} | {total(group):,.0f} | {SEED_COMPARABLE[case][0]} | "
            f"{'-' if SEED_COMPARABLE[case][1] is None else f'{SEED_COMPARABLE[case][1]:,}'} |"
            for case, group in plans.items()
        ),
        "",
        "The plan's compute is far under the seed's figures: it counts only the vCPUs this",
        "project's processes measurably need at the seed's volumes (plus headroom and two of",
        "everything), at list prices, while the seed's rows are whole managed clusters sized",
        "for other engines (Flink, EMR always on). Kafka, Redis and S3 are not planned here.",
        "",
        "## Measured rates",
        "",
        "| input | per core | source | command | measured | other load | what |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in measured:
        lines.append(
            f"| {name} | {m.value:,.0f} {m.unit} | `{m.source}` | `{m.command}` | {m.date} | "
            f"{m.load} | {m.note} |"
        )
    lines += [
        "",
        "The benchmark machine is 2 shared vCPUs; docs/benchmarks.md gives each",
        "result's load. Figures measured beside other work err on the slow (costly) side.",
        "",
    ]
    for title, group in plans.items():
        lines += [
            f"## {title}",
            "",
            "| workload | demand | measured rate | work cores | instances | cores | "
            "memory GiB | hours/month | $/month |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += ["| " + " | ".join(_plan_row(plan)) + " |" for plan in group]
        lines += [f"| **total** | | | | | | | | **{total(group):,.0f}** |", ""]
    lines += [
        "## Beside the seed's cost tables",
        "",
        "| case | item | $/month |",
        "| --- | --- | --- |",
    ]
    for case, rows in SEED_COSTS.items():
        lines += [f"| {case} | {item} | {usd:,} |" for item, usd in rows]
    lines += [
        "",
        "Compare like with like: the plan covers the compute this project measured",
        "(ingest sidecars and services, the K8s rows; the nightly build, the EMR row; the",
        "fraud service, which replaces the seed's Flink cluster). Kafka, Redis and S3 are",
        "not measured here: the seed's figures stand for them. Not planned: the session",
        "features processor, the IoT alert processor and gateway, Dagster itself, model",
        "training (each a few cores; see their sections in docs/benchmarks.md).",
        "",
        "## Notes",
        "",
    ]
    lines += [f"- {note}" for note in notes]
    lines += [
        "",
        "## Instance prices (assumptions)",
        "",
        "AWS on-demand list prices, us-east-1, Linux, as published in 2024-2025; not",
        "fetched by the script. Savings Plans take about 30% off always-on services, Spot",
        "60-80% off the nightly batch (the seed's IoT case counts on it).",
        "",
        "| instance | vCPU | GiB | $/hour | EMR fee $/hour |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {i.name} | {i.vcpus} | {i.memory_gib:g} | {i.usd_per_hour:.3f} | "
        f"{i.emr_usd_per_hour:.3f} |"
        for i in INSTANCES.values()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app()
