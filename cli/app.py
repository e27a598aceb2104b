"""`lakehouse`: the command-line handle on everything outside the Dagster UI."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.evaluate import evaluate_app
from cli.imports import import_app
from cli.iot import gateway, iot_app
from cli.maintain import maintain
from cli.runtime import process_settings
from cli.views import arrow_view, models_view
from lakehouse import broker
from lakehouse.catalog import CATALOG, Domain, topic_partitions
from lakehouse.logs import configure_logging
from lakehouse.settings import Settings, get_settings

if TYPE_CHECKING:
    from streaming.generators import DomainGenerator

app = typer.Typer(
    name="lakehouse",
    help="A Dagster-centric lakehouse: Kafka to Delta, DuckDB queries, online services.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)


class Via(StrEnum):
    KAFKA = "kafka"
    MQTT = "mqtt"


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@app.command()
def up() -> None:
    """Start the embedded broker (local Kafka only), create topics and bronze tables."""
    from cli.runtime import bring_up
    from lakehouse.bronze import lake_has_landed

    settings = get_settings()
    runtime = bring_up(settings)
    if not runtime.managed:
        console.print(f"[green]kafka[/] at {runtime.bootstrap} (external: not started here)")
    else:
        verb = "started" if runtime.started else "already running"
        console.print(f"[green]broker[/] {verb} at {runtime.bootstrap}")
    console.print(
        f"[green]topics[/] created: {', '.join(runtime.topics_created) or 'none (all exist)'}"
    )
    console.print(f"[green]lake[/] {settings.lake_root}")
    if runtime.started and lake_has_landed(settings):
        err_console.print(
            "[yellow]the lake holds data landed from an earlier broker, whose in-memory "
            "topics are gone: ingest will refuse it. `lakehouse reset` starts afresh.[/]"
        )


@app.command()
def down() -> None:
    """Stop the embedded broker started by `lakehouse up` (its in-memory topics go with it)."""
    settings = get_settings()
    if broker.stop_local_broker(settings):
        console.print("[green]broker stopped[/]")
    else:
        console.print("no broker started by `lakehouse up` is running")


@app.command()
def status() -> None:
    """Say what runs where: broker, topics, lake, online stores."""
    settings = get_settings()
    table = Table(title="lakehouse status", show_header=True)
    table.add_column("component")
    table.add_column("where")
    table.add_column("state")
    host, port = broker.split_bootstrap(settings.kafka_bootstrap_servers)
    running = broker.running_broker(settings)
    reachable = broker.port_open(host, port)
    owner = f"pid {running['pid']}" if running else "external"
    table.add_row(
        "kafka", settings.kafka_bootstrap_servers, f"up ({owner})" if reachable else "[red]down[/]"
    )
    if reachable:
        on_broker = broker.describe_topics(settings)
        for topic in CATALOG.topics.values():
            have = on_broker.get(topic.name)
            want = topic_partitions(topic, settings)
            state = f"{have} partitions" if have else f"[yellow]missing[/] (wants {want})"
            table.add_row(f"  topic {topic.name}", topic.domain.value, state)
    table.add_row("lake", settings.lake_root, settings.lakehouse_profile.value)
    for name, url, default_port in (
        ("redis", settings.redis_url, 6379),
        ("mqtt", settings.mqtt_url, 1883),
    ):
        parsed = _host_port(url, default_port)
        state = "up" if broker.port_open(*parsed) else "[red]down[/]"
        table.add_row(name, url, state)
    console.print(table)


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


@app.command()
def generate(
    domain: Annotated[Domain, typer.Argument(help="ecommerce, fraud or iot")],
    events: Annotated[
        int, typer.Option("--events", "-n", help="Total events to produce")
    ] = 100_000,
    rate: Annotated[float | None, typer.Option(help="Target events/s (default: max)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same events")] = 42,
    start: Annotated[
        datetime | None, typer.Option(help="Start of simulated time (default: yesterday 00:00 UTC)")
    ] = None,
    days: Annotated[int, typer.Option(help="Days of simulated time to spread the events over")] = 1,
    live: Annotated[bool, typer.Option(help="Stamp events with the wall clock instead")] = False,
    via: Annotated[
        Via, typer.Option(help="kafka: straight to the topics; mqtt: as the devices would (iot)")
    ] = Via.KAFKA,
    faults: Annotated[
        str,
        typer.Option(
            help="Inject data quality faults, e.g. nulls=0.05,out_of_range=0.01,"
            "duplicates=0.02,schema_drift=0.05 (shares of each topic's messages)"
        ),
    ] = "",
) -> None:
    """Produce seeded synthetic traffic for one domain to its Kafka topics."""
    from streaming.generators import Faults, make_generator
    from streaming.producer import produce

    if domain is Domain.PLATFORM:
        raise typer.BadParameter("choose ecommerce, fraud or iot")
    try:
        injected = Faults.parse(faults)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--faults") from None
    if days < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--days")
    settings = get_settings()
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start is None and days > 1 and not live:
        # Several days end where one would: at the end of yesterday.
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=days)
    generator = make_generator(
        domain, seed=seed, start=start, live=live, faults=injected, span=timedelta(days=days)
    )
    if via is Via.MQTT:
        if domain is not Domain.IOT:
            raise typer.BadParameter("only iot devices publish over MQTT", param_hint="--via")
        _publish_over_mqtt(settings, generator, events, rate)
        return
    report = produce(settings, generator, events, rate=rate, progress=True)
    summary = ", ".join(f"{topic}={count:,}" for topic, count in report.per_topic.items())
    console.print(
        f"[green]produced[/] {report.total:,} events in {report.seconds:.1f}s "
        f"({report.total / max(report.seconds, 1e-9):,.0f}/s): {summary}"
    )


def _publish_over_mqtt(
    settings: Settings, generator: DomainGenerator, events: int, rate: float | None
) -> None:
    """Publish as the devices would: each with its own credentials, QoS 1."""
    from streaming.edge.devices import DeviceFleet, publish_batches
    from streaming.edge.provision import Credentials
    from streaming.producer import default_batch_size

    if rate is not None:
        raise typer.BadParameter("--rate is not supported with --via mqtt", param_hint="--rate")
    fleet = DeviceFleet(Credentials.load(settings.iot_edge))
    fleet.connect()
    try:
        report = publish_batches(fleet, generator.batches(events, default_batch_size(None)))
    finally:
        fleet.close()
    console.print(
        f"[green]published[/] {report.accepted:,} readings over MQTT in {report.seconds:.1f}s "
        f"({report.accepted / max(report.seconds, 1e-9):,.0f}/s), {report.refused:,} refused"
    )
    if report.unrouted:
        err_console.print(
            f"[yellow]{report.unrouted:,} accepted readings had no subscriber "
            "(no gateway session on the broker): they are gone[/]"
        )


@app.command()
def ingest(
    topics: Annotated[
        list[str] | None, typer.Option("--topics", "-t", help="Topics to land (default: all)")
    ] = None,
    until_idle: Annotated[
        bool, typer.Option(help="Exit once every assigned partition is landed")
    ] = False,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long")] = None,
    workers: Annotated[int, typer.Option(help="Processes in the consumer group")] = 1,
    json_logs: Annotated[bool, typer.Option(help="Structured JSON logs on stderr")] = True,
) -> None:
    """Run the Kafka-to-bronze sidecar: exactly-once, with quarantine of poison messages."""
    from streaming.ingest.runner import run_ingest
    from streaming.ingest.worker import IngestOptions

    configure_logging(json=json_logs)
    settings = get_settings()
    names = list(topics or CATALOG.topics)
    unknown = sorted(set(names) - set(CATALOG.topics))
    if unknown:
        known = ", ".join(CATALOG.topics)
        raise typer.BadParameter(f"unknown topics {unknown}; known: {known}", param_hint="--topics")
    options = IngestOptions(topics=names, until_idle=until_idle, max_seconds=max_seconds)
    report = run_ingest(settings, options, workers=workers)
    rate = report.consumed / max(report.seconds, 1e-9)
    console.print(
        f"[green]ingested[/] {report.consumed:,} messages in {report.seconds:.1f}s "
        f"({rate:,.0f}/s): {report.written:,} rows landed, {report.quarantined:,} quarantined, "
        f"{report.commits:,} commits, {report.fenced} fenced"
    )


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help='SQL over layer.table, e.g. "from bronze.search"')],
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
    limit: Annotated[int, typer.Option(help="Rows to print in table format")] = 50,
    explain_files: Annotated[
        bool,
        typer.Option(
            "--explain-files", help="Say on stderr how many files each table's view listed"
        ),
    ] = False,
) -> None:
    """Ask DuckDB a question over every catalogued Delta table."""
    from lakehouse.query import query_with_scans

    try:
        answer = query_with_scans(get_settings(), sql)
    except Exception as error:  # duckdb raises many error types; all are the user's SQL
        err_console.print(f"[red]query failed:[/] {error}")
        raise typer.Exit(code=1) from None
    if explain_files:
        for scan in answer.scans:
            bounds = " OR ".join(f"({bound})" for bound in scan.bounds) or "no usable WHERE"
            err_console.print(
                f"{scan.table}: {scan.files_scanned:,} of {scan.files:,} files "
                f"({scan.reader}); {bounds}"
            )
    _print_arrow(answer.table, output, limit)


def _print_arrow(result: pa.Table, output: OutputFormat, limit: int) -> None:
    if output is OutputFormat.JSON:
        sys.stdout.write(orjson.dumps(result.to_pylist(), default=str).decode() + "\n")
        return
    if output is OutputFormat.CSV:
        sys.stdout.flush()
        pacsv.write_csv(
            _flat(result),
            sys.stdout.buffer,
            write_options=pacsv.WriteOptions(quoting_style="needed"),
        )
        sys.stdout.buffer.flush()
        return
    console.print(arrow_view(result, limit=limit))
    if result.num_rows > limit:
        console.print(f"({result.num_rows:,} rows, {limit} shown)")


def _flat(result: pa.Table) -> pa.Table:
    """CSV holds no lists or structs: nested columns (a user's top categories, say) are
    written as JSON text, one value at a time since Arrow has no cast to JSON."""
    columns = []
    for column in result.columns:
        if pa.types.is_nested(column.type):
            values = [
                None if v is None else orjson.dumps(v, default=str).decode()
                for v in column.to_pylist()
            ]
            column = pa.chunked_array([pa.array(values, pa.string())])
        columns.append(column)
    return pa.Table.from_arrays(columns, names=result.column_names)


@app.command()
def tables() -> None:
    """Each catalogued table with its Delta version, file count, rows and size."""
    from cli.views import tables_view

    console.print(tables_view(get_settings()))


@app.command()
def materialize(
    first: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day (default: first landed)"),
    ] = None,
    last: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (default: last landed)"),
    ] = None,
) -> None:
    """Rebuild silver and gold through Dagster for a range of days (one `medallion` run)."""
    from lakehouse.bronze import landed_days
    from orchestration.materialize import observe_bronze, rebuild_days

    settings = get_settings()
    days = landed_days(settings)
    if not days and (first is None or last is None):
        err_console.print("[red]bronze holds no data yet:[/] land some, or give --from and --to")
        raise typer.Exit(code=1)
    start = first.date() if first else days[0]
    end = last.date() if last else days[-1]
    if end < start:
        raise typer.BadParameter(f"--to {end} is before --from {start}", param_hint="--to")
    observe_bronze()
    with console.status(f"materializing silver and gold for {start}..{end}"):
        try:
            run = rebuild_days(start, end)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--from/--to") from None
    colour = "green" if run.success else "red"
    console.print(
        f"[{colour}]run {run.run_id} {'succeeded' if run.success else 'FAILED'}[/]: "
        f"{len(run.assets)} assets materialized for {start}..{end}"
    )
    for failed in run.failed_checks:
        style = "red" if failed.endswith("(error)") else "yellow"
        console.print(f"  [{style}]check failed:[/] {failed}")
    if not run.success:
        for failure in run.failures:
            err_console.print(f"[red]{escape(failure)}[/]")
        err_console.print("see the run's logs in the Dagster UI (`dagster dev`)")
        raise typer.Exit(code=1)


@app.command()
def train(
    day: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Train as of this day (default: last landed)"),
    ] = None,
    weekly: Annotated[
        bool, typer.Option(help="The weekly models: fraud on all history, failure prediction")
    ] = False,
) -> None:
    """Train the daily (recommender, fraud) or weekly (fraud on all history, failure)
    models through Dagster, register them and print each registry decision."""
    from lakehouse.bronze import landed_days
    from orchestration.materialize import train_models

    days = landed_days(get_settings())
    if day is None and not days:
        err_console.print("[red]bronze holds no data yet:[/] land and materialize some days first")
        raise typer.Exit(code=1)
    as_of = day.date() if day else days[-1]
    with console.status(f"training the {'weekly' if weekly else 'daily'} models as of {as_of}"):
        try:
            run = train_models(as_of, weekly=weekly)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--day") from None
    if run.models:
        console.print(models_view(run.models))
    if not run.success:
        for failure in run.failures:
            err_console.print(f"[red]{escape(failure)}[/]")
        err_console.print("see the run's logs in the Dagster UI (`dagster dev`)")
        raise typer.Exit(code=1)


@app.command()
def demo(
    scale: Annotated[
        float, typer.Option(help="Multiply the default event counts (1M/250K/500K)")
    ] = 1.0,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (default 42; a fresh one on reruns)")
    ] = None,
) -> None:
    """End to end: broker up, a simulated day for all three domains, ingest, DuckDB queries."""
    from cli.demo import run_demo

    if scale <= 0:
        raise typer.BadParameter("must be positive", param_hint="--scale")
    try:
        run_demo(get_settings(), console, scale=scale, seed=seed)
    except RuntimeError as error:
        err_console.print(f"[red]demo failed:[/] {error}")
        raise typer.Exit(code=1) from None


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Stop the embedded broker and delete the local lake: a clean slate for the demo."""
    from cli.demo import reset_local

    settings = get_settings()
    if not yes:
        typer.confirm(f"Stop the embedded broker and delete {settings.lake_root}?", abort=True)
    try:
        reset_local(settings, console)
    except RuntimeError as error:
        err_console.print(f"[red]reset refused:[/] {error}")
        raise typer.Exit(code=1) from None


# --- `lakehouse stream ...`: stream processors beside the ingest sidecar (step 6) ------------

stream_app = typer.Typer(
    help="Stream processors: online features in Redis, IoT alerts to Kafka and a webhook."
)
app.add_typer(stream_app, name="stream")


@stream_app.command("session-features")
def stream_session_features(
    until_idle: Annotated[
        float | None,
        typer.Option(help="Exit after this many seconds without a message (once assigned)"),
    ] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus port (default: SESSION_FEATURES_METRICS_PORT)")
    ] = None,
    json_logs: Annotated[bool, typer.Option(help="Structured JSON logs on stderr")] = True,
) -> None:
    """Keep per-user session features in Redis from the shop topics, exactly once in effect."""
    from streaming.session.processor import SessionOptions, run_session_features

    settings = process_settings(json_logs, session_features_metrics_port=metrics_port)
    options = SessionOptions(until_idle=until_idle, max_seconds=max_seconds)
    report = run_session_features(settings, options)
    console.print(
        f"[green]session features[/] {report.consumed:,} consumed, {report.applied:,} applied, "
        f"{report.bad:,} bad, {report.batches:,} batches, {report.fenced} fenced "
        f"in {report.seconds:.1f}s"
    )


