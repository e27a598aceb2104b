"""IoT telemetry assets: silver readings, gold hourly aggregates and daily device health."""
