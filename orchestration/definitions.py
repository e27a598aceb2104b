"""The Dagster code location: assembles assets and resources, holds no logic."""

from __future__ import annotations

import dagster as dg

from assets.bronze import bronze_tables
from assets.iot.gold import gold_sensor_hourly
from assets.iot.silver import silver_sensor_readings
from orchestration.resources import LakehouseResource

defs = dg.Definitions(
    assets=[bronze_tables, silver_sensor_readings, gold_sensor_hourly],
    resources={"lakehouse": LakehouseResource()},
)
