"""The hot path (placeholder until the core lands)."""
