"""orchestration: arrives with later steps."""
