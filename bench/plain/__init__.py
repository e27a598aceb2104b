"""A plain Polars pipeline to measure the platform against (`pipeline.run_plain`)."""
