"""A Spark-like batch engine on corral: RDDs, stages cut at shuffles, executors as
corral tasks, lineage recovery (see `Context`).

    from corral.examples.spark import Context
    with Context("127.0.0.1:5050", executors=2) as ctx:
        print(ctx.parallelize(range(100)).map(lambda x: x * x).sum())
"""
from corral.examples.spark.context import Context, ExecutorsUnavailable, JobFailed, RemoteTraceback
from corral.examples.spark.core import EngineConfig
from corral.examples.spark.partitioner import HashPartitioner, RangePartitioner
from corral.examples.spark.progress import JobSummary
from corral.examples.spark.rdd import RDD, DriverOnlyError
from corral.examples.spark.serde import SerialisationError
from corral.examples.spark.shared import Accumulator, Broadcast

__all__ = [
    "Accumulator", "Broadcast", "Context", "DriverOnlyError", "EngineConfig", "ExecutorsUnavailable", "HashPartitioner",
    "JobFailed", "JobSummary", "RDD", "RangePartitioner", "RemoteTraceback", "SerialisationError",
]
