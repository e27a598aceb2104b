"""E-commerce silver: clickstream, cart events, searches and purchases, one row per event."""

from assets.silver_factory import silver_asset

silver_clickstream = silver_asset("clickstream", owner="team:personalization")
silver_cart_events = silver_asset("cart_events", owner="team:personalization")
silver_search = silver_asset("search", owner="team:personalization")
silver_purchases = silver_asset("purchases", owner="team:personalization")
