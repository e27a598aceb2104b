"""Kafka-to-bronze ingest benchmark: throughput, freshness and cost per event.

Run `python -m bench.ingest --help`. The modules: `procstat` reads CPU time from /proc,
`traffic` shapes the generator's output (clickstream only, poison mixed in), `child` is
the instrumented ingest process, `throughput`, `latency` and `profile` are the three
experiments, and `report` turns their results into a table and a JSON file.
"""
