"""One worker of a scaled-out Kafka -> windowed aggregation -> Kafka job (run as a subprocess).

python -m tests.connectors.kafka_scaleout_job BOOTSTRAP SOURCE_TOPIC OUT_TOPIC CHECKPOINT_DIR GROUP WORKER_ID SLOW
"""

from __future__ import annotations

import logging
import os
import sys
import time

from connectors.kafka import KafkaSink, KafkaSource
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg

GROUP_TIMEOUTS = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 500, "rebalance_timeout_ms": 6_000}


def build(source, sink=None, slow: float = 0.0) -> tuple[Dataflow, object]:
    flow = Dataflow("kafka-scale-out")
    events = flow.source(source, timestamp="ts", watermark=BoundedOutOfOrderness(2_000))
    if slow:
        def pace(record, delay=slow):
            time.sleep(delay)
            return True

        events = events.filter(pace)
    # The input is co-partitioned: every message of a user is on the same partition.
    counts = events.key_by("user").window(Tumbling(1_000)).aggregate(count=agg.count(), total=agg.sum("amount"))
    if sink is not None:
        counts.sink(sink)
    return flow, counts


if __name__ == "__main__":
    bootstrap, source_topic, out_topic, checkpoint_dir, group, worker_id, slow = sys.argv[1:8]
    # The test keeps these logs for its failure message: the protocol steps (assignments, restores,
    # checkpoints, commits) at DEBUG, and each output message says which worker wrote it.
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {worker_id} %(name)s %(levelname)s %(message)s")
    for name in ("engine.state.coordinator", "engine.runtime.executor", "connectors.kafka"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    source = KafkaSource(source_topic, bootstrap, group_id=group, batch_size=50, consumer_options=GROUP_TIMEOUTS)
    sink = KafkaSink(out_topic, bootstrap, key="key", headers=lambda record: [("worker", worker_id.encode())])
    flow, _ = build(source, sink, float(slow))
    flow.run(checkpoint_dir=checkpoint_dir, checkpoint_interval=0.05, worker_id=worker_id)
    os._exit(0)
