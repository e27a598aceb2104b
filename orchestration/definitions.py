"""The Dagster code location: assembles assets and resources, holds no logic."""

import dagster as dg

from assets.bronze import bronze_tables
from assets.ecommerce import silver as ecommerce_silver
from assets.fraud import silver as fraud_silver
from assets.iot import gold as iot_gold
from assets.iot import silver as iot_silver
from orchestration.resources import LakehouseResource

defs = dg.Definitions(
    assets=[
        bronze_tables,
        *dg.load_assets_from_modules([ecommerce_silver, fraud_silver, iot_silver, iot_gold]),
    ],
    resources={"lakehouse": LakehouseResource()},
)
