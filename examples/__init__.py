"""Example frameworks built on corral's public SDK (installed as `corral.examples`)."""
