"""`python -m bench.batch_store`: what the batch fallback costs at a million users.

Publishes `--users` users x 10 recommendations (and a popularity list) through the file
store exactly as the nightly asset does, then, in a fresh process (so the figures are
the service's, not the publisher's), opens the current publication and looks up random
users: publish seconds, file bytes, open milliseconds, lookup p50/p99 microseconds, and
the resident memory the open store adds before and after touching every page (the
memory-mapped file is shared page cache, so several workers on one machine share it).
`--dynamodb-users` does the same against DynamoDB on a local `moto_server` (the network
round trip, not DynamoDB's own latency). Results: bench/results/batch_store-<time>.json.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import typer
from rich.console import Console

from bench.envelope import envelope, write
from lakehouse.online import dynamo_store, file_store
from lakehouse.online.batch_store import Publication
from lakehouse.online.publication import open_store
from lakehouse.settings import Settings

console = Console()
K = 10


def lists(users: int, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """`users` users with K distinct products each (20,000 products), and a popularity
    list of 1,000, shaped as `publication.per_user` and `popularity` produce them."""
    rng = np.random.default_rng(seed)
    products = rng.integers(0, 20_000, size=(users, K), dtype=np.int64)
    scores = np.sort(rng.random((users, K), dtype=np.float32), axis=1)[:, ::-1]
    offsets = pa.array(np.arange(0, users * K + 1, K, dtype=np.int32))
    table = pa.table(
        {
            "user_id": pa.array(np.arange(users, dtype=np.int64) * 3),
            "products": pa.ListArray.from_arrays(offsets, pa.array(products.ravel())),
            "scores": pa.ListArray.from_arrays(offsets, pa.array(scores.ravel().copy())),
        }
    )
    popular = pa.table(
        {
            "product_id": pa.array(np.arange(1_000, dtype=np.int64)),
            "buyers": pa.array(np.arange(1_000, 0, -1, dtype=np.int64)),
        }
    )
    return table, popular


def publication(users: int) -> Publication:
    now = datetime.now(UTC)
    return Publication(
        f"{now:%Y%m%dT%H%M%S%f}-bench", "recommender_als", 1, date.today(), now, users, 1_000
    )


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_reads(settings: Settings, users: int, lookups: int) -> dict[str, float]:
    """Open the current publication and time lookups of random users (run in a child)."""
    before = rss_mib()
    started = time.perf_counter()
    store = open_store(settings)
    opened_ms = (time.perf_counter() - started) * 1000
    after_open = rss_mib()
    rng = np.random.default_rng(1)
    ids = (rng.integers(0, users, size=lookups) * 3).tolist()
    timings = np.empty(lookups)
    for i, user in enumerate(ids):
        t0 = time.perf_counter_ns()
        store.top(user, K)
        timings[i] = time.perf_counter_ns() - t0
    result = {
        "open_ms": opened_ms,
        "lookup_p50_us": float(np.percentile(timings, 50) / 1000),
        "lookup_p99_us": float(np.percentile(timings, 99) / 1000),
        "rss_added_at_open_mib": after_open - before,
    }
    if hasattr(store, "table"):
        for column in store.table.columns:  # touch every page, the worst case
            for chunk in column.chunks:
                for buffer in chunk.buffers():
                    if buffer is not None:
                        np.frombuffer(buffer, dtype=np.uint8).sum()
        result["rss_added_all_pages_mib"] = rss_mib() - before
    store.close()
    started = time.perf_counter()
    open_store(settings).close()  # a later publication's open, as a hot swap does it
    result["reopen_ms"] = (time.perf_counter() - started) * 1000
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(
    users: Annotated[int, typer.Option(help="Users published to the file store")] = 1_000_000,
    lookups: Annotated[int, typer.Option(help="Random lookups timed")] = 100_000,
    dynamodb_users: Annotated[
        int, typer.Option(help="Users published to DynamoDB (0: skip)")
    ] = 20_000,
    child: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Publish, open and look up; print and save the figures."""
    if child is not None:
        settings = Settings.model_validate_json(child)
        print(json.dumps(measure_reads(settings, users, lookups)))
        return
    home = Path(tempfile.mkdtemp(prefix="bench-batch-store-"))
    document = envelope(
        "batch_store",
        {"users": users, "k": K, "lookups": lookups, "dynamodb_users": dynamodb_users},
    )
    try:
        settings = Settings(lakehouse_home=home / "home", lakehouse_root=str(home / "lake"))
        table, popular = lists(users)
        with console.status(f"publishing {users:,} users to the file store"):
            started = time.perf_counter()
            size = file_store.write_publication(settings, publication(users), table, popular)
            seconds = time.perf_counter() - started
        reads = _child(settings, users, lookups)
        document["file"] = {
            "publish_s": seconds,
            "bytes": size,
            "bytes_per_user": size / users,
            **reads,
        }
        console.print(f"file store: {document['file']}")
        if dynamodb_users:
            document["dynamodb"] = _dynamodb(home, dynamodb_users, min(lookups, 2_000))
            console.print(f"dynamodb (moto): {document['dynamodb']}")
        console.print(f"[green]wrote[/] {write(document)}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _child(settings: Settings, users: int, lookups: int) -> dict[str, float]:
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.batch_store",
            "--users",
            str(users),
            "--lookups",
            str(lookups),
            "--child",
            settings.model_dump_json(),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _dynamodb(home: Path, users: int, lookups: int) -> dict[str, float]:
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        raise RuntimeError("moto_server is not installed: install the [test] extra")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        settings = Settings(
            lakehouse_home=home / "home",
            lakehouse_root=str(home / "lake"),
            recommendations_store="dynamodb",
            recommendations_dynamodb_table=f"bench-{uuid.uuid4().hex[:6]}",
            aws_endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        table, popular = lists(users)
        started = time.perf_counter()
        dynamo_store.write_publication(settings, publication(users), table, popular)
        seconds = time.perf_counter() - started
        reads = measure_reads(settings, users, lookups)
        return {
            "publish_s": seconds,
            "items_per_s": users / seconds,
            **{k: v for k, v in reads.items() if not k.startswith(("rss", "max_rss"))},
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    typer.run(main)
