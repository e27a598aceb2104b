"""Table maintenance: compaction, vacuum and checkpoints, retention, S3 lifecycle tiering, storage costs."""
