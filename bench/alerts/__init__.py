"""The IoT alert benchmark: precision/recall against ground truth, spike-to-alert latency."""
