"""`python -m bench.ingest.bare`: the bare prototype limit of Kafka to Parquet on this host.

What one ingest process costs with none of the project's extras: no validation or
quarantine, no provenance beyond partition and offset, no Delta log, no exactly-once
bookkeeping. The main thread consumes (`Consumer.consume`, 10,000 at a time, partitions
assigned directly: no group join) and collects the values; every 250,000 messages a second
thread parses them with Arrow's JSON reader (the topic's schema, one `read_json` per
batch) and writes one zstd level-1 Parquet file, as bronze does. Same broker, traffic and
window (first message to last file written) as `python -m bench.ingest`, so the ratio of
the two figures, measured in one session, is what the project's extras cost
(docs/benchmarks.md, Ingest).

A poisoned batch is parsed as it comes: Arrow refuses it, and the bare loop then drops the
whole batch (it has no way to tell the poison apart), so with `--poison-rate` above 0 the
figure is an upper bound that writes nothing.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import typer
from confluent_kafka import Consumer, Message, TopicPartition

from bench.ingest.harness import create_topics, lake_settings, running_broker
from bench.ingest.throughput import produce_traffic
from bench.ingest.traffic import TOPIC
from lakehouse.catalog import CATALOG

app = typer.Typer(add_completion=False, help=__doc__)
FLUSH_ROWS = 250_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write(values: list[bytes], partitions: np.ndarray, offsets: np.ndarray, path: Path) -> int:
    """Parse one batch and write it as a Parquet file; the rows written (0 if refused)."""
    schema = CATALOG.topic(TOPIC).event.schema
    try:
        table = pajson.read_json(
            pa.BufferReader(b"\n".join(values)),
            read_options=pajson.ReadOptions(use_threads=True, block_size=8 << 20),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid:
        return 0
    table = table.append_column("_kafka_partition", pa.array(partitions, pa.int32()))
    table = table.append_column("_kafka_offset", pa.array(offsets, pa.int64()))
    pq.write_table(table, path, compression="zstd", compression_level=1)
    return table.num_rows


def bare_drain(bootstrap: str, events: int, partitions: int, out: Path) -> dict[str, float]:
    """Drain `events` messages of the topic; events/s and CPU µs/event of this process."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bare-{time.time_ns()}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
            "queued.max.messages.kbytes": 64 << 10,
            "queued.min.messages": 1_000_000,
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    pa.array(np.zeros(1, dtype=np.int64))  # pyarrow's one-off pandas import, as the sidecar
    writer = ThreadPoolExecutor(max_workers=1)
    pending = []
    messages: list[Message] = []
    seen = written = files = 0
    started = cpu = 0.0
    while seen < events:
        batch = consumer.consume(10_000, timeout=1.0)
        if not batch:
            continue
        if not started:
            started, cpu = time.time(), _cpu()
        if any(map(Message.error, batch)):
            raise RuntimeError(f"consumer error: {next(filter(None, map(Message.error, batch)))}")
        messages += batch
        seen += len(batch)
        if len(messages) >= FLUSH_ROWS or seen >= events:
            values = list(map(Message.value, messages))
            parts = np.fromiter(map(Message.partition, messages), np.int32, len(messages))
            offsets = np.fromiter(map(Message.offset, messages), np.int64, len(messages))
            files += 1
            path = out / f"part-{files:05d}.parquet"
            pending.append(writer.submit(_write, values, parts, offsets, path))
            messages = []
            while len(pending) > 1:  # at most two batches in flight, as in the sidecar
                written += pending.pop(0).result()
    for future in pending:
        written += future.result()
    seconds, cpu = time.time() - started, _cpu() - cpu
    writer.shutdown()
    consumer.close()
    return {
        "events_per_s": seen / seconds,
        "cpu_us_per_event": cpu / seen * 1e6,
        "rows_written": written,
        "seconds": seconds,
    }


@app.command()
def main(
    events: Annotated[int, typer.Option(help="Clickstream messages to produce and drain")] = (
        2_000_000
    ),
    runs: Annotated[int, typer.Option(help="Drains of the same topic")] = 3,
    poison_rate: Annotated[float, typer.Option(help="Share of poison messages")] = 0.0,
) -> None:
    """Produce once, then drain `runs` times with the bare loop; print each run and medians."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-bare-"))
    try:
        with running_broker(workdir, "bare") as broker:
            settings = lake_settings(workdir, "producer", broker.bootstrap)
            create_topics(settings)
            assert broker.process is not None
            produce_traffic(settings, events, broker.process.pid, poison_rate=poison_rate)
            partitions = CATALOG.topic(TOPIC).partitions
            results = []
            for run in range(1, runs + 1):
                out = workdir / f"run-{run}"
                out.mkdir()
                result = bare_drain(broker.bootstrap, events, partitions, out)
                results.append(result)
                typer.echo(
                    f"bare run {run}: {result['events_per_s']:,.0f} events/s, "
                    f"{result['cpu_us_per_event']:.2f} µs CPU/event, "
                    f"{result['rows_written']:,} rows written"
                )
                shutil.rmtree(out)
            median = statistics.median(r["events_per_s"] for r in results)
            cpu = statistics.median(r["cpu_us_per_event"] for r in results)
            typer.echo(f"bare median: {median:,.0f} events/s, {cpu:.2f} µs CPU/event")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    app()
