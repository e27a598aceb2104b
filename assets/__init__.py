"""assets: arrives with later steps."""
