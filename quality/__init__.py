"""quality: arrives with later steps."""
