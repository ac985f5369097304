"""Clicks per user per minute from a Kafka topic to a Kafka topic.

The brokers come from ``engine run --kafka-bootstrap-servers`` (the connectors are built without
``bootstrap_servers=``). Reads JSON click events ({"user": ..., "page": ...}) from the topic ``clicks`` with the Kafka record
timestamp as event time, counts them per user in 1-minute tumbling windows, and writes one JSON result
per window to ``clicks-per-minute`` (keyed by user). Run several copies with the same group id to share
the partitions; with ``--checkpoint-dir`` a restarted job resumes where its last checkpoint left off.

    engine run examples/kafka_clicks_per_minute.py --kafka-bootstrap-servers localhost:9092 \
        --checkpoint-dir state/ --checkpoint-interval 5

Set ``ENGINE_KAFKA_BOUNDED=1`` to stop at the end of what the topic holds now (a backfill).
"""

from __future__ import annotations

import os

from connectors.kafka import KafkaDeadLetterSink, KafkaSink, KafkaSource
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg

BOUNDED = os.environ.get("ENGINE_KAFKA_BOUNDED", "0").strip().lower() in ("1", "true", "yes", "on")

flow = Dataflow("kafka-clicks-per-minute")
clicks = flow.source(
    KafkaSource("clicks", group_id="kafka-clicks-per-minute", bounded=BOUNDED),
    watermark=BoundedOutOfOrderness(10_000, idle_timeout=30_000),
)
per_user = (
    clicks.filter(lambda r: r.get("page") != "/health")
    .key_by("user")
    .window(Tumbling(60_000), allowed_lateness=30_000)
    .aggregate(clicks=agg.count())
)
per_user.sink(KafkaSink("clicks-per-minute", key="key"))
clicks.dead_letters().sink(KafkaDeadLetterSink("clicks.dead-letter"))

if __name__ == "__main__":
    flow.run()
