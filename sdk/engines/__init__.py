"""corral.engines."""
