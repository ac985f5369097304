"""``engine run job.py``: load a job script and run its ``flow``."""

from __future__ import annotations

import argparse
import runpy
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a job script (a Python file defining `flow`)")
    run.add_argument("script", type=Path, help="path to the job script")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.script.is_file():
        print(f"engine run: no such job script: {args.script}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    namespace = runpy.run_path(str(args.script), run_name="__engine_job__")
    flow = namespace.get("flow")
    if flow is None:
        print(f"engine run: {args.script} defines no module-level `flow`", file=sys.stderr)
        return 2
    flow.run()
    print(f"engine run: {args.script.name} finished in {time.perf_counter() - started:.2f}s")
    return 0
