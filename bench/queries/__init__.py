"""DuckDB ad-hoc query benchmark: the documented IoT questions over a year of gold
`sensor_hourly` (1,000 sensors, 8.76M rows), cold and warm. Run `python -m bench.queries`."""