@stream_app.command("iot-alerts")
def stream_iot_alerts(
    until_idle: Annotated[
        float | None,
        typer.Option(help="Exit after this many seconds without a message (once assigned)"),
    ] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Port of /metrics and /healthz (default: IOT_ALERTS_METRICS_PORT)"),
    ] = None,
    webhook: Annotated[
        bool, typer.Option(help="Deliver alerts to IOT_ALERTS_WEBHOOK_URL (when set)")
    ] = True,
    json_logs: Annotated[bool, typer.Option(help="Structured JSON logs on stderr")] = True,
) -> None:
    """Raise and close anomaly alerts on sensor readings (to `iot_alerts` and the webhook),
    restart-safe."""
    from streaming.alerts.processor import AlertOptions, run_iot_alerts

    settings = process_settings(json_logs, iot_alerts_metrics_port=metrics_port)
    options = AlertOptions(until_idle=until_idle, max_seconds=max_seconds, webhook=webhook)
    report = run_iot_alerts(settings, options)
    console.print(
        f"[green]iot alerts[/] {report.consumed:,} readings, {report.alerts:,} alert records, "
        f"{report.invalid:,} invalid, {report.repeated:,} repeated, {report.bad:,} bad, "
        f"{report.batches:,} batches, "
        f"{report.fenced} fenced, {report.delivered:,} delivered in {report.seconds:.1f}s"
    )


