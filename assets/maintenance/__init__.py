"""Table maintenance as assets: nightly compaction per layer, weekly vacuum and retention,
S3 lifecycle tiering and the storage cost report. Each changes files, never rows, so
nothing downstream of a table is marked stale by it."""
