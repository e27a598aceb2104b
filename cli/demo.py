"""`lakehouse demo` and `lakehouse reset`: the platform end to end in one command, and a
clean slate.

The demo is the README's first command: it must work on a fresh clone with nothing running,
and again on the second and tenth run. It brings the embedded broker up and the session
processor beside it, produces `DEMO_DAYS` simulated days of traffic for all three domains
(the machines' readings over MQTT, through the edge gateway, with the alert processor
running: `cli.iot_demo`), lands it in bronze exactly once, runs the Dagster jobs that
observe bronze and build every silver and gold table (with their quality checks), trains
the daily models and publishes the recommender's batch results, starts the recommendation
service and shows a shopper's recommendations change with their clicks
(`cli.online_demo`), decides a day's payments with the fraud service (`cli.fraud_demo`),
shows the alerts raised against the anomalies the generator injected, runs the nightly
maintenance (the day's small files compacted, rows checked), and shows what landed and
what the gold tables answer with DuckDB.
Two situations need care because the local broker keeps topics in memory while the lake
is on disk:

- The broker was restarted since the last demo: its topics are empty, but the lake still
  records offsets from the old topics, which ingest would (rightly) refuse. The demo starts
  the broker itself, so it knows: a lake that has landed data when the broker is started
  fresh is moved aside first.
- The lake already holds an earlier demo's events: producing the same seed again would
  add byte-identical events (same event ids), so the demo picks a fresh seed and says so.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.markup import escape

from cli import fraud_demo, iot_demo, online_demo
from cli.runtime import bring_up
from cli.views import arrow_view, models_view, tables_view
from lakehouse import broker
from lakehouse.bronze import lake_has_landed
from lakehouse.catalog import CATALOG, SENSOR_READINGS, Domain
from lakehouse.settings import Settings

DEFAULT_EVENTS: dict[Domain, int] = {
    Domain.ECOMMERCE: 1_000_000,
    Domain.FRAUD: 250_000,
    Domain.IOT: 500_000,
}
"""Events per domain at scale 1, spread over `DEMO_DAYS` (README: how long the demo takes)."""
DEMO_DAYS = 3
"""Simulated days ending yesterday: the fewest the models' time-based splits accept (the
recommender holds out the last, fraud needs training, validation and test days)."""

DEFAULT_SEED = 42


@dataclass
class DemoReport:
    """What a demo run did, for the caller (and tests) beyond what it printed."""

    broker_started: bool = False
    set_aside: str | None = None
    seeds: dict[str, int] = field(default_factory=dict)
    produced: dict[str, int] = field(default_factory=dict)
    landed: int = 0
    quarantined: int = 0
    days: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def run_demo(
    settings: Settings, console: Console, *, scale: float = 1.0, seed: int | None = None
) -> DemoReport:
    """Up, generate all three domains, ingest until idle, then show tables and queries."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    report = DemoReport()
    console.rule("[bold]lakehouse demo")

    with _stage(console, report, "up", "1/9 starting the broker, topics and bronze tables"):
        _bring_up(settings, console, report)

    with online_demo.session_processor(settings, console) as processor:
        with _stage(console, report, "generate", f"2/9 producing {DEMO_DAYS} simulated days"):
            _generate_all(settings, console, report, scale=scale, seed=seed)

        with _stage(console, report, "ingest", "3/9 landing every topic in bronze, exactly once"):
            _ingest_all(settings, console, report)

        with _stage(console, report, "materialize", "4/9 silver and gold through Dagster"):
            _materialize_all(settings, console, report)

        with _stage(console, report, "train", "5/9 training and publishing the daily models"):
            _train(console, report)

        with _stage(console, report, "online", "6/9 the online path: clicks to recommendations"):
            partitions = online_demo.wait_caught_up(settings, processor)
            console.print(
                f"   [green]session features[/] caught up with all {partitions} partitions "
                "of the shop topics"
            )
            with online_demo.recommendation_service(settings, console, online_demo.free_port()) as (
                base,
                token,
            ):
                online_demo.show_shoppers(
                    settings, console, base, token, date.fromisoformat(report.days[-1])
                )

    with _stage(console, report, "fraud", "7/9 the fraud path: payments decided before "
                "authorization"):
        _decide_payments(settings, console, date.fromisoformat(report.days[-1]))

    with _stage(console, report, "iot", "8/9 the IoT path: injected anomalies against alerts"):
        iot_demo.show_alerts(settings, console)

    with _stage(console, report, "query", "9/9 what the lake holds, and what it answers"):
        _maintain(settings, console, report)
        console.print(tables_view(settings))
        _show_queries(settings, console)

    _next_steps(settings, console, report)
    return report


