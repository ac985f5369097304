"""The job the checkpoint tests run, in-process and as a subprocess killed with SIGKILL.

file source -> tumbling count/sum with allowed lateness -> interval join of each window result with the
user's events of that window -> JSON-lines file sink (two-phase commit). One source feeds both join
inputs, so the output is deterministic and comparable between an uninterrupted and a crashed run.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

from connectors.files import JsonLinesSink, JsonLinesSource
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg


def write_input(path: str, n: int, seed: int) -> None:
    """Events with ~1 s of disorder so allowed lateness and late records both happen."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            ts = 20 * i + rng.randrange(-1_500, 200)
            fh.write(json.dumps({"user": f"u{rng.randrange(8)}", "ts": ts, "amount": rng.randrange(1, 50)}) + "\n")


def build(
    input_path: str, output_path: str, *, slow: float = 0.0, name: str = "crash-job", lateness: int = 600, source=None
) -> Dataflow:
    """``source`` replaces the file source (same graph), e.g. with one that fails part-way."""
    flow = Dataflow(name)
    source = source if source is not None else JsonLinesSource(input_path, batch_size=25)
    events = flow.source(source, timestamp="ts", watermark=BoundedOutOfOrderness(300))
    if slow:
        def pace(record, delay=slow):
            time.sleep(delay)  # gives the crash test time to kill mid-run
            return True

        events = events.filter(pace)
    by_user = events.key_by("user")
    windows = by_user.window(Tumbling(1_000), allowed_lateness=lateness).aggregate(count=agg.count(), total=agg.sum("amount"))
    joined = windows.key_by("key").interval_join(
        by_user,
        lower=-999,
        upper=0,
        combine=lambda w, e: {"user": w["key"], "start": w["start"], "count": w["count"], "total": w["total"], "event_ts": e["ts"]},
    )
    joined.sink(JsonLinesSink(output_path))
    return flow


def slow_persisting(checkpoint_dir: str, interval: float, delay: float):
    """A checkpoint coordinator whose background writes take ``delay`` seconds before and again after the
    atomic write (the file renamed into place but its completion not yet delivered), logging each step
    to stderr, so a test can kill the process while a checkpoint is being persisted."""
    from engine.state.coordinator import CheckpointCoordinator
    from engine.state.storage import LocalCheckpointStorage

    class SlowStorage(LocalCheckpointStorage):
        def write_body(self, checkpoint_id, body_parts):
            print(f"persisting {checkpoint_id}", file=sys.stderr, flush=True)
            time.sleep(delay)
            path = super().write_body(checkpoint_id, body_parts)
            print(f"renamed {checkpoint_id}", file=sys.stderr, flush=True)
            time.sleep(delay)
            return path

    coordinator = CheckpointCoordinator(checkpoint_dir, interval=interval)
    coordinator.storage = SlowStorage(checkpoint_dir, keep=coordinator.storage.keep)
    return coordinator


if __name__ == "__main__":  # python -m tests.state.jobs INPUT OUTPUT CHECKPOINT_DIR INTERVAL SLOW [PERSIST_DELAY]
    input_path, output_path, checkpoint_dir, interval, slow = sys.argv[1:6]
    flow = build(input_path, output_path, slow=float(slow))
    persist_delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    if persist_delay:
        flow.run(checkpointer=slow_persisting(checkpoint_dir, float(interval), persist_delay))
    else:
        flow.run(checkpoint_dir=checkpoint_dir, checkpoint_interval=float(interval))
    os._exit(0)
