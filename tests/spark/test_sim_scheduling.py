"""The driver's scheduling logic (offers, executor loss, blacklisting, locality,
speculation) in corral's simulator: the real driver core, master and agent engines, a
fake clock."""
from __future__ import annotations

import collections
import operator

import corral
from corral.examples.spark import serde
from corral.examples.spark.core import EngineConfig
from corral.examples.spark.pool import PoolConfig
from corral.testing import SimCluster, agent_address

from sim_harness import SimSpark, SimSparkExecutor

RECORDS = [(i % 37, i) for i in range(2000)]
EXPECTED: dict[int, int] = {}
for _k, _v in RECORDS:
    EXPECTED[_k] = EXPECTED.get(_k, 0) + _v


def started(agents: int, executors: int, resources: str = "cpus:2;mem:2048", **kwargs) -> tuple[SimCluster, SimSpark]:
    cluster = SimCluster(agents=agents, agent_resources=resources, seed=1)
    cluster.run_for(1)  # the agents register first, as on a running cluster
    spark = SimSpark(cluster, executors, **kwargs).start()
    assert cluster.run_until(lambda: len(spark.core.executors) == executors, 60)
    return cluster, spark


def agent_ids(spark: SimSpark) -> list[str]:
    return [agent for _, _, agent in spark.record.launches]


def test_executors_spread_over_agents_then_offers_are_suppressed() -> None:
    cluster, spark = started(3, 3)
    assert sorted(collections.Counter(agent_ids(spark)).values()) == [1, 1, 1]
    assert len(spark.record.suppressed) == 1
    cluster.run_for(600)
    assert len(spark.record.launches) == 3
    assert all(seconds == 120.0 for _, _, seconds in spark.record.declines)

    cluster, spark = started(2, 4, "cpus:4;mem:4096")
    assert sorted(collections.Counter(agent_ids(spark)).values()) == [2, 2]


def shuffle_rdd(spark: SimSpark):
    return spark.parallelize(RECORDS, 8).reduce_by_key(operator.add, 4)


def run_until_reduce_stage(cluster: SimCluster, spark: SimSpark, rdd):
    job = spark.submit(rdd, lambda split, records: list(records))
    assert cluster.run_until(lambda: job.final_stage.taskset is not None and job.final_stage.taskset.running, 600)
    return job


def results_of(cluster: SimCluster, job) -> dict[int, int]:
    assert cluster.run_until(lambda: job.ended, 3600)
    assert job.error is None, job.error
    return dict(r for part in job.results for r in serde.loads(part))


def test_a_crashed_executor_is_replaced_and_only_its_map_outputs_recomputed() -> None:
    cluster, spark = started(2, 2)
    job = run_until_reduce_stage(cluster, spark, shuffle_rdd(spark))
    victim = max(spark.core.executor_views(), key=lambda e: e.map_outputs)
    assert 0 < victim.map_outputs < 8
    spark.crash(victim.id)
    assert results_of(cluster, job) == EXPECTED
    assert job.counters.recomputed == victim.map_outputs
    # revived when the link closed and again when corral's status freed its resources
    assert len(spark.record.revived) == 2 and len(spark.record.launches) == 3
    assert cluster.run_until(lambda: len(spark.core.executors) == 2, 60)
    assert victim.id not in spark.core.executors


def test_a_replacement_is_launched_as_soon_as_the_master_frees_the_lost_executors_resources() -> None:
    # the driver learns of the loss from its link first and revives then, while the master
    # still counts the executor's resources as used; it revives again on corral's status,
    # which comes once they are free, instead of waiting for the next allocation cycle
    cluster, spark = started(2, 2, "cpus:1;mem:1024")
    victim = spark.core.executor_views()[0]
    crashed_at = cluster.clock.now
    spark.crash(victim.id)
    assert cluster.run_until(lambda: len(spark.record.launches) == 3, 60)
    launched_at, _, agent = spark.record.launches[-1]
    assert agent == victim.agent_id
    assert launched_at - crashed_at < 0.1 * cluster.master.config.allocation_interval


def test_a_crashed_agent_takes_its_executors_and_the_job_still_ends_exactly() -> None:
    cluster, spark = started(3, 2, "cpus:1;mem:1024")
    job = run_until_reduce_stage(cluster, spark, shuffle_rdd(spark))
    victim = max(spark.core.executor_views(), key=lambda e: e.map_outputs)
    address = next(a.transport for a in cluster.agents if a.agent_id == victim.agent_id)
    cluster.crash_agent(address)
    assert results_of(cluster, job) == EXPECTED
    assert job.counters.recomputed == victim.map_outputs
    # the replacement went to the agent that had none
    assert cluster.run_until(lambda: len(spark.core.executors) == 2, 60)
    assert len(set(agent_ids(spark))) == 3