# --- stages -----------------------------------------------------------------------------------


@contextmanager
def _stage(console: Console, report: DemoReport, key: str, title: str) -> Iterator[None]:
    console.print(f"\n[bold cyan]{title}[/]")
    started = time.perf_counter()
    yield
    report.seconds[key] = time.perf_counter() - started
    console.print(f"[dim]   {key} took {report.seconds[key]:.1f}s[/]")


def _bring_up(settings: Settings, console: Console, report: DemoReport) -> None:
    """Start the local broker if needed (never a remote one), topics and bronze tables.

    A broker started just now has empty in-memory topics: a lake that landed data from an
    earlier broker is moved aside first, or ingest would rightly refuse it.
    """
    fresh_broker = broker.is_local_kafka(settings) and broker.running_broker(settings) is None
    if fresh_broker and lake_has_landed(settings):
        report.set_aside = _set_aside_stale_lake(settings, console)
    runtime = bring_up(settings)
    if runtime.started:
        online_demo.forget_stale_offsets(settings)
        iot_demo.forget_stale_alert_state(settings)
    if runtime.managed:
        verb = "started" if runtime.started else "already running"
        console.print(f"   [green]broker[/] {verb} at {runtime.bootstrap}")
    else:
        console.print(f"   [green]kafka[/] at {runtime.bootstrap} (not managed by the demo)")
    created = ", ".join(runtime.topics_created) or "none (all exist)"
    console.print(f"   [green]topics[/] created: {created}")
    report.broker_started = runtime.started


def _set_aside_stale_lake(settings: Settings, console: Console) -> str:
    """Move aside a lake whose offsets belong to an earlier broker's (now gone) topics."""
    console.print(
        "   [yellow]the lake holds data landed from an earlier broker[/], whose in-memory "
        "topics are gone with it."
    )
    if settings.lake_is_s3:
        raise RuntimeError(
            f"the lake at {settings.lake_root} belongs to an earlier broker; point "
            "LAKEHOUSE_ROOT at a new prefix (the demo never deletes S3 data)"
        )
    root = Path(settings.lake_root)
    aside = previous_lake(settings)
    if aside.exists():
        shutil.rmtree(aside)
    root.rename(aside)
    console.print(f"   [yellow]moved the old lake to[/] {aside} [dim](delete it at will)[/]")
    return str(aside)


def _generate_all(
    settings: Settings,
    console: Console,
    report: DemoReport,
    *,
    scale: float,
    seed: int | None,
) -> None:
    from streaming.generators import make_generator
    from streaming.producer import produce

    devices = list(make_generator(Domain.IOT).devices.values)
    accepted = 0
    with iot_demo.edge(settings, console, devices, online_demo.free_port()) as edge:
        for domain, events in DEFAULT_EVENTS.items():
            count = max(1, round(events * scale))
            domain_seed = seed if seed is not None else DEFAULT_SEED
            if seed is None and lake_has_landed(settings, domain):
                # Same seed, same bytes: a rerun would add events whose ids are already landed.
                domain_seed = int(time.time() * 1000) % 1_000_000_007
                console.print(
                    f"   [dim]{domain}: the lake already holds an earlier run's events; "
                    f"adding new ones with seed {domain_seed}[/]"
                )
            generator = make_generator(
                domain, seed=domain_seed, start=demo_start(), span=timedelta(days=DEMO_DAYS)
            )
            report.seeds[domain.value] = domain_seed
            if domain is Domain.IOT:  # as the machines send them: over MQTT, via the edge
                accepted += iot_demo.publish_fleet(settings, console, edge, generator, count)
                report.produced[SENSOR_READINGS.name] = accepted
                continue
            result = produce(settings, generator, count, rate=None, progress=True)
            for topic, produced in result.per_topic.items():
                report.produced[topic] = report.produced.get(topic, 0) + produced
            rate = result.total / max(result.seconds, 1e-9)
            summary = ", ".join(f"{topic} {n:,}" for topic, n in result.per_topic.items())
            console.print(
                f"   [green]{domain}[/] {result.total:,} events in {result.seconds:.1f}s "
                f"({rate:,.0f}/s): {summary}"
            )
        iot_demo.wait_drained(console, edge, accepted)


