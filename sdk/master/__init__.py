"""corral.master."""
