"""corral.master: the master daemon (`daemon`) and its SQLite registry (`registry`); the
master's logic is the master engine, `corral.engines.master`."""