def _ingest_all(settings: Settings, console: Console, report: DemoReport) -> None:
    from lakehouse.logs import configure_logging
    from streaming.ingest.runner import run_ingest
    from streaming.ingest.worker import IngestOptions

    configure_logging(level="WARNING", json=False)  # per-flush INFO lines would drown the demo
    options = IngestOptions(topics=list(CATALOG.topics), until_idle=True)
    with console.status("   joining the consumer group and landing until caught up..."):
        result = run_ingest(settings, options)
    report.landed = result.written
    report.quarantined = result.quarantined
    rate = result.consumed / max(result.seconds, 1e-9)
    console.print(
        f"   [green]ingested[/] {result.consumed:,} messages in {result.seconds:.1f}s "
        f"({rate:,.0f}/s, group join included): {result.written:,} rows in "
        f"{result.commits:,} commits, {result.quarantined:,} quarantined"
    )


def _materialize_all(settings: Settings, console: Console, report: DemoReport) -> None:
    """Observe bronze, then rebuild every landed day's silver and gold in one Dagster run."""
    from lakehouse.bronze import landed_days
    from orchestration.instance import dagster_home, dagster_instance
    from orchestration.materialize import observe_bronze, rebuild_days

    days = landed_days(settings)
    instance = dagster_instance(settings)
    observed = observe_bronze(instance)
    console.print(
        f"   [green]observed[/] {len(observed.assets)} bronze tables (run {observed.run_id})"
    )
    with console.status(f"   materializing silver and gold for {days[0]}..{days[-1]}..."):
        run = rebuild_days(days[0], days[-1], instance)
    if not run.success:
        checks = "; ".join(run.failed_checks) or "no data quality check failed"
        raise RuntimeError(
            f"Dagster run {run.run_id} failed ({checks}); its logs are in the UI "
            f"(`dagster dev`) and under {dagster_home(settings)}"
        )
    report.days = [day.isoformat() for day in days]
    report.runs = [observed.run_id, run.run_id]
    console.print(
        f"   [green]materialized[/] {len(run.assets)} assets for "
        f"{', '.join(report.days)} in run {run.run_id}; "
        f"{run.checks_run - len(run.failed_checks)} of {run.checks_run} quality checks passed"
    )
    for failed in run.failed_checks:
        console.print(f"   [yellow]check failed:[/] {failed}")


def _train(console: Console, report: DemoReport) -> None:
    """The daily models as of the last day, with the recommender's publication to the
    online stores (`train_daily_models`). A model whose data is too thin to judge (tiny
    scales) is reported, not fatal, as long as the recommender made it."""
    from orchestration.materialize import train_models

    with console.status(f"   training as of {report.days[-1]}..."):
        run = train_models(date.fromisoformat(report.days[-1]))
    report.runs.append(run.run_id)
    if run.models:
        console.print(models_view(run.models))
    for failure in run.failures:
        console.print(f"   [yellow]training step failed:[/] {escape(failure)}")
    published = [m for m in run.models if str(m["asset"]).startswith("online/")]
    if not published:
        raise RuntimeError(
            f"training run {run.run_id} published no recommendations: "
            + ("; ".join(run.failures) or "no step failed")
        )


def _maintain(settings: Settings, console: Console, report: DemoReport) -> None:
    """The nightly maintenance for the last day, as its 04:00 schedule would run it: the
    ingest sidecar's many small files per day, compacted per layer."""
    from orchestration.instance import dagster_instance
    from orchestration.materialize import maintain_day

    day = date.fromisoformat(report.days[-1])
    with console.status(f"   compacting {day} (nightly_maintenance)..."):
        run = maintain_day(day, instance=dagster_instance(settings))
    report.runs.append(run.run_id)
    if not run.success:
        raise RuntimeError(
            f"maintenance run {run.run_id} failed"
            + (f" ({'; '.join(run.failed_checks)})" if run.failed_checks else "")
        )
    console.print(
        arrow_view(
            pa.Table.from_pylist(
                [
                    {
                        "asset": c["asset"],
                        "tables compacted": c["tables_compacted"],
                        "files before": c["files_before"],
                        "files after": c["files_after"],
                        "MB before": round(int(c["bytes_before"]) / 1e6, 1),
                        "MB after": round(int(c["bytes_after"]) / 1e6, 1),
                        "seconds": c["seconds"],
                    }
                    for c in run.compactions
                ]
            ),
            title=f"nightly maintenance of {day}: every row kept (checked) in run {run.run_id}",
        )
    )


