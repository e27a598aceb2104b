"""`lakehouse`: the command-line handle on everything outside the Dagster UI."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import orjson
import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from lakehouse import broker
from lakehouse.catalog import CATALOG, Domain, Layer, topic_partitions
from lakehouse.delta import ensure_table, table_stats
from lakehouse.logs import configure_logging
from lakehouse.settings import get_settings

app = typer.Typer(
    name="lakehouse",
    help="A Dagster-centric lakehouse: Kafka to Delta, DuckDB queries, online services.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@app.command()
def up() -> None:
    """Start the embedded broker (if not running), create topics and bronze tables."""
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    state, started = broker.start_local_broker(settings)
    verb = "started" if started else "already running"
    console.print(f"[green]broker[/] {verb} at {state['bootstrap']}")
    created = broker.ensure_topics(settings)
    console.print(f"[green]topics[/] created: {', '.join(created) or 'none (all exist)'}")
    for spec in CATALOG.in_layer(Layer.BRONZE):
        ensure_table(spec, settings)
    console.print(f"[green]lake[/] {settings.lake_root}")


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
    live: Annotated[bool, typer.Option(help="Stamp events with the wall clock instead")] = False,
) -> None:
    """Produce seeded synthetic traffic for one domain to its Kafka topics."""
    from streaming.producer import produce

    from streaming.generators import make_generator

    if domain is Domain.PLATFORM:
        raise typer.BadParameter("choose ecommerce, fraud or iot")
    settings = get_settings()
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    generator = make_generator(domain, seed=seed, start=start, live=live)
    report = produce(settings, generator, events, rate=rate, progress=True)
    summary = ", ".join(f"{topic}={count:,}" for topic, count in report.per_topic.items())
    console.print(
        f"[green]produced[/] {report.total:,} events in {report.seconds:.1f}s "
        f"({report.total / max(report.seconds, 1e-9):,.0f}/s): {summary}"
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
    for name in names:
        CATALOG.topic(name)  # a clear error for a typo, before joining the group
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
) -> None:
    """Ask DuckDB a question over every catalogued Delta table."""
    from lakehouse.query import run_query

    try:
        result = run_query(get_settings(), sql)
    except Exception as error:  # duckdb raises many error types; all are the user's SQL
        err_console.print(f"[red]query failed:[/] {error}")
        raise typer.Exit(code=1) from None
    _print_arrow(result, output, limit)


def _print_arrow(result: pa.Table, output: OutputFormat, limit: int) -> None:
    if output is OutputFormat.JSON:
        sys.stdout.write(orjson.dumps(result.to_pylist(), default=str).decode() + "\n")
        return
    if output is OutputFormat.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(result.column_names)
        writer.writerows(tuple(row.values()) for row in result.to_pylist())
        sys.stdout.write(buffer.getvalue())
        return
    table = Table(show_header=True)
    for name in result.column_names:
        table.add_column(name)
    for row in result.slice(0, limit).to_pylist():
        table.add_row(*(("" if value is None else str(value)) for value in row.values()))
    console.print(table)
    if result.num_rows > limit:
        console.print(f"({result.num_rows:,} rows, {limit} shown)")


@app.command()
def tables() -> None:
    """Each catalogued table with its Delta version, file count, rows and size."""
    settings = get_settings()
    table = Table(title=f"tables under {settings.lake_root}")
    for column in ("table", "domain", "version", "files", "rows", "size"):
        table.add_column(column, justify="right" if column not in ("table", "domain") else "left")
    for spec in CATALOG.tables.values():
        stats = table_stats(spec, settings)
        if stats is None:
            table.add_row(spec.key, spec.domain.value, "-", "-", "-", "not created")
            continue
        table.add_row(
            spec.key,
            spec.domain.value,
            str(stats.version),
            f"{stats.files:,}",
            f"{stats.rows:,}",
            _human_bytes(stats.bytes),
        )
    console.print(table)


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"


if __name__ == "__main__":
    app()
