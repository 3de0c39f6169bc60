"""Example frameworks written against corral's public SDK, installed as `corral.examples`."""
