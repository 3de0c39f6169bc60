"""A Cassandra-like replicated store and the corral framework that deploys and heals it."""