app.add_typer(iot_app, name="iot")
app.add_typer(import_app, name="import")
app.add_typer(evaluate_app, name="evaluate")
app.command()(gateway)
app.command()(maintain)

serve_app = typer.Typer(help="The online services (HTTP APIs).")
app.add_typer(serve_app, name="serve")


@serve_app.command("recommendations")
def serve_recommendations(
    host: Annotated[
        str | None, typer.Option(help="Interface (default: RECOMMENDATIONS_HOST)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: RECOMMENDATIONS_PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """The recommendation API: realtime from the session, else batch, else popular; needs
    LAKEHOUSE_API_TOKEN outside the local profile."""
    from cli.serve import serve_recommendations as serve
    from streaming.service.auth import MissingToken

    configure_logging(json=True)
    settings = get_settings()
    try:
        serve(
            settings,
            host or settings.recommendations_host,
            port or settings.recommendations_port,
            workers,
        )
    except MissingToken as error:
        err_console.print(f"[red]refusing to start:[/] {error}")
        raise typer.Exit(code=2) from None


@serve_app.command("fraud")
def serve_fraud(
    host: Annotated[str | None, typer.Option(help="Interface (default: FRAUD_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: FRAUD_PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """The fraud decision API: APPROVE / REVIEW / BLOCK with reasons, before authorization;
    needs LAKEHOUSE_API_TOKEN outside the local profile and a valid rules file."""
    from cli.serve import serve_fraud as serve
    from lakehouse.decisions.rules import RulesError
    from streaming.service.auth import MissingToken

    configure_logging(json=True)
    settings = get_settings()
    try:
        serve(settings, host or settings.fraud_host, port or settings.fraud_port, workers)
    except (MissingToken, RulesError) as error:
        err_console.print(f"[red]refusing to start:[/] {error}")
        raise typer.Exit(code=2) from None


if __name__ == "__main__":
    app()
