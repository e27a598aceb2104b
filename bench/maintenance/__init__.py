"""Compaction and file skipping on one IoT day of silver `sensor_readings`."""
