"""Decisions on single events: the fraud rules engine and how rules and model combine."""
