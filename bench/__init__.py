"""Benchmarks of the platform against the targets in the design notes.

Each benchmark is one command (`python -m bench.<name>`) that starts what it needs on free
ports, measures several runs, checks the result is correct before trusting its speed, and
writes a JSON file to `bench/results/`. `docs/benchmarks.md` records the figures.
"""
