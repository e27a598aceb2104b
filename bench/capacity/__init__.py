"""Capacity plan from the benchmarks' results (`python -m bench.capacity`)."""
