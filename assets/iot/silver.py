"""IoT silver: sensor readings deduplicated (gateway redeliveries) and rule-checked, the
alert processor's alert records, one row per alert and transition, and the imported
turbofan engines' cycles, one row per engine and cycle."""

from assets.silver_factory import silver_asset
from lakehouse.catalog import SILVER_ENGINE_CYCLES, SILVER_IOT_ALERTS, SILVER_SENSOR_READINGS

silver_sensor_readings = silver_asset(SILVER_SENSOR_READINGS)
silver_iot_alerts = silver_asset(SILVER_IOT_ALERTS)
silver_engine_cycles = silver_asset(SILVER_ENGINE_CYCLES)
