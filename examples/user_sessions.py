"""User sessions: activity grouped into sessions that end after 30 minutes without events
(session windows), with the pages of each session collected by a general `reduce`.

Synthetic input: 40 users, each with a few bursts of page views over a day.

    engine run examples/user_sessions.py
"""

from __future__ import annotations

import random

from connectors.memory import CollectionSource, PrintSink
from engine import BoundedOutOfOrderness, Dataflow, Session, agg

START = 1_700_000_000_000
MINUTE = 60_000
rng = random.Random(11)

views = []
for u in range(40):
    t = START + rng.randint(0, 60) * MINUTE
    for _ in range(rng.randint(1, 4)):  # bursts of activity
        for _ in range(rng.randint(1, 12)):
            t += rng.randint(5, 600) * 1_000  # 5 s to 10 min between views: same session
            views.append({"ts": t, "user": f"user-{u:02d}", "page": rng.choice(["/", "/docs", "/pricing", "/blog"]), "seconds": rng.randint(3, 300)})
        t += rng.randint(45, 240) * MINUTE  # a break longer than the gap: the session ends
views.sort(key=lambda v: v["ts"])

flow = Dataflow("user-sessions")
keyed = flow.source(CollectionSource(views, batch_size=128), timestamp="ts",
                    watermark=BoundedOutOfOrderness(30_000)).key_by("user")
keyed.window(Session(30 * MINUTE)).aggregate(views=agg.count(), engaged_seconds=agg.sum("seconds")).sink(
    PrintSink(prefix="session: ", limit=12)
)
keyed.window(Session(30 * MINUTE)).reduce(lambda pages, v: pages + [v["page"]], [], field="pages").sink(
    PrintSink(prefix="pages: ", limit=5)
)

if __name__ == "__main__":
    flow.run()
