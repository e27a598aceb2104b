"""The batch fallback store at scale: publish, open and look up (`python -m bench.batch_store`)."""