def _decide_payments(settings: Settings, console: Console, day: date) -> None:
    """A few hundred payments of the model's test day through `lakehouse serve fraud`."""
    windows = fraud_demo.prepare_state(settings, day)
    console.print(f"   [green]fraud state[/] profiles as of {day - timedelta(days=1)} "
                  f"published, {windows:,} earlier payments in the windows")
    payments = fraud_demo.demo_payments(settings, day)
    with fraud_demo.fraud_service(settings, console, online_demo.free_port()) as (base, token):
        decided = fraud_demo.decide_all(base, token, payments)
    fraud_demo.show_decisions(console, decided)


# --- what landed ------------------------------------------------------------------------------


def landing_sql() -> str:
    """Rows and distinct event ids per bronze table: equal everywhere except IoT redeliveries."""
    parts = [
        f"SELECT '{spec.name}' AS \"table\", count(*) AS events, "
        "count(DISTINCT event_id) AS unique_ids, min(event_time)::DATE AS day, "
        "strftime(min(event_time), '%H:%M') AS first, strftime(max(event_time), '%H:%M') AS last "
        f"FROM {spec.key}"
        for spec in CATALOG.landed_tables()
    ]
    return "\nUNION ALL ".join(parts)


DEMO_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "e-commerce gold: top products yesterday",
        "SELECT popularity_rank AS rank, product_id, category, views, cart_adds, purchases, "
        "round(revenue, 2) AS revenue FROM gold.product_trending "
        "WHERE event_date = current_date - 1 ORDER BY popularity_rank LIMIT 5",
    ),
    (
        "e-commerce gold: the session funnel yesterday (the shop, then its best categories)",
        "SELECT category, sessions_viewed AS viewed, sessions_carted AS carted, "
        "sessions_purchased AS bought, round(100 * conversion_rate, 2) AS conversion_pct, "
        "round(revenue, 2) AS revenue FROM gold.session_funnel_daily "
        "WHERE event_date = current_date - 1 "
        "ORDER BY category <> 'all', conversion_rate DESC LIMIT 6",
    ),
    (
        "e-commerce gold: the A/B test yesterday (treatment vs control)",
        "SELECT experiment_id, variant, users, converting_users, "
        "round(100 * conversion_rate, 2) AS conversion_pct, "
        "round(100 * relative_lift, 1) AS lift_pct, printf('%.4f', p_value) AS p_value, "
        "significant FROM gold.ab_test_daily WHERE event_date = current_date - 1 "
        "ORDER BY experiment_id, variant",
    ),
    (
        "fraud gold: fraud rate by merchant category yesterday",
        "SELECT merchant_category, sum(transactions) AS transactions, "
        "sum(fraud_transactions) AS fraudulent, "
        "round(100 * sum(fraud_transactions) / sum(transactions), 3) AS fraud_rate_pct "
        "FROM gold.fraud_daily_stats WHERE event_date = current_date - 1 "
        "GROUP BY 1 ORDER BY fraud_rate_pct DESC LIMIT 5",
    ),
    (
        "IoT gold: device health yesterday",
        "SELECT status, count(*) AS devices, round(avg(health_score), 2) AS avg_health, "
        "count(*) FILTER (WHERE failed) AS failed_that_day "
        "FROM gold.device_health_daily WHERE event_date = current_date - 1 "
        "GROUP BY status ORDER BY min(health_score) DESC",
    ),
)


def _show_queries(settings: Settings, console: Console) -> None:
    from lakehouse.query import connect

    connection = connect(settings)
    try:
        queries = (("exactly once: events vs distinct ids per table", landing_sql()), *DEMO_QUERIES)
        for title, sql in queries:
            result = connection.sql(sql).to_arrow_table()
            console.print(arrow_view(result, title=f"{title}"))
            if title.startswith("exactly once"):
                console.print(
                    "   [dim]sensor_readings may have more events than distinct ids: the "
                    "IoT generator injects redeliveries (same event_id); the gateway drops "
                    "those within its dedupe window, and any later ones bronze "
                    "keeps as landed and silver drops.[/]"
                )
    finally:
        connection.close()


