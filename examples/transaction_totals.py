"""Transaction totals: a 5-minute total per account, updated every minute (sliding windows).

Synthetic card transactions for 8 accounts over 30 minutes of event time; the sliding window gives
each account a moving 5-minute spend, the signal a fraud rule or a spending alert would read.
The aggregation is columnar end to end: numpy columns in (`ArraySource`), numpy columns out
(`ArraySink`); only the alert branch builds Python records.

    engine run examples/transaction_totals.py
"""

from __future__ import annotations

import numpy as np

from connectors.memory import ArraySink, ArraySource, PrintSink
from engine import BoundedOutOfOrderness, Dataflow, Sliding, agg

START = 1_700_000_000_000
rng = np.random.default_rng(7)
N = 20_000
timestamps = START + np.sort(rng.integers(0, 30 * 60_000, size=N)) - rng.integers(0, 2_000, size=N)
transactions = {
    "ts": timestamps.astype(np.int64),
    "account": rng.integers(1000, 1008, size=N),
    "amount": np.round(rng.gamma(2.0, 20.0, size=N), 2),
}

flow = Dataflow("transaction-totals")
totals = (
    flow.source(ArraySource(transactions, batch_size=4096), timestamp="ts", watermark=BoundedOutOfOrderness(3_000))
    .key_by("account")
    .window(Sliding(5 * 60_000, 60_000))
    .aggregate(transactions=agg.count(), total=agg.sum("amount"), average=agg.mean("amount"))
)
totals.sink(table := ArraySink())  # the full result table, as numpy columns (no Python records)
# Alert on unusually high 5-minute spend (records are built only for this branch).
totals.filter(lambda w: w["total"] > 15_000).sink(PrintSink(prefix="high spend: ", limit=10))

if __name__ == "__main__":
    flow.run()
    columns = table.columns()
    print(f"{len(columns['key'])} window results; highest 5-minute total {columns['total'].max():.2f}")
