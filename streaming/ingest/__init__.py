"""Kafka to bronze Delta ingestion, exactly once."""
