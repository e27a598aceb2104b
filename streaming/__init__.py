"""The streaming side: synthetic traffic, the Kafka producer, the ingest sidecar, and (in
later steps) the gateway, the stream processors and the online services."""
