"""IoT silver: sensor readings deduplicated (gateway redeliveries) and rule-checked, and the
alert processor's alert records, one row per alert and transition."""

from assets.silver_factory import silver_asset
from lakehouse.catalog import SILVER_IOT_ALERTS, SILVER_SENSOR_READINGS

silver_sensor_readings = silver_asset(SILVER_SENSOR_READINGS)
silver_iot_alerts = silver_asset(SILVER_IOT_ALERTS)
