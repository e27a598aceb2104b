"""The capacity plan's arithmetic on hand-computed inputs, and how it finds its inputs.
No benchmark runs here: the result documents are written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.capacity import inputs
from bench.capacity.plan import (
    INSTANCES,
    Instance,
    always_on,
    batch,
    events_per_core_s,
    instances_for,
    per_core,
    storage_tb_per_day,
    total,
)

M6I = INSTANCES["m6i.xlarge"]  # 4 vCPU, 16 GiB, $0.192/h, EMR fee $0.048/h
R6I = INSTANCES["r6i.2xlarge"]  # 8 vCPU, 64 GiB, $0.504/h, EMR fee $0.126/h


def test_rates_per_core() -> None:
    assert events_per_core_s(8.0) == pytest.approx(125_000)
    assert per_core(3_000, 1.5) == pytest.approx(2_000)
    with pytest.raises(ValueError):
        events_per_core_s(0)


def test_whole_instances() -> None:
    assert instances_for(8.0, M6I) == 2  # exactly two, not three
    assert instances_for(8.1, M6I) == 3
    assert instances_for(0.1, M6I, minimum=2) == 2


def test_always_on_keeps_two_instances_for_a_small_load() -> None:
    # 50,000/s at 100,000/s per core: half a core of work, 0.83 at 60%: one instance, but two.
    plan = always_on("ingest", "50K/s", 50_000, 100_000, "events/s per core", M6I)
    assert plan.work_cores == pytest.approx(0.5)
    assert (plan.instances, plan.cores, plan.memory_gib) == (2, 8, 32)
    assert plan.usd_per_month == pytest.approx(2 * 0.192 * 730)  # 280.32


def test_always_on_sizes_for_the_peak_with_headroom() -> None:
    # 10,000/s at 250/s per core: 40 cores of work, 66.7 at 60%: 16.7 instances, so 17.
    plan = always_on("fraud", "10K/s", 10_000, 250, "decisions/s per core", M6I)
    assert plan.work_cores == pytest.approx(40)
    assert plan.instances == 17
    assert plan.usd_per_month == pytest.approx(17 * 0.192 * 730)  # 2,382.72


def test_batch_is_paid_for_its_window_with_the_emr_fee() -> None:
    # 500M rows at 50,000 rows/s per core: 10,000 core-seconds; in one hour 2.8 cores.
    plan = batch("build", "500M/day", 500e6, 50_000, R6I, window_hours=1)
    assert plan.work_cores == pytest.approx(10_000 / 3600)
    assert plan.instances == 1
    assert plan.hours_per_month == pytest.approx(30.4)
    assert plan.usd_per_month == pytest.approx((0.504 + 0.126) * 30.4)  # 19.15


def test_batch_without_emr_and_a_shorter_window() -> None:
    # 1B rows at 20,000 rows/s per core: 50,000 core-seconds; in half an hour 27.8 cores:
    # four 8-vCPU instances, 0.5 h x 30.4 days = 15.2 hours a month.
    plan = batch("iot", "1B/day", 1e9, 20_000, R6I, window_hours=0.5, emr=False)
    assert plan.work_cores == pytest.approx(50_000 / 1800)
    assert plan.instances == 4
    assert plan.usd_per_month == pytest.approx(4 * 0.504 * 15.2)  # 30.64
    assert total([plan, plan]) == pytest.approx(2 * 4 * 0.504 * 15.2)


def test_storage_per_day() -> None:
    assert storage_tb_per_day(500e6, 54.0) == pytest.approx(0.027)


def test_instance_memory_per_vcpu() -> None:
    assert Instance("x", 4, 32.0, 1.0).gib_per_vcpu == 8.0


def _result(directory: Path, benchmark: str, stamp: str, **body: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{benchmark}-{stamp}.json"
    path.write_text(json.dumps({"benchmark": benchmark, "date": stamp, **body}))
    return path


def test_the_newest_result_wins_across_fresh_and_recorded(tmp_path: Path) -> None:
    fresh, recorded = tmp_path / "results", tmp_path / "recorded"
    summary = {"cpu_us_per_event": {"p50": 10.0}, "bytes_per_event": {"p50": 50.0}}
    _result(recorded, "ingest", "2026-12-01T00:00:00", throughput={"summary": summary})
    newer = {"cpu_us_per_event": {"p50": 8.0}, "bytes_per_event": {"p50": 40.0}}
    _result(fresh, "ingest", "2026-12-02T00:00:00", throughput={"summary": newer})
    measured, size = inputs.ingest((fresh, recorded))
    assert measured.value == pytest.approx(125_000)
    assert size == 40.0
    _result(recorded, "ingest", "2026-12-03T00:00:00", throughput={"summary": summary})
    measured, _ = inputs.ingest((fresh, recorded))
    assert measured.value == pytest.approx(100_000)


def test_a_missing_result_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(inputs.MissingResult, match=r"python -m bench\.fraud"):
        inputs.fraud((tmp_path,))
    _result(tmp_path, "serving", "2026-12-01T00:00:00", service={})
    with pytest.raises(inputs.MissingResult, match=r"service\.main"):
        inputs.serving((tmp_path,))


def test_service_and_batch_rates(tmp_path: Path) -> None:
    main = {"rate": 1000.0, "achieved_rate": 999.0, "service_cpu_us_per_request": 400.0}
    _result(tmp_path, "serving", "d", service={"main": main, "highest_rate_p99_under_5ms": 1500})
    # The fraud main run fell behind (180 of 1,000/s): the 500/s step that kept up counts.
    fraud_main = {"rate": 1000.0, "achieved_rate": 180.0, "service_cpu_us_per_request": 300.0}
    steps = [
        {"rate": 250.0, "achieved_rate": 250.0, "service_cpu_us_per_request": 3000.0},
        {"rate": 500.0, "achieved_rate": 499.0, "service_cpu_us_per_request": 2000.0},
    ]
    _result(tmp_path, "fraud", "d", main=fraud_main, steps=steps, highest_rate_p99_under_10ms=None)
    spark = {
        "bronze_rows_per_cpu_s": 40_000.0,
        "peak_rss_mib": 3000.0,
        "wall_s": 10.0,
        "cores_used": 1.8,
    }
    _result(tmp_path, "engines", "d", success=True, bronze_rows=1000, engines={"spark": spark})
    serving = inputs.serving((tmp_path,))
    assert serving.value == pytest.approx(2_500)
    assert "1,500 req/s" in serving.note
    fraud = inputs.fraud((tmp_path,))
    assert fraud.value == pytest.approx(500)  # 2,000 µs per request
    assert "none" in fraud.note
    _result(tmp_path, "fraud", "e", main=fraud_main, steps=steps[:0])
    with pytest.raises(inputs.MissingResult, match="kept its offered rate"):
        inputs.fraud((tmp_path,))
    rows, rss = inputs.batch("spark", (tmp_path,))
    assert (rows.value, rss) == (40_000.0, 3000.0)


def test_a_tie_prefers_the_recorded_copy(tmp_path: Path) -> None:
    summary = {"cpu_us_per_event": {"p50": 10.0}, "bytes_per_event": {"p50": 50.0}}
    for directory in (tmp_path / "results", tmp_path / "recorded"):
        _result(directory, "ingest", "2026-12-01T00:00:00", throughput={"summary": summary})
    measured, _ = inputs.ingest((tmp_path / "results", tmp_path / "recorded"))
    assert "recorded" in measured.source