def _next_steps(settings: Settings, console: Console, report: DemoReport) -> None:
    total = sum(report.seconds.values())
    running = broker.running_broker(settings)
    where = settings.kafka_bootstrap_servers
    console.rule("[bold]next")
    console.print(
        f"[bold]See it in Dagster:[/] run [bold]{ui_command(settings)}[/] and open "
        "http://127.0.0.1:3000: the asset graph by domain (Assets > Lineage), the demo's "
        "runs (Runs), schedules and the bronze sensor (Automation). Select a partition "
        "of any silver or gold asset there to rebuild it.",
        soft_wrap=True,
    )
    if running:
        kept = (
            f"The broker keeps running at {where} (pid {running['pid']}): its topics live in "
            "memory, the lake on disk. Try (with .venv/bin/ in front, or after "
            "`source .venv/bin/activate`):"
        )
    else:
        kept = f"Kafka at {where} was not started by the demo and is left as it was. Try:"
    console.print(f"[bold green]Done in {total:.0f}s.[/] {kept}")
    # soft_wrap: long commands stay on one logical line, so they copy and paste whole.
    first, last = (report.days[0], report.days[-1]) if report.days else ("DAY", "DAY")
    for command, why in NEXT_STEPS:
        command = command.format(first=first, last=last)
        console.print(f"  [bold]{command}[/]", soft_wrap=True)
        console.print(f"      [dim]{why}[/]")


def demo_start() -> datetime:
    """Midnight UTC `DEMO_DAYS` ago: the simulated days end with yesterday."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DEMO_DAYS)


def ui_command(settings: Settings) -> str:
    """The command that opens the UI on the instance the demo recorded its runs in."""
    from orchestration.instance import dagster_home

    if os.environ.get("DAGSTER_HOME"):
        return "dagster dev"
    home = dagster_home(settings)
    if Path("dagster.yaml").exists() and home == Path(".lakehouse/dagster").resolve():
        return "dagster dev"  # the repository root: its dagster.yaml names these folders
    return f"DAGSTER_HOME={home} dagster dev -m orchestration.definitions"


# Commands to try next; {first} and {last} are the days the demo landed.
NEXT_STEPS: tuple[tuple[str, str], ...] = (
    (
        'lakehouse query "SELECT * FROM gold.user_features ORDER BY revenue_30d DESC LIMIT 5"',
        "ask DuckDB anything over layer.table (--format csv|json for scripts); "
        "docs/queries.md has questions per domain",
    ),
    (
        "lakehouse materialize --from {first} --to {last}",
        "rebuild silver and gold for a range of days through Dagster (default: all landed)",
    ),
    (
        "lakehouse generate fraud --events 20000 && lakehouse ingest --until-idle",
        "more traffic, landed incrementally from where the Delta log says it stopped",
    ),
    (
        "lakehouse generate fraud --events 200000 --days 5 && lakehouse generate ecommerce "
        "--events 500000 --days 5 && lakehouse ingest --until-idle && lakehouse materialize "
        "&& lakehouse train",
        "several days of traffic, then the recommender and the fraud model trained, judged "
        "and registered (docs/models.md)",
    ),
    (
        "lakehouse stream session-features",
        "keep every shopper's session features in Redis current with live traffic "
        "(docs/session-features.md; Ctrl-C or SIGTERM stops it cleanly)",
    ),
    (
        "LAKEHOUSE_API_TOKEN=change-me lakehouse serve recommendations --port 8000",
        "the recommendation API; then curl -H 'Authorization: Bearer change-me' "
        "http://127.0.0.1:8000/v1/recommendations/1 (docs/recommendations.md)",
    ),
    ("lakehouse tables", "versions, files, rows and sizes of every table"),
    ("lakehouse status", "what runs where"),
    ("lakehouse down", "stop the broker (its in-memory topics go with it)"),
    ("lakehouse reset --yes", "stop the broker and delete the local lake"),
)


# --- broker and lake state ----------------------------------------------------------------------


def previous_lake(settings: Settings) -> Path:
    """Where the demo moves a stale local lake: beside it, as `<root>.previous`."""
    root = Path(settings.lake_root)
    return root.with_name(f"{root.name}.previous")


def reset_local(settings: Settings, console: Console) -> None:
    """Stop the embedded broker and delete the local lake (and a set-aside previous one)."""
    if settings.lake_is_s3:
        raise RuntimeError(
            f"reset only deletes local lakes; {settings.lake_root} is on S3: delete it there"
        )
    if broker.stop_local_broker(settings):
        console.print("[green]broker stopped[/]")
    else:
        console.print("no broker started by `lakehouse up` is running")
    for path in (Path(settings.lake_root), previous_lake(settings)):
        if path.exists():
            shutil.rmtree(path)
            console.print(f"[green]deleted[/] {path}")
        else:
            console.print(f"[dim]{path} does not exist[/]")
