"""Dagster wiring: the code location, jobs, schedules, sensors and instances."""
