"""Payment fraud detection assets."""
