"""The bronze sensor: when the ingest sidecar commits to a bronze table, rebuild the event
days those commits touched, for the silver and gold assets downstream of that table, and
record the table's new state as an observation of its bronze asset.

The cursor holds each bronze table's last seen Delta version. The touched days are the
partition values of the files added since that version whose row count changed
(`partitions_added_since`): exact whichever writer committed and whatever the clocks
said, no data is read, and a compaction, which only rewrites a day's files, requests
nothing.

The sensor's very first tick only takes the baseline: what bronze held before the sensor
was switched on is history, for a backfill or the weekly reprocessing to cover, not a
flood of runs the moment someone opens the UI. A bronze table created later is new in
full, so everything it holds counts.
"""

import json
from collections import defaultdict
from datetime import date

import dagster as dg

from assets.bronze import bronze_observation
from assets.partitions import DAILY
from assets.resources import LakehouseResource
from assets.tables import asset_key
from lakehouse.catalog import CATALOG
from lakehouse.delta import open_table, partitions_added_since
from lakehouse.settings import Settings
from orchestration.jobs import MEDALLION, medallion_job


@dg.sensor(
    job=medallion_job,
    minimum_interval_seconds=120,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuild silver and gold for the event days new bronze commits touched.",
)
def bronze_advanced(
    context: dg.SensorEvaluationContext, lakehouse: LakehouseResource
) -> dg.SensorResult:
    """One run per touched day, over the assets downstream of the bronze tables that moved."""
    settings = lakehouse.settings()
    if context.cursor is None:
        baseline = _versions(settings)
        context.log.info(f"first tick: baseline {baseline}; earlier data is left to backfills")
        return dg.SensorResult(run_requests=[], cursor=json.dumps(baseline, sort_keys=True))
    seen: dict[str, int] = json.loads(context.cursor)
    touched: dict[date, set[dg.AssetKey]] = defaultdict(set)
    observations: list[dg.AssetObservation] = []
    for spec in CATALOG.landed_tables():
        table = open_table(spec, settings)
        if table is None or seen.get(spec.key) == table.version():
            continue
        for day in partitions_added_since(spec, settings, seen.get(spec.key)):
            touched[day].add(asset_key(spec))
        seen[spec.key] = table.version()
        observations.append(bronze_observation(spec, settings))

    graph = context.repository_def.asset_graph
    medallion = MEDALLION.resolve(graph)
    versions = ",".join(f"{key}@{version}" for key, version in sorted(seen.items()))
    requests = [
        dg.RunRequest(
            run_key=f"{day.isoformat()}:{versions}",
            partition_key=day.isoformat(),
            asset_selection=sorted(
                dg.AssetSelection.assets(*sources).downstream().resolve(graph) & medallion,
                key=lambda key: key.to_user_string(),
            ),
        )
        for day, sources in sorted(touched.items())
        if _in_partitions(day, context)
    ]
    return dg.SensorResult(
        run_requests=requests,
        asset_events=observations,
        cursor=json.dumps(seen, sort_keys=True),
    )


def _versions(settings: Settings) -> dict[str, int]:
    """The current Delta version of every existing bronze event table."""
    versions = {}
    for spec in CATALOG.landed_tables():
        table = open_table(spec, settings)
        if table is not None:
            versions[spec.key] = table.version()
    return versions


def _in_partitions(day: date, context: dg.SensorEvaluationContext) -> bool:
    """Days before the partitions' start or after today cannot be run; log and skip them."""
    if DAILY.has_partition_key(day.isoformat()):
        return True
    context.log.warning(f"bronze holds event day {day} outside the daily partitions; skipped")
    return False
