"""IoT telemetry assets: silver readings and gold hourly aggregates."""
