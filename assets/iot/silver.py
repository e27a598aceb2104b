"""IoT silver: sensor readings deduplicated (gateway redeliveries) and rule-checked."""

from assets.silver_factory import silver_asset

silver_sensor_readings = silver_asset("sensor_readings", owner="team:iot")
