"""Helpers the tests and the benchmarks share: free ports for private service instances,
traffic and table readers, generated or real data landed straight into bronze. Neither
tests nor benchmarks ship (the wheel holds only the packages pyproject.toml lists), so
their helpers live here rather than in the platform's packages."""
