"""Benchmark of the MQTT-to-Kafka edge gateway: msgs/s per gateway process."""
