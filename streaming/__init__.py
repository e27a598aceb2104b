"""Streaming side of the platform: synthetic traffic, Kafka producer, sidecars and services."""
