"""corral.net: what crosses the network below the engines."""
