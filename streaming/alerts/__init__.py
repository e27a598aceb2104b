"""`lakehouse stream iot-alerts`: near-real-time anomaly alerts over sensor readings."""
