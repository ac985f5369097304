"""``engine savepoint CHECKPOINT_DIR PATH``: keep a job's latest good checkpoint as a savepoint.

A savepoint is a checkpoint file that is never rotated away; ``engine run job.py --from-savepoint PATH``
(or ``flow.run(from_savepoint=PATH)``) starts the job from it. A running flow can also write one at its
next batch boundary with ``await flow.savepoint(path)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    savepoint = subparsers.add_parser(
        "savepoint", help="copy the latest good checkpoint of a checkpoint directory to a savepoint file"
    )
    savepoint.add_argument("checkpoint_dir", type=Path, help="the job's checkpoint directory")
    savepoint.add_argument("path", type=Path, help="where to write the savepoint")
    savepoint.set_defaults(handler=_savepoint)


def _savepoint(args: argparse.Namespace) -> int:
    from engine.state.storage import LocalCheckpointStorage, write_savepoint

    if not args.checkpoint_dir.is_dir():
        print(f"engine savepoint: no checkpoint directory {args.checkpoint_dir}", file=sys.stderr)
        return 2
    checkpoint = LocalCheckpointStorage(args.checkpoint_dir, read_only=True).latest()  # the job may be running
    if checkpoint is None:
        print(f"engine savepoint: {args.checkpoint_dir} holds no intact checkpoint", file=sys.stderr)
        return 1
    path = write_savepoint(args.path, checkpoint)
    print(f"engine savepoint: checkpoint {checkpoint.checkpoint_id} of job {checkpoint.job!r} saved to {path}")
    return 0
