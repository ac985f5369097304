"""A Kafka -> windowed count -> Kafka (+ JSON-lines file) job, run as a subprocess by the crash tests.

python -m tests.connectors.kafka_jobs BOOTSTRAP SOURCE_TOPIC OUT_TOPIC OUT_FILE CHECKPOINT_DIR GROUP SLOW
"""

from __future__ import annotations

import os
import sys
import time

from connectors.files import JsonLinesSink
from connectors.kafka import KafkaSink, KafkaSource
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg


def build(bootstrap: str, source_topic: str, out_topic: str, out_file: str, group: str, slow: float = 0.0) -> Dataflow:
    flow = Dataflow("kafka-crash-job")
    events = flow.source(
        KafkaSource(source_topic, bootstrap, group_id=group, bounded=True, batch_size=50),
        timestamp="ts",
        watermark=BoundedOutOfOrderness(500),
    )
    if slow:
        def pace(record, delay=slow):
            time.sleep(delay)
            return True

        events = events.filter(pace)
    counts = events.key_by("user").window(Tumbling(1_000)).aggregate(count=agg.count(), total=agg.sum("amount"))
    counts.sink(KafkaSink(out_topic, bootstrap, key="key"))
    counts.sink(JsonLinesSink(out_file))
    return flow


if __name__ == "__main__":
    bootstrap, source_topic, out_topic, out_file, checkpoint_dir, group, slow = sys.argv[1:8]
    build(bootstrap, source_topic, out_topic, out_file, group, float(slow)).run(
        checkpoint_dir=checkpoint_dir, checkpoint_interval=0.05
    )
    os._exit(0)
