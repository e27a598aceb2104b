"""The benchmark's output: rich tables on the console and one JSON file per invocation."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.envelope import summary as stats
from bench.ingest.latency import LatencyResult
from bench.ingest.profile import Profile
from bench.ingest.throughput import ProduceCost, ThroughputRun

TARGET_EVENTS_PER_S = 300_000
TARGET_P99_LATENCY_S = 12.0


def produce_summary(cost: ProduceCost | None) -> dict[str, Any] | None:
    if cost is None:
        return None
    return {
        "events": cost.events,
        "seconds": cost.seconds,
        "events_per_s": cost.events_per_s,
        "producer_cpu_s": cost.producer_cpu_s,
        "producer_cpu_us_per_event": cost.producer_cpu_s / cost.events * 1e6,
        "broker_cpu_s": cost.broker_cpu_s,
        "broker_cpu_us_per_event": cost.broker_cpu_s / cost.events * 1e6,
        "poison": cost.poison,
    }


def throughput_summary(runs: list[ThroughputRun]) -> dict[str, Any]:
    """Per-metric statistics over the verified runs."""
    if not runs:
        return {}

    def over(metric: str) -> dict[str, float]:
        return stats([float(getattr(run, metric)) for run in runs])

    return {
        "events_per_s": over("events_per_s"),
        "join_s": over("join_s"),
        "seconds": over("seconds"),
        "cpu_us_per_event": over("cpu_us_per_event"),
        "ingest_cores": stats([run.ingest_cpu_s / run.seconds for run in runs]),
        "broker_cores": stats([run.broker_cpu_s / run.seconds for run in runs]),
        "broker_cpu_us_per_event": stats([run.broker_cpu_s / run.events * 1e6 for run in runs]),
        "machine_cores_busy": over("machine_cores_busy"),
        "other_cores_busy": over("other_cores_busy"),
        "bytes_per_event": over("bytes_per_event"),
        "commits": over("commits"),
        "files": over("files"),
        "gc_pause_share": stats([run.gc_pause_s / run.seconds for run in runs]),
        "all_verified": all(run.check.ok for run in runs),
    }


def stage_breakdown(runs: list[ThroughputRun]) -> dict[str, Any]:
    """Medians over runs of each step's wall seconds and each thread group's CPU, as a
    share of the measured window (cores, for CPU)."""
    writer: dict[str, list[float]] = {}
    main: dict[str, list[float]] = {}
    threads: dict[str, list[float]] = {}
    for run in runs:
        steps = dict(run.probe["writer_steps"])
        steps["flush, decode start to commit end"] = sum(
            flush["ended"] - flush["started"] for flush in run.probe["flushes"]
        )
        for step, seconds in steps.items():
            writer.setdefault(step, []).append(seconds / run.seconds)
        for step in ("buffer", "submit_wait", "collect"):
            main.setdefault(step, []).append(run.probe["main_steps"].get(step, 0.0) / run.seconds)
        for group, seconds in thread_groups(run.probe).items():
            threads.setdefault(group, []).append(seconds / run.seconds)
    return {
        "writer_wall_share": {k: float(np.median(v)) for k, v in writer.items()},
        "main_wall_share": {k: float(np.median(v)) for k, v in main.items()},
        "thread_cores": {k: float(np.median(v)) for k, v in threads.items()},
    }


THREAD_ROLES = {
    "write": "writer thread (decode, build, commit)",
    "decode": "decoder thread (decode, build rows)",
    "commit": "committer thread (Delta commits)",
}


def thread_groups(probe: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per thread group between the first message and the last commit."""
    before, after = probe["threads_at_first_message"], probe["threads_at_last_commit"]
    roles = {int(tid): role for tid, role in probe["thread_roles"].items()}
    groups: dict[str, float] = {}
    for key, seconds in after.items():
        tid, name = key.split(":", 1)
        if int(tid) == probe["main_tid"]:
            group = "main thread (consume, buffer)"
        elif int(tid) in roles:
            group = THREAD_ROLES.get(roles[int(tid)], roles[int(tid)])
        elif name.startswith("rdk:"):
            group = "librdkafka threads (fetch, decompress)"
        elif name.startswith("tokio"):
            group = "delta-rs tokio (Parquet encode, I/O)"
        elif name == "python":
            group = "Arrow thread pool (JSON parse)"
        else:
            group = f"other ({name})"
        groups[group] = groups.get(group, 0.0) + seconds - before.get(key, 0.0)
    return dict(sorted(groups.items(), key=lambda item: -item[1]))


def profile_summary(profile: Profile | None) -> dict[str, Any] | None:
    if profile is None:
        return None
    return {"rate_hz": profile.rate, "cpu_s": profile.seconds(), "share": profile.by_thread()}


