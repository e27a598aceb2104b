"""The online side of the lake: what the session processor and the services read and
write outside Delta (Redis key layout, the published batch recommendation stores)."""
