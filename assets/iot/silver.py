"""IoT silver: sensor readings deduplicated (gateway redeliveries) and rule-checked."""

from assets.silver_factory import silver_asset
from lakehouse.catalog import SILVER_SENSOR_READINGS

silver_sensor_readings = silver_asset(SILVER_SENSOR_READINGS)
