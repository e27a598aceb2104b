"""The IoT edge: device credentials and broker security, the device simulator over MQTT,
and the MQTT-to-Kafka gateway (docs/iot-edge.md)."""
