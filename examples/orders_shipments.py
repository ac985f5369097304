"""Orders joined with shipments: each order with the shipment that left within an hour of it
(a keyed interval join), plus the orders that shipped late counted per minute.

Synthetic input: 2,000 orders; most ship 1-50 minutes later, some after more than an hour (no match),
some never. Shipment events arrive from a second source, so the join's watermark is the minimum of both.

    engine run examples/orders_shipments.py
"""

from __future__ import annotations

import random

from connectors.memory import CollectionSource, PrintSink
from engine import BoundedOutOfOrderness, Dataflow

START = 1_700_000_000_000
MINUTE = 60_000
rng = random.Random(3)

orders = []
shipments = []
for i in range(2_000):
    placed = START + i * 1_500 + rng.randint(0, 1_000)
    orders.append({"order_id": f"o{i}", "ts": placed, "customer": f"c{rng.randint(1, 200)}", "total": round(rng.uniform(5, 300), 2)})
    roll = rng.random()
    if roll < 0.85:
        shipments.append({"order_id": f"o{i}", "ts": placed + rng.randint(1, 50) * MINUTE, "carrier": rng.choice(["ups", "dhl", "post"])})
    elif roll < 0.95:
        shipments.append({"order_id": f"o{i}", "ts": placed + rng.randint(61, 180) * MINUTE, "carrier": "post"})
shipments.sort(key=lambda s: s["ts"])

flow = Dataflow("orders-shipments")
order_stream = flow.source(CollectionSource(orders, batch_size=256), timestamp="ts", watermark=BoundedOutOfOrderness(5_000))
shipment_stream = flow.source(CollectionSource(shipments, batch_size=256), timestamp="ts", watermark=BoundedOutOfOrderness(5_000))
shipped = order_stream.key_by("order_id").interval_join(
    shipment_stream.key_by("order_id"),
    lower=0,
    upper=60 * MINUTE,
    combine=lambda order, shipment: {
        "order_id": order["order_id"],
        "customer": order["customer"],
        "carrier": shipment["carrier"],
        "minutes_to_ship": (shipment["ts"] - order["ts"]) // MINUTE,
    },
)
shipped.sink(PrintSink(limit=15))

if __name__ == "__main__":
    flow.run()