class FailingOnAgent1(SimSparkExecutor):
    """Ends at once (before registering) on agent 1 while `broken` holds."""

    broken = True

    def launch_task(self, driver, task):
        if driver.agent_address == agent_address(1) and FailingOnAgent1.broken:
            driver.send_status_update(corral.task_status(task.task_id, corral.TASK_FAILED, "no python here"))
            driver.stop()
            return
        super().launch_task(driver, task)


def test_an_agent_whose_executors_keep_failing_is_avoided_for_a_while_then_tried_again() -> None:
    cluster = SimCluster(agents=2, agent_resources="cpus:2;mem:4096", seed=2)
    cluster.run_for(1)
    spark = SimSpark(cluster, 3, pool=PoolConfig(3, corral.Resources.parse("cpus:1;mem:512"), blacklist_seconds=60))
    FailingOnAgent1.broken = True
    spark.start()
    cluster.executor_factory = lambda launch: FailingOnAgent1(spark)
    agent1, agent2 = cluster.agents[0].agent_id, cluster.agents[1].agent_id
    assert cluster.run_until(lambda: spark.core.pool.banned(agent1, cluster.clock.now) > 0, 60)
    banned_at = cluster.clock.now
    FailingOnAgent1.broken = False  # agent 1 is repaired, but the pool does not know it yet
    assert cluster.run_until(lambda: len(spark.core.executors) == 3, 120)
    on_agent1 = [when for when, _, agent in spark.record.launches if agent == agent1]
    assert len(on_agent1) == 3  # two failed, then nothing until the ban ended
    assert on_agent1[1] <= banned_at < banned_at + 60 <= on_agent1[2] < banned_at + 65  # (next allocation)
    assert any(agent == agent1 and 59 < seconds <= 60 for _, agent, seconds in spark.record.declines)
    assert sorted(e.agent_id for e in spark.core.executor_views()) == sorted([agent1, agent2, agent2])


def test_executors_that_never_start_make_the_pool_give_up_with_the_reason() -> None:
    cluster = SimCluster(agents=1, agent_resources="cpus:4;mem:4096", seed=3)
    cluster.run_for(1)
    spark = SimSpark(cluster, 1, pool=PoolConfig(1, corral.Resources.parse("cpus:1;mem:512"), blacklist_seconds=1))
    spark.start()
    FailingOnAgent1.broken = True
    cluster.executor_factory = lambda launch: FailingOnAgent1(spark)
    assert cluster.run_until(lambda: spark.core.pool.gave_up is not None, 600)
    assert "no python here" in spark.core.pool.gave_up
    job = spark.submit(shuffle_rdd(spark), lambda split, records: None)
    assert job.ended and "no python here" in job.error.message


def test_cached_partitions_are_computed_again_where_they_are_cached() -> None:
    cluster, spark = started(2, 2)
    rdd = spark.parallelize(range(400), 8).map(lambda x: x + 1).cache()
    assert sum(spark.run_job(rdd, lambda split, records: sum(records))) == sum(range(1, 401))
    first = {split: executor for _, _, executor, _, split in spark.record.tasks}
    spark.record.tasks.clear()
    assert sum(spark.run_job(rdd, lambda split, records: sum(records))) == sum(range(1, 401))
    assert {split: executor for _, _, executor, _, split in spark.record.tasks} == first


def test_speculation_copies_stragglers_to_another_executor() -> None:
    def duration(slow: str):
        return lambda executor, task: 30.0 if executor == slow else 1.0

    def job_time(speculation: bool) -> tuple[float, int]:
        cluster = SimCluster(agents=2, agent_resources="cpus:2;mem:2048", seed=4)
        cluster.run_for(1)
        spark = SimSpark(cluster, 2, config=EngineConfig(speculation=speculation))
        spark.task_seconds = duration("exec-2")
        spark.start()
        assert cluster.run_until(lambda: len(spark.core.executors) == 2, 60)
        start = cluster.clock.now
        assert sorted(spark.run_job(spark.parallelize(range(16), 16), lambda s, r: sum(r))) == list(range(16))
        copies = len(spark.record.tasks) - 16
        return cluster.clock.now - start, copies

    slow, no_copies = job_time(False)
    fast, copies = job_time(True)
    assert no_copies == 0 and copies >= 1
    assert fast < slow / 2


def test_a_fetch_failure_reruns_only_the_missing_map_partitions() -> None:
    cluster, spark = started(2, 2)
    rdd = shuffle_rdd(spark)
    assert dict(r for part in spark.run_job(rdd, lambda s, r: list(r)) for r in part) == EXPECTED
    victim = max(spark.core.executor_views(), key=lambda e: e.map_outputs)
    spark.links[victim.id].runtime.shuffles.drop(1)  # its shuffle files are gone, the executor lives
    job = spark.submit(rdd, lambda s, r: list(r))
    assert results_of(cluster, job) == EXPECTED
    assert job.counters.recomputed == victim.map_outputs and job.counters.retries >= 1