def latency_summary(result: LatencyResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    data = dataclasses.asdict(result)
    data["produced"] = produce_summary(result.produced)
    data["check"] = check_dict(result.check)
    return data


def check_dict(check: Any) -> dict[str, Any]:
    data = dataclasses.asdict(check)
    data["ok"] = check.ok
    return data


def run_dict(run: ThroughputRun) -> dict[str, Any]:
    data = {f.name: getattr(run, f.name) for f in dataclasses.fields(run) if f.name != "probe"}
    data["check"] = check_dict(run.check)
    data["cpu_us_per_event"] = run.cpu_us_per_event
    data["flush_seconds"] = [f["ended"] - f["started"] for f in run.probe["flushes"]]
    data["thread_cpu_s"] = thread_groups(run.probe)
    data["gc_collections"] = run.probe["gc_collections"]
    return data


def verdict(summary: dict[str, Any], latency: dict[str, Any] | None) -> dict[str, Any]:
    """Each target with the measured figure and whether it is met."""
    result: dict[str, Any] = {}
    median = summary.get("events_per_s", {}).get("p50")
    if median is not None:
        result["throughput"] = {
            "target": f">= {TARGET_EVENTS_PER_S:,} events/s",
            "measured_median": median,
            "met": median >= TARGET_EVENTS_PER_S and summary["all_verified"],
        }
    if latency and latency["latency_s"]:
        p99 = latency["latency_s"]["p99"]
        result["freshness"] = {
            "target": f"p99 <= {TARGET_P99_LATENCY_S} s at a 10 s flush",
            "measured_p99": p99,
            "met": p99 <= TARGET_P99_LATENCY_S and latency["check"]["ok"],
        }
    return result


# --- console -----------------------------------------------------------------------------


def runs_table(runs: list[ThroughputRun]) -> Table:
    table = Table(title="Throughput: one ingest process draining the topic")
    for column in (
        "run", "events", "join s", "window s", "events/s", "ingest CPU µs/ev",
        "ingest cores", "broker cores", "other cores", "B/event", "commits", "files",
        "GC %", "verified",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(
            str(run.index),
            f"{run.events:,}",
            f"{run.join_s:.1f}",
            f"{run.seconds:.2f}",
            f"{run.events_per_s:,.0f}",
            f"{run.cpu_us_per_event:.2f}",
            f"{run.ingest_cpu_s / run.seconds:.2f}",
            f"{run.broker_cpu_s / run.seconds:.2f}",
            f"{run.other_cores_busy:.2f}",
            f"{run.bytes_per_event:.1f}",
            str(run.commits),
            str(run.files),
            f"{100 * run.gc_pause_s / run.seconds:.1f}",
            "[green]yes[/]" if run.check.ok else f"[red]NO[/] {'; '.join(run.check.problems)}",
        )
    return table


def summary_table(document: dict[str, Any]) -> Table:
    table = Table(title="Ingest benchmark summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target / note")
    summary = document["throughput"]["summary"]
    if summary:
        eps = summary["events_per_s"]
        table.add_row(
            "throughput, events/s (median)",
            f"{eps['p50']:,.0f}",
            f">= {TARGET_EVENTS_PER_S:,}; min {eps['min']:,.0f}, max {eps['max']:,.0f}",
        )
        table.add_row("group join, s (median)", f"{summary['join_s']['p50']:.1f}", "excluded")
        table.add_row(
            "ingest CPU per event, µs", f"{summary['cpu_us_per_event']['p50']:.2f}", ""
        )
        table.add_row("bytes on disk per event", f"{summary['bytes_per_event']['p50']:.1f}", "")
    produce = document["throughput"].get("produce")
    if produce:
        table.add_row(
            "producer CPU per event, µs",
            f"{produce['producer_cpu_us_per_event']:.2f}",
            f"generator + librdkafka; broker {produce['broker_cpu_us_per_event']:.2f} µs/ev",
        )
    latency = document.get("latency")
    if latency and latency["latency_s"]:
        lat = latency["latency_s"]
        flush = f"flush {latency['flush_seconds']} s"
        table.add_row("freshness p50, s", f"{lat['p50']:.2f}", flush)
        table.add_row("freshness p99, s", f"{lat['p99']:.2f}", f"<= {TARGET_P99_LATENCY_S}")
        steady = latency.get("steady_latency_s") or {}
        if steady:
            table.add_row(
                "freshness p99 after warm-up, s",
                f"{steady['p99']:.2f}",
                "without the first commit",
            )
        table.add_row(
            "commits / files per minute",
            f"{latency['commits_per_minute']:.1f} / {latency['files_per_minute']:.1f}",
            f"at {latency['rate']:,.0f} events/s",
        )
        table.add_row(
            "ingest cores at that rate",
            f"{latency['ingest_cores']:.3f}",
            f"{latency['cpu_us_per_event']:.2f} µs/event; "
            f"producer {latency['bench_cores']:.2f}, broker {latency['broker_cores']:.2f}, "
            f"other load {latency['other_cores_busy']:.2f} cores",
        )
    for name, judged in document.get("verdict", {}).items():
        met = "[green]met[/]" if judged["met"] else "[red]missed[/]"
        table.add_row(f"verdict: {name}", met, judged["target"])
    return table


def profile_table(profile: dict[str, Any]) -> Table:
    table = Table(title=f"py-spy profile (on-CPU Python samples at {profile['rate_hz']} Hz)")
    table.add_column("thread")
    table.add_column("stage")
    table.add_column("share", justify="right")
    for thread, stages in profile["share"].items():
        seconds = profile["cpu_s"].get(thread, 0.0)
        for index, (stage, share) in enumerate(stages.items()):
            if share < 0.01:
                continue
            label = f"{thread} ({seconds:.1f} s)" if index == 0 else ""
            table.add_row(label, stage, f"{100 * share:.1f}%")
    return table


def breakdown_table(breakdown: dict[str, Any]) -> Table:
    table = Table(title="Where the time goes (medians over runs, share of the window)")
    table.add_column("what")
    table.add_column("share", justify="right")
    for group, cores in breakdown["thread_cores"].items():
        table.add_row(f"CPU: {group}", f"{cores:.2f} cores")
    for step, share in breakdown["writer_wall_share"].items():
        table.add_row(f"flush wall: {step}", f"{100 * share:.0f}%")
    for step, share in breakdown["main_wall_share"].items():
        table.add_row(f"main wall: {step}", f"{100 * share:.0f}%")
    return table


def print_all(console: Console, document: dict[str, Any], runs: list[ThroughputRun]) -> None:
    if runs:
        console.print(runs_table(runs))
        console.print(breakdown_table(document["throughput"]["breakdown"]))
    if document.get("profile"):
        console.print(profile_table(document["profile"]))
    console.print(summary_table(document))
