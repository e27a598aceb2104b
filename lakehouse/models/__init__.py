"""Models: the registry in the lake (later: shared features, training, scoring)."""
