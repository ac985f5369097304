"""``engine run job.py``: load a job script and run its ``flow``.

A job script is a Python file that defines a module-level ``flow`` (an `engine.Dataflow`); it is
executed with ``__name__ == "__engine_job__"`` so its own ``if __name__ == "__main__":`` block does not
run the flow a second time. After the run a summary line reports records in and out, seconds and
records per second.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
import time
from pathlib import Path

from engine.errors import EngineError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a job script (a Python file defining `flow`)")
    run.add_argument("script", type=Path, help="path to the job script")
    run.add_argument("--batch-size", type=int, default=None, help="records per micro-batch for every source")
    run.add_argument(
        "--log-level", default=argparse.SUPPRESS, help="logging level (DEBUG, INFO, WARNING, ...); overrides the global one"
    )
    run.add_argument("--checkpoint-dir", type=Path, default=None, help="keep checkpoints here and resume from the latest")
    run.add_argument("--checkpoint-interval", type=float, default=None, metavar="S",
                     help="seconds between checkpoints (needs --checkpoint-dir)")
    run.add_argument("--kafka-bootstrap-servers", default=None, metavar="HOST:PORT[,...]",
                     help="Kafka brokers for connectors built without bootstrap_servers= "
                          "(sets ENGINE_KAFKA_BOOTSTRAP_SERVERS)")
    run.add_argument("--fresh", action="store_true", help="ignore existing checkpoints (needs --checkpoint-dir)")
    run.add_argument("--from-savepoint", type=Path, default=None, metavar="PATH",
                     help="start from this savepoint (needs --checkpoint-dir)")
    run.add_argument("--worker-id", default=None, metavar="NAME",
                     help="scale-out: this worker's name; workers of one job share --checkpoint-dir and a Kafka group")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.dataflow import Dataflow

    if not args.script.is_file():
        print(f"engine run: no such job script: {args.script}", file=sys.stderr)
        return 2
    if args.batch_size is not None and args.batch_size < 1:
        print(f"engine run: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    if args.kafka_bootstrap_servers:
        os.environ["ENGINE_KAFKA_BOOTSTRAP_SERVERS"] = args.kafka_bootstrap_servers
    namespace = runpy.run_path(str(args.script), run_name="__engine_job__")
    flow = namespace.get("flow")
    if not isinstance(flow, Dataflow):
        print(f"engine run: {args.script} defines no module-level `flow` (an engine.Dataflow)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        flow.run(
            batch_size=args.batch_size, checkpoint_dir=args.checkpoint_dir,
            checkpoint_interval=args.checkpoint_interval, fresh=args.fresh, from_savepoint=args.from_savepoint,
            worker_id=args.worker_id,
        )
    except EngineError as exc:
        print(f"engine run: {args.script.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    metrics = flow._last_run.metrics
    rate = metrics.records_in / seconds if seconds > 0 else float("inf")
    print(
        f"engine run: {args.script.name} (flow {flow.name!r}): {metrics.records_in:,} records in, "
        f"{metrics.records_out:,} records out, {seconds:.2f}s, {rate:,.0f} records/s"
    )
    return 0
