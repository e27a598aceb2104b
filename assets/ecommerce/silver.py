"""E-commerce silver: clickstream, cart events, searches and purchases, one row per event."""

from assets.silver_factory import silver_asset
from lakehouse.catalog import (
    SILVER_CART_EVENTS,
    SILVER_CLICKSTREAM,
    SILVER_PURCHASES,
    SILVER_SEARCH,
)

silver_clickstream = silver_asset(SILVER_CLICKSTREAM)
silver_cart_events = silver_asset(SILVER_CART_EVENTS)
silver_search = silver_asset(SILVER_SEARCH)
silver_purchases = silver_asset(SILVER_PURCHASES)
