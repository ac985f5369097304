"""Click analytics: clicks and spend per user per minute (tumbling event-time windows).

The README's main job. It generates its own synthetic click stream (seeded, so every run prints the
same results): 12 users over 10 minutes of event time, arriving up to 4 s out of order, with health-check
noise to filter out and a few stragglers that arrive too late even for the allowed lateness.

    engine run examples/clicks_per_user.py        # or: python examples/clicks_per_user.py
"""

from __future__ import annotations

import random

from connectors.memory import CollectionSource, PrintSink
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg

START = 1_700_000_000_000  # event time of the first click, ms since the epoch (2023-11-14T22:13:20Z)


def synthetic_clicks(n: int = 6_000, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    users = [f"user-{i:02d}" for i in range(12)]
    pages = ["/", "/search", "/product", "/cart", "/checkout", "/health"]
    clicks = []
    for i in range(n):
        ts = START + i * 100 - rng.randint(0, 4_000)  # 10 clicks/s, up to 4 s of disorder
        if i % 997 == 0 and i:
            ts -= 90_000  # a straggler from a flaky mobile client, 1.5 minutes late
        page = rng.choice(pages)
        clicks.append({"ts": ts, "user": rng.choice(users), "page": page, "amount": round(rng.random() * 50, 2) if page == "/checkout" else 0.0})
    return clicks


flow = Dataflow("clicks-per-user")
clicks = flow.source(CollectionSource(synthetic_clicks(), batch_size=500), timestamp="ts",
                     watermark=BoundedOutOfOrderness(5_000))
per_user = (
    clicks.filter(lambda r: r["page"] != "/health")
    .key_by("user")
    .window(Tumbling(60_000), allowed_lateness=10_000)
    .aggregate(clicks=agg.count(), spend=agg.sum("amount"), biggest=agg.max("amount"))
)
per_user.sink(PrintSink(limit=30))
per_user.late().sink(PrintSink(prefix="late: "))

if __name__ == "__main__":
    flow.run()
