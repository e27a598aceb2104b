"""`lakehouse stream session-features`: per-user session features in Redis, exactly once."""
