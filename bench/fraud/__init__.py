"""The fraud decision service benchmark: latency under open-loop load, and decision quality."""
