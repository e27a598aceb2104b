"""The alerts the platform raised on NAB's replayed machine temperature, as NAB detections.

`lakehouse import nab` publishes the series as one device's readings (`REPLAY_DEVICE`),
each with its original timestamp, read as UTC, as its `event_time`. The alert processor
judges in event time, so an alert's `opened_at` is the `event_time` of the reading that
opened it: the series' own (naive) time once the UTC offset is dropped, whatever
`--speedup` paced the replay. These functions take the processor's `iot_alerts` records
for that device (from bronze, where the ingest lands the topic) and give each alert's
opening time, one per alert, which `nab.score` judges against the labelled windows.
docs/models.md shows the commands and the figures.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import BRONZE_IOT_ALERTS
from lakehouse.delta import open_table
from lakehouse.settings import Settings

REPLAY_DEVICE = "nab-machine-01"
"""The device NAB's machine temperature is replayed as (docs/events.md)."""

_COLUMNS = ("alert_id", "state", "device_id", "rule", "opened_at")


def alert_openings(
    alerts: pa.Table, device_id: str = REPLAY_DEVICE, rules: tuple[str, ...] | None = None
) -> np.ndarray:
    """The opening times of the alerts on `device_id` (of `rules`, default all), once per
    alert, sorted, as naive datetime64[ns] in the series' time: what `nab.score` takes.

    Records are deduplicated by `alert_id` because the topic and bronze may hold an alert's
    `open` record more than once (a processor restart sends its outbox again)."""
    table = alerts.select(list(_COLUMNS))
    keep = pc.and_(
        pc.equal(table.column("device_id"), device_id), pc.equal(table.column("state"), "open")
    )
    if rules is not None:
        keep = pc.and_(keep, pc.is_in(table.column("rule"), pa.array(rules, pa.string())))
    opened = table.filter(pc.fill_null(keep, False))
    first = opened.group_by("alert_id").aggregate([("opened_at", "min")])
    moments = first.column("opened_at_min").cast(pa.timestamp("us", "UTC")).cast(pa.int64())
    return np.sort(moments.to_numpy().astype("datetime64[us]").astype("datetime64[ns]"))


def replay_alerts(
    settings: Settings, device_id: str = REPLAY_DEVICE, rules: tuple[str, ...] | None = None
) -> np.ndarray:
    """The opening times of the replayed device's alerts in bronze.iot_alerts, the record
    the ingest lands from the `iot_alerts` topic (none if the table does not exist yet)."""
    table = open_table(BRONZE_IOT_ALERTS, settings)
    if table is None:
        return np.array([], dtype="datetime64[ns]")
    return alert_openings(table.to_pyarrow_table(columns=list(_COLUMNS)), device_id, rules)
