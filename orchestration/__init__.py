"""Dagster Definitions, resources, jobs, schedules and sensors."""
