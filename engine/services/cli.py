"""``engine serve platform.yaml``: start the configured services; SIGTERM/SIGINT stops them cleanly.

``--check`` validates the file and lists the services; ``--service NAME`` runs only that service (how ``mode: per-service`` starts its children);
``--port`` overrides the HTTP port; ``--log-format json`` logs JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="start the services configured in a platform.yaml")
    serve.add_argument("config", type=Path, help="path to platform.yaml")
    serve.add_argument("--service", action="append", default=None, metavar="NAME",
                       help="run only this service in this process (repeatable)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (overrides http.port; 0 = any free port)")
    serve.add_argument("--log-format", choices=("text", "json"), default="text")
    serve.add_argument("--check", action="store_true", help="validate the config, list the services and exit")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from engine.services.config import ConfigError, load_config
    from engine.services.platform import Platform, Supervisor, run_until_signalled
    from engine.errors import ServiceError

    if args.log_format == "json":
        from engine.services.logs import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    try:
        config = load_config(args.config)
        if args.check:
            bus = type(config.bus).__struct_config__.tag
            print(f"{args.config}: OK: {config.name!r}, mode {config.mode}, bus {bus}, "
                  f"http {config.http.host}:{config.http.port}")
            for sc in config.services:
                io = " -> ".join(x for x in (getattr(sc, "input", None), sc.kind + ":" + sc.name,
                                             getattr(sc, "output", None)) if x)
                print(f"  {io}")
            return 0
        if config.mode == "per-service" and not args.service:
            runner = Supervisor(config, args.config.resolve(), port=args.port)
        else:
            runner = Platform(config, only=args.service, port=args.port)
    except (ConfigError, ServiceError) as exc:
        print(f"engine serve: {exc}", file=sys.stderr)
        return 2

    async def start():
        await runner.start()
        url = runner.server.url
        print(f"engine serve: {config.name!r} on {url} (SIGTERM or Ctrl-C to stop)", flush=True)

    try:
        asyncio.run(run_until_signalled(start, runner.stop))
    except ServiceError as exc:
        print(f"engine serve: {exc}", file=sys.stderr)
        return 1
    print("engine serve: stopped", flush=True)
    return 0
