"""corral.executors."""
