"""The capacity plan's arithmetic: measured rates per core, the seed's volumes, instance
prices, to cores, memory and dollars a month. Pure functions over plain numbers, so the
tests check them on hand-computed inputs; `__main__` feeds them the benchmarks' JSON.

Conventions:

- A "core" is a vCPU, as on the benchmark machine (2 vCPU); every rate is per fully busy
  vCPU: events, rows or requests per CPU second of the process that does the work (its
  measured CPU per unit of work), the rate one fully busy core would sustain.
- Always-on services are sized for the peak rate divided by the rate per core, divided by
  `TARGET_UTILISATION` (headroom for bursts, rebalances and a lost node), rounded up to
  whole instances, with at least `MIN_INSTANCES` for availability.
- Batch is sized for its window: the day's rows divided by the rows per CPU second are the
  core-seconds of work; the cluster is as many cores as finish it in `window_hours`
  (rounded up to whole instances) and is paid only while it runs.
- A month is 730 hours (AWS's own convention) and 30.4 days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = 30.4
TARGET_UTILISATION = 0.6  # plan to run always-on services at 60% of their measured capacity
MIN_INSTANCES = 2  # two of everything always on: one node lost keeps serving


@dataclass(frozen=True)
class Instance:
    """An EC2 instance type and its assumed on-demand price (us-east-1, Linux)."""

    name: str
    vcpus: int
    memory_gib: float
    usd_per_hour: float
    emr_usd_per_hour: float = 0.0  # the EMR fee on top, for instances of an EMR cluster

    @property
    def gib_per_vcpu(self) -> float:
        return self.memory_gib / self.vcpus


# ASSUMED prices: AWS's public on-demand list prices for us-east-1 (Linux, shared tenancy)
# as published in 2024-2025, and the EMR fee per instance-hour on top (about 25%). Not
# fetched, not negotiated: check https://aws.amazon.com/ec2/pricing/on-demand/ and
# https://aws.amazon.com/emr/pricing/ before using a figure, and scale for Savings Plans
# (about -30%) or Spot (about -60 to -80% for batch).
INSTANCES = {
    "m6i.xlarge": Instance("m6i.xlarge", 4, 16.0, 0.192, 0.048),
    "m6i.2xlarge": Instance("m6i.2xlarge", 8, 32.0, 0.384, 0.096),
    "c6i.xlarge": Instance("c6i.xlarge", 4, 8.0, 0.170, 0.042),
    "r6i.xlarge": Instance("r6i.xlarge", 4, 32.0, 0.252, 0.063),
    "r6i.2xlarge": Instance("r6i.2xlarge", 8, 64.0, 0.504, 0.126),
}


@dataclass(frozen=True)
class Plan:
    """One workload's plan: what it needs and what it costs a month."""

    workload: str
    demand: str  # the seed's volume, in words
    rate_per_core: float
    rate_unit: str
    work_cores: float  # cores of pure work at the planned rate, before headroom
    instance: Instance
    instances: int
    hours_per_month: float
    emr: bool = False

    @property
    def cores(self) -> int:
        return self.instances * self.instance.vcpus

    @property
    def memory_gib(self) -> float:
        return self.instances * self.instance.memory_gib

    @property
    def usd_per_month(self) -> float:
        hourly = self.instance.usd_per_hour + (self.instance.emr_usd_per_hour if self.emr else 0)
        return self.instances * hourly * self.hours_per_month


def instances_for(cores: float, instance: Instance, minimum: int = 1) -> int:
    """Whole instances holding `cores` vCPUs, at least `minimum`."""
    return max(minimum, math.ceil(cores / instance.vcpus - 1e-9))


def always_on(
    workload: str,
    demand: str,
    peak_per_s: float,
    rate_per_core: float,
    rate_unit: str,
    instance: Instance,
    *,
    utilisation: float = TARGET_UTILISATION,
    minimum: int = MIN_INSTANCES,
) -> Plan:
    """A service sized for `peak_per_s` at `utilisation` of the measured rate per core."""
    if rate_per_core <= 0:
        raise ValueError(f"{workload}: the measured rate per core must be positive")
    work = peak_per_s / rate_per_core
    count = instances_for(work / utilisation, instance, minimum)
    return Plan(workload, demand, rate_per_core, rate_unit, work, instance, count, HOURS_PER_MONTH)


def batch(
    workload: str,
    demand: str,
    rows_per_day: float,
    rows_per_core_s: float,
    instance: Instance,
    *,
    window_hours: float,
    runs_per_day: int = 1,
    emr: bool = True,
) -> Plan:
    """A daily batch: the cluster that does the day's rows in `window_hours`, paid for that
    window (per run, `runs_per_day` times a day) every day of the month."""
    if rows_per_core_s <= 0 or window_hours <= 0:
        raise ValueError(f"{workload}: rate and window must be positive")
    core_seconds = rows_per_day / rows_per_core_s
    cores = core_seconds / (window_hours * 3600)
    count = instances_for(cores, instance)
    hours = window_hours * runs_per_day * DAYS_PER_MONTH
    return Plan(
        workload, demand, rows_per_core_s, "rows/s per core", cores, instance, count, hours, emr=emr
    )


def per_core(rate: float, cores_used: float) -> float:
    """A measured rate on `cores_used` busy cores, per core."""
    if cores_used <= 0:
        raise ValueError("cores used must be positive")
    return rate / cores_used


def events_per_core_s(cpu_us_per_event: float) -> float:
    """Events one fully busy core handles per second, from CPU microseconds per event."""
    if cpu_us_per_event <= 0:
        raise ValueError("CPU per event must be positive")
    return 1e6 / cpu_us_per_event


def storage_tb_per_day(events_per_day: float, bytes_per_event: float) -> float:
    """Terabytes (10^12 bytes) a day of Parquet at the measured bytes per event."""
    return events_per_day * bytes_per_event / 1e12


def total(plans: list[Plan]) -> float:
    return sum(plan.usd_per_month for plan in plans)
