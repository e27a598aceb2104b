"""Test-only helpers: real services on free ports, traffic, and table readers."""
