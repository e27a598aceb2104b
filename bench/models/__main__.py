"""`python -m bench.models`: train the three models on generated days and report the time
and the held-out figures of each, against its baseline.

For each model: generate its domain's traffic for `--days` days straight into bronze (the
ingest decoder, no broker), build silver and the gold tables it learns from, day by day,
then train as the Dagster asset does (the same function), `--runs` times, and record
the wall time of the whole training (features, fit, evaluation) and of the fit alone
(median, min and max), with every metric (the same in every run: the fits are seeded).

- recommender: ALS on the e-commerce interactions; the target is a fit of <= 60 s on 1M
  interactions and precision@10 >= 2x the popularity baseline;
- retail: the same ALS, split and evaluation on real shoppers, UCI Online Retail's order
  lines (`REAL_DATA_DIR`), the last month held out, against popularity by distinct buyers;
- fraud: XGBoost against the rules; the target is a false-positive rate <= 0.1% at the
  BLOCK threshold on the test day, with recall and PR-AUC against the rules, judged on
  the labels as training is and again on the generator's truth (friendly fraud legit,
  unreported fraud fraud), with the test day's transactions per pattern;
- failure: XGBoost against a sensor-deviation threshold, per failure and per device-hour;
- failure_alerts: the failure model trained twice on the same lake, on the same split and
  thresholds chosen the same way, without and with the alert-history features
  (`ALERT_FEATURES`, from gold.iot_alert_history), to judge on the test hours whether the
  alerts help. On generated days the alerts are those the alert processor's detector
  (`streaming.alerts.detector`, default settings) raises over the generated readings;
  `--lake PATH` runs the comparison on an existing lake instead (its gold.sensor_hourly,
  silver.sensor_readings and gold.iot_alert_history, every day).

Results go to bench/results/models-<UTC time>.json; docs/benchmarks.md records them.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.envelope import envelope, summary, write
from lakehouse.catalog import (
    GOLD_IOT_ALERT_HISTORY,
    GOLD_SENSOR_HOURLY,
    IOT_ALERTS,
    SENSOR_READINGS,
)
from lakehouse.models.trained import TrainedModel
from lakehouse.settings import Settings
from lakehouse.transforms import alerts, fraud, iot
from lakehouse.transforms.silver import build_silver_partition
from streaming.generators import make_generator
from tests.support.landing import land_in_bronze

console = Console(width=None if sys.stdout.isatty() else 200)
app = typer.Typer(add_completion=False, help=__doc__)
START = date(2026, 1, 5)
MODELS = ("recommender", "retail", "fraud", "failure", "failure_alerts")
RETAIL_CUT = datetime(2011, 11, 9, tzinfo=UTC)


@app.command()
def main(
    only: Annotated[list[str] | None, typer.Option(help="Models to run (repeatable)")] = None,
    ecommerce_events: Annotated[
        int, typer.Option(help="E-commerce events per day (recommender)")
    ] = 400_000,
    ecommerce_days: Annotated[int, typer.Option(help="Days of e-commerce traffic")] = 10,
    holders: Annotated[int, typer.Option(help="Card holders (fraud)")] = 40_000,
    fraud_days: Annotated[int, typer.Option(help="Days of transactions")] = 10,
    fraud_rate: Annotated[
        float | None, typer.Option(help="Share of transactions labelled fraud (default: the "
                                        "generator's, 0.15%)")
    ] = None,
    machines: Annotated[int, typer.Option(help="Machines (failure)")] = 200,
    iot_days: Annotated[int, typer.Option(help="Days of telemetry")] = 14,
    failure_rate: Annotated[float, typer.Option(help="Share of machines that fail")] = 0.3,
    seed: Annotated[int, typer.Option(help="Generator seed")] = 7,
    runs: Annotated[int, typer.Option(help="Trainings per model (timing)")] = 3,
    lake: Annotated[
        str | None, typer.Option(help="failure_alerts: compare on this lake root (a folder "
                                      "or s3://) instead of generated days")
    ] = None,
) -> None:
    """Generate, build and train each model; print and save the figures."""
    chosen = only or list(MODELS)
    unknown = set(chosen) - set(MODELS)
    if unknown:
        raise typer.BadParameter(f"unknown models {sorted(unknown)}; choose from {MODELS}")
    config = {
        "models": chosen, "ecommerce_events": ecommerce_events, "ecommerce_days": ecommerce_days,
        "holders": holders, "fraud_days": fraud_days, "fraud_rate": fraud_rate,
        "machines": machines, "iot_days": iot_days, "failure_rate": failure_rate, "seed": seed,
        "runs": runs, "lake": lake,
    }
    trainers = {
        "recommender": lambda s: _recommender(s, ecommerce_events, ecommerce_days, seed, runs),
        "retail": lambda s: _retail(s, runs),
        "fraud": lambda s: _fraud(s, holders, fraud_days, fraud_rate, seed, runs),
        "failure": lambda s: _failure(s, machines, iot_days, failure_rate, seed, runs),
        "failure_alerts": lambda s: _failure_alerts(
            s if lake is None else Settings(lakehouse_root=lake),
            machines, iot_days, failure_rate, seed, generate=lake is None,
        ),
    }
    results = {}
    for name in chosen:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-models-{name}-"))
        try:
            settings = Settings(lakehouse_root=str(workdir / "lake"),
                                lakehouse_home=workdir / "home")
            results[name] = trainers[name](settings)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        _print(name, results[name])
    document = {
        **envelope("models", config),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "models": results,
    }
    console.print(f"results: {write(document)}")


def _recommender(settings: Settings, events: int, days: int, seed: int, runs: int
                 ) -> dict[str, Any]:
    from lakehouse.models import recommender

    generator = make_generator("ecommerce", seed=seed, start=_midnight(START),
                               span=timedelta(days=days))
    built = _build(settings, generator, events * days, days, (
        lambda day: [build_silver_partition(settings, topic, day)
                     for topic in ("clickstream", "cart_events", "purchases")]
    ))
    last = START + timedelta(days=days - 1)
    return {**built, **_timed(lambda: recommender.train_recommender(settings, last), runs)}


def _retail(settings: Settings, runs: int) -> dict[str, Any]:
    from lakehouse.models.real_data import online_retail
    from lakehouse.models.recommender import BASELINE, compare_on_holdout

    started = time.perf_counter()
    events = online_retail().events
    load_seconds = time.perf_counter() - started
    holdouts, seconds = [], []
    for _ in range(runs):
        started = time.perf_counter()
        holdouts.append(compare_on_holdout(events, RETAIL_CUT))
        seconds.append(time.perf_counter() - started)
    holdout = holdouts[0]
    als, popularity = holdout.als, holdout.popularity
    return {
        "events": {"online_retail": events.num_rows}, "days": 374, "land_seconds": load_seconds,
        "build_seconds": 0.0, "train_seconds": summary(seconds),
        "fit_seconds": summary(h.fit_seconds for h in holdouts), "baseline": BASELINE,
        "metrics": {
            "precision_at_10": als.precision, "recall_at_10": als.recall,
            "coverage": als.coverage, "popularity_precision_at_10": popularity.precision,
            "popularity_recall_at_10": popularity.recall,
            "popularity_coverage": popularity.coverage,
            "lift_over_popularity": als.precision / popularity.precision,
            "evaluated_users": float(als.users),
            "train_interactions": float(holdout.train_interactions),
            "heldout_interactions": float(holdout.heldout_interactions),
        },
    }


def _fraud(settings: Settings, holders: int, days: int, fraud_rate: float | None, seed: int,
           runs: int) -> dict[str, Any]:
    from lakehouse.models.fraud import train_fraud_model

    rate = {} if fraud_rate is None else {"fraud_rate": fraud_rate}
    generator = make_generator("fraud", seed=seed, start=_midnight(START),
                               span=timedelta(days=days), n_users=holders, **rate)

    def gold(day: date) -> None:
        build_silver_partition(settings, "transactions", day)
        fraud.build_fraud_user_daily_partition(settings, day)
        fraud.build_fraud_user_profiles_partition(settings, day)
        fraud.build_fraud_daily_stats_partition(settings, day)

    built = _build(settings, generator, holders * 5 * days, days, gold)
    last = START + timedelta(days=days - 1)
    return {**built, **_timed(lambda: train_fraud_model(settings, last, days), runs,
                              ("num_rounds", "threshold", "validation_days", "test_day"),
                              judge=lambda model: _fraud_truth(settings, model, last))}


def _fraud_truth(settings: Settings, trained: TrainedModel, last: date) -> dict[str, Any]:
    """The test day against what happened rather than the labels (friendly fraud is legit,
    unreported fraud is fraud), at the thresholds training chose; and the day's
    transactions and labelled frauds per pattern."""
    from lakehouse.features.fraud import rule_hits
    from lakehouse.models import evaluation
    from lakehouse.models.fraud import FraudModel, fraud_dataset
    from lakehouse.schemas import FRAUD_PATTERNS

    data = fraud_dataset(settings, last, last)
    model = FraudModel.from_bytes(trained.artifact)
    truth = np.array([p is not None and p != "friendly_fraud" for p in data.patterns])
    rules = rule_hits(data.features).sum(axis=1).astype(np.float64)
    budget = settings.fraud_block_fpr
    judged = {
        "model": evaluation.evaluate_binary(model.score(data.features), truth, model.threshold,
                                            budget),
        "rules": evaluation.evaluate_binary(rules, truth, trained.metrics["rules_threshold"],
                                            budget),
    }
    return {
        "truth": {f"truth_{who}_{name}": float(getattr(result, name))
                  for who, result in judged.items()
                  for name in ("positives", "pr_auc", "recall", "precision",
                               "false_positive_rate")},
        "test_day_patterns": {
            pattern: {"transactions": int((data.patterns == pattern).sum()),
                      "labelled_fraud": int(((data.patterns == pattern) & data.labels).sum())}
            for pattern in FRAUD_PATTERNS
        },
    }


def _failure(settings: Settings, machines: int, days: int, failure_rate: float,
             seed: int, runs: int) -> dict[str, Any]:
    from lakehouse.models.failure import train_failure_model

    generator = make_generator("iot", seed=seed, start=_midnight(START),
                               span=timedelta(days=days), n_machines=machines,
                               failure_rate=failure_rate)

    def gold(day: date) -> None:
        build_silver_partition(settings, "sensor_readings", day)
        iot.build_sensor_hourly_partition(settings, day)

    # About 26 readings per sensor and hour, the demo's rate.
    built = _build(settings, generator, machines * 4 * 26 * 24 * days, days, gold)
    last = START + timedelta(days=days - 1)
    return {**built, **_timed(lambda: train_failure_model(settings, START, last), runs)}


def _failure_alerts(settings: Settings, machines: int, days: int, failure_rate: float,
                    seed: int, *, generate: bool) -> dict[str, Any]:
    """The failure model without and with the alert-history features on one lake: the
    generated one (readings and the detector's alerts over them), or an existing one."""
    from lakehouse.delta import first_partition, partition_rows
    from lakehouse.features.iot import ALERT_FEATURES, FEATURES
    from lakehouse.models.failure import train_failure_model

    if generate:
        built = _iot_lake_with_alerts(settings, machines, days, failure_rate, seed)
        first, last = START, START + timedelta(days=days - 1)
    else:
        first = first_partition(GOLD_SENSOR_HOURLY, settings)
        if first is None or first_partition(GOLD_IOT_ALERT_HISTORY, settings) is None:
            raise typer.BadParameter(
                f"{settings.lakehouse_root} needs {GOLD_SENSOR_HOURLY.key} and "
                f"{GOLD_IOT_ALERT_HISTORY.key}: materialize the medallion job first"
            )
        last = max(partition_rows(GOLD_SENSOR_HOURLY, settings))
        built = {"events": {}, "days": (last - first).days + 1, "land_seconds": 0.0,
                 "build_seconds": 0.0}
    alert_rows = sum(partition_rows(GOLD_IOT_ALERT_HISTORY, settings).values())
    without = _timed(lambda: train_failure_model(settings, first, last), 1)
    started = time.perf_counter()
    with_alerts = train_failure_model(settings, first, last,
                                      features=FEATURES + ALERT_FEATURES)
    gains = dict(
        (row["feature"], row["gain"]) for row in with_alerts.tables["feature importance (gain)"]
    )
    return {**built, **without, "alerts": alert_rows,
            "with_alerts": {"train_seconds": time.perf_counter() - started,
                            "metrics": with_alerts.metrics,
                            "alert_feature_gain": {name: gains[name] for name in ALERT_FEATURES},
                            "gain_share_of_alert_features":
                                sum(gains[name] for name in ALERT_FEATURES)
                                / max(sum(gains.values()), 1e-12)}}


def _iot_lake_with_alerts(settings: Settings, machines: int, days: int, failure_rate: float,
                          seed: int) -> dict[str, Any]:
    """Generated telemetry landed and built as for `failure`, plus the alerts the alert
    processor's detector raises over the same readings (generated again: the generator is
    seeded; one detector over the whole stream in arrival order, as one processor would
    see it), landed in bronze and built to silver and gold.iot_alert_history."""
    import orjson

    from lakehouse.settings import get_settings
    from streaming.alerts.detector import DetectorConfig
    from tests.support.alert_truth import decode, detect
    from tests.support.landing import land_messages

    def generator() -> Any:
        return make_generator("iot", seed=seed, start=_midnight(START),
                              span=timedelta(days=days), n_machines=machines,
                              failure_rate=failure_rate)

    events = machines * 4 * 26 * 24 * days
    started = time.perf_counter()
    readings = decode(batch.values for batch in generator().batches(events)
                      if batch.topic == SENSOR_READINGS.name)
    records = detect(readings, DetectorConfig.from_settings(get_settings()))
    landed_alerts = land_messages(settings, IOT_ALERTS.name,
                                  [orjson.dumps(record) for record in records])
    alert_seconds = time.perf_counter() - started

    def gold(day: date) -> None:
        for topic in (SENSOR_READINGS, IOT_ALERTS):
            build_silver_partition(settings, topic.name, day)
        iot.build_sensor_hourly_partition(settings, day)
        alerts.build_alert_history_partition(settings, day)

    built = _build(settings, generator(), events, days, gold)
    return {**built, "events": {**built["events"], IOT_ALERTS.name: landed_alerts},
            "land_seconds": built["land_seconds"] + alert_seconds}


def _timed(train: Callable[[], TrainedModel], runs: int, params: tuple[str, ...] = (),
           judge: Callable[[TrainedModel], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train `runs` times: the spread of the training and fit times, the first run's
    metrics and chosen `params`, and whatever `judge` makes of the first model."""
    models, seconds = [], []
    for _ in range(runs):
        started = time.perf_counter()
        models.append(train())
        seconds.append(time.perf_counter() - started)
    first = models[0]
    return {"train_seconds": summary(seconds),
            "fit_seconds": summary(model.seconds for model in models),
            "metrics": first.metrics, "params": {key: first.params[key] for key in params},
            **(judge(first) if judge is not None else {})}


def _build(settings: Settings, generator: Any, events: int, days: int,
           build_day: Callable[[date], object]) -> dict[str, Any]:
    """Land `events` in bronze, then build each day's silver and gold; time both."""
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generate + land in bronze", total=events)
        landed = land_in_bronze(settings, generator, events,
                                on_batch=lambda n: progress.advance(task, n))
        land_seconds = time.perf_counter() - started
        task = progress.add_task("silver + gold, day by day", total=days)
        for offset in range(days):
            build_day(START + timedelta(days=offset))
            progress.advance(task)
    return {"events": landed, "days": days, "land_seconds": land_seconds,
            "build_seconds": time.perf_counter() - started - land_seconds}


def _print(name: str, result: dict[str, Any]) -> None:
    table = Table(title=f"{name}: {result['days']} days, {sum(result['events'].values()):,} "
                        f"events; training median {result['train_seconds']['p50']:.1f} s "
                        f"(fit {result['fit_seconds']['p50']:.2f} s, "
                        f"{result['fit_seconds']['min']:.2f}-{result['fit_seconds']['max']:.2f})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    compared = result.get("with_alerts", {}).get("metrics")
    if compared is not None:
        table.add_column("with alert features", justify="right")
    for metric, value in sorted({**result["metrics"], **result.get("truth", {})}.items()):
        extra = () if compared is None else (f"{compared[metric]:.4g}",)
        table.add_row(metric, f"{value:.4g}", *extra)
    console.print(table)
    if compared is not None:
        console.print(f"alerts in gold: {result['alerts']:,}; share of the gain on alert "
                      f"features: {result['with_alerts']['gain_share_of_alert_features']:.2%}")
    if "test_day_patterns" in result:
        console.print(result["test_day_patterns"])


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


if __name__ == "__main__":
    app()
