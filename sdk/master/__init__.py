"""corral.master: the master daemon (`daemon`), its SQLite registry (`registry`) and, with
several masters, its candidacy in the ZooKeeper election (`election`) and the registry
in ZooKeeper (`zk_registry`); the master's logic is the master engine,
`corral.engines.master`."""
