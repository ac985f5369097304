"""The ``engine`` command.

``engine run job.py`` runs a job script (a module that defines a module-level ``flow``). Each layer adds
its own subcommands from a ``register(subparsers)`` function in its ``cli`` module, so this file stays
small and layers do not edit each other's code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

# Layers that contribute subcommands; a layer not built yet is simply absent.
_LAYER_CLIS = (
    "engine.runtime.cli",
    "engine.state.cli",
    "engine.contracts.cli",
    "engine.orchestration.cli",
    "engine.services.cli",
)


def _layer_modules():
    for name in _LAYER_CLIS:
        parent = name.rsplit(".", 1)[0]
        if importlib.util.find_spec(parent) is None or importlib.util.find_spec(name) is None:
            continue
        yield importlib.import_module(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="Stream processing with compiled kernels.")
    parser.add_argument("--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING, ...)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in _layer_modules():
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "WARNING")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
