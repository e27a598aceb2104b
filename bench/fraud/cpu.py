"""`python -m bench.fraud.cpu`: CPU time per fraud decision, in process, without HTTP.

The HTTP benchmark (`python -m bench.fraud`) measures the tail; on a shared 2-core
machine the tail moves with the host, while the CPU a decision costs is the figure a
change to the decision path moves. This drives `decide_batch`, the very function the
service's micro-batcher calls, on the benchmark's world (`bench/fraud/world.py`: holders
with a week of history in a private Redis, a trained champion, published profiles and
risk), with the held-out payments in event-time order, in batches of `--batch` (the
service's mean batch at 1,000/s was 3.4), and reports:

- CPU milliseconds per decision (`time.process_time`, this process only) per round of
  `--payments`, and Redis's own CPU per decision (its `INFO cpu`), over `--rounds`;
- where the CPU goes: one more round under cProfile (on CPU time, so waiting for Redis
  is not counted), the share of `decide_batch`'s CPU in each of its parts (cProfile's
  overhead inflates Python-heavy parts: the shares rank, the CPU figures compare);
- how much history a batch reads (members, and distinct payments among them);
- a digest of every decision body (without its stage times): a change that must not
  change any decision, score or reason must leave it as it was. The bodies are written
  beside the results file for a diff.

Every payment is decided once (decisions are remembered): each round takes the next
payments of the stream, so rounds see the same kind of traffic, not the same payments.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import hashlib
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import redis
import typer
import uvloop
from rich.console import Console

from bench.envelope import envelope, summary, write
from bench.fraud.world import HISTORY_DAYS, STREAM_DAYS, world_on_private_services
from bench.serving.servers import SERVER_CORE
from lakehouse.online.fraud_state import event_millis
from streaming.fraud.contract import Transaction
from streaming.fraud.decide import Decided, IdConflict, decide_batch
from streaming.fraud.serving import Serving
from streaming.fraud.state import FraudState, Lookup

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)

PARTS = {
    "decide_batch": "streaming/fraud/decide.py:decide_batch",
    "redis read": "streaming/fraud/state.py:read",
    "history decode": "lakehouse/online/fraud_state.py:history_columns",
    "candidates": "streaming/fraud/decide.py:_candidates",
    "features (compute_signals)": "lakehouse/features/fraud.py:compute_signals",
    "explain (model)": "streaming/fraud/decide.py:_explain",
    "signal rules": "lakehouse/decisions/rules.py:signal_hits",
    "redis record": "streaming/fraud/state.py:record",
}
"""The parts of a decision reported in the profile: label -> `file:function`."""


@app.command()
def main(
    holders: Annotated[int, typer.Option(help="Card holders in the world")] = 3_000,
    batch: Annotated[int, typer.Option(help="Payments per decide_batch call")] = 3,
    payments: Annotated[int, typer.Option(help="Payments per measured round")] = 1_500,
    rounds: Annotated[int, typer.Option(help="Measured rounds")] = 5,
    warmup: Annotated[int, typer.Option(help="Payments decided before measuring")] = 300,
    profile_out: Annotated[
        Path | None, typer.Option(help="Also save the cProfile statistics here (pstats)")
    ] = None,
) -> None:
    """Build the world, then decide its held-out payments round by round."""
    config = {
        "holders": holders,
        "batch": batch,
        "payments": payments,
        "rounds": rounds,
        "warmup": warmup,
        "history_days": HISTORY_DAYS,
        "stream_days": STREAM_DAYS,
    }
    document: dict[str, Any] = envelope("fraud.cpu", config)
    console.print(f"[bold]fraud CPU per decision[/] {config}")
    os.sched_setaffinity(0, {SERVER_CORE})  # where the HTTP benchmark pins the service
    with world_on_private_services("bench-fraud-cpu-", holders, console) as (world, _, took):
        document["world_seconds"] = took
        # A CPU figure, not a latency one: on a shared machine a slow Redis reply must
        # not turn into a degraded decision (another decision, another digest).
        settings = world.settings.model_copy(update={"redis_timeout_ms": 5_000.0})
        state = FraudState(settings)
        serving = Serving(settings, state)
        serving.swap(serving.refresh())
        # The service's loop: the Redis calls are awaited on uvloop.
        loop = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        stream = [Transaction.model_validate_json(body) for body in world.stream]
        needed = warmup + payments * (rounds + 1)
        if needed > len(stream):
            raise typer.BadParameter(f"{needed} payments wanted, the stream has {len(stream)}")
        client = redis.Redis.from_url(world.settings.redis_url)
        bodies: list[bytes] = []
        # What the service loads lives out of the collector's sight (`Serving.swap`):
        # so do the world and the stream here, or every full collection walks them.
        gc.freeze()
        run = _Runner(serving, state, batch, bodies, loop)
        document["history_per_batch"] = _history(state, stream[:warmup], batch, loop)
        run(stream[:warmup])
        cpu, redis_cpu = [], []
        for k in range(rounds):
            chunk = stream[warmup + k * payments : warmup + (k + 1) * payments]
            redis_before = _redis_cpu(client)
            seconds = run(chunk)
            cpu.append(seconds / len(chunk) * 1000)
            redis_cpu.append((_redis_cpu(client) - redis_before) / len(chunk) * 1000)
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        run(stream[warmup + rounds * payments : needed])
        profile.disable()
        loop.run(state.close())
        loop.close()
    document["cpu_ms_per_decision"] = summary(cpu)
    document["cpu_ms_per_decision_rounds"] = [round(v, 4) for v in cpu]
    document["redis_cpu_ms_per_decision"] = summary(redis_cpu)
    document["profile_shares"] = _shares(profile)
    if profile_out is not None:
        profile.dump_stats(profile_out)
    document["decisions"] = len(bodies)
    document["decisions_digest"] = hashlib.sha256(b"\n".join(bodies)).hexdigest()
    path = write(document)
    path.with_suffix(".decisions.jsonl").write_bytes(b"".join(body + b"\n" for body in bodies))
    console.print(
        {
            k: document[k]
            for k in (
                "history_per_batch",
                "cpu_ms_per_decision",
                "cpu_ms_per_decision_rounds",
                "redis_cpu_ms_per_decision",
                "profile_shares",
                "decisions",
                "decisions_digest",
            )
        }
    )
    console.print(f"[green]results[/] {path}")


class _Runner:
    """Decides payments `batch` at a time, keeping each decision body (stage times
    dropped, as JSON: kept bytes add nothing to the collector's work), and returns the CPU
    seconds it took."""

    def __init__(
        self, serving: Serving, state: FraudState, batch: int, bodies: list[bytes],
        loop: asyncio.Runner,
    ) -> None:
        self.serving, self.state, self.batch, self.bodies = serving, state, batch, bodies
        self.loop = loop

    def __call__(self, payments: list[Transaction]) -> float:
        gc.collect()
        return self.loop.run(self._decide_all(payments))

    async def _decide_all(self, payments: list[Transaction]) -> float:
        spent = 0.0
        for start in range(0, len(payments), self.batch):
            chunk = payments[start : start + self.batch]
            before = time.process_time()
            results = await decide_batch(self.serving.current, self.state, chunk)
            spent += time.process_time() - before
            for result in results:
                if isinstance(result, IdConflict) or not isinstance(result, Decided):
                    raise RuntimeError(f"a fresh payment was not decided: {result}")
                if result.replayed or result.body["degraded"]:
                    raise RuntimeError(f"a fresh payment was replayed or degraded: {result}")
                body = {k: v for k, v in result.body.items() if k != "stage_ms"}
                self.bodies.append(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        return spent


def _history(
    state: FraudState, payments: list[Transaction], batch: int, loop: asyncio.Runner
) -> dict[str, float]:
    """Mean members a batch reads from the windows, and distinct payments among them."""
    members, distinct = [], []
    for start in range(0, len(payments), batch):
        lookups = [
            Lookup(t.event_id, t.user_id, t.device_id, event_millis(t.event_time))
            for t in payments[start : start + batch]
        ]
        reads = loop.run(state.read(lookups)) or []
        found = [m for read in reads for m in read.history]
        members.append(len(found))
        distinct.append(len(set(found)))
    return {
        "members": round(float(np.mean(members)), 1),
        "distinct": round(float(np.mean(distinct)), 1),
    }


def _redis_cpu(client: redis.Redis) -> float:
    """Redis's own CPU seconds so far (user + system, main thread and children)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _shares(profile: cProfile.Profile) -> dict[str, float]:
    """Each part's cumulative time as a share of `decide_batch`'s, from the profile."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for (filename, _, function), (_, _, _, total, _) in stats.items():
        for label, where in PARTS.items():
            path, name = where.split(":")
            if filename.endswith(path) and function == name:
                cumulative[label] = cumulative.get(label, 0.0) + total
    whole = cumulative.get("decide_batch") or float("nan")
    return {
        label: round(float(np.float64(cumulative.get(label, 0.0)) / whole), 3) for label in PARTS
    }


if __name__ == "__main__":
    app()
