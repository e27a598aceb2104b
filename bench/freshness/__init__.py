"""Freshness of the session features: event produced to feature visible in Redis."""
