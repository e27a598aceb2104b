"""E-commerce personalization assets."""
