"""The service layer: small services around the streams, over an event bus, with HTTP endpoints.

Modules: `envelope` (the record wrapper), `bus` (EventBus, InMemoryBus, KafkaBus), `metrics`,
`base` (Service lifecycle and health), `registry`, `ingestion`, `transformation`, `rules` and
`quality`, `store`/`cache`/`serving`, `http` (aiohttp app factories), `status` (status page),
`config` (platform.yaml), `platform` (run a configured set of services), `providers` (status-page
feeds from other layers) and `cli` (``engine serve``).

Quick start (embedded, in-process bus)::

    from engine.services import InMemoryBus, QualityService, ServingService, make_service_app
    bus = InMemoryBus()
    serving = ServingService("serving", bus, "validated", indexes={"user": "text"})
    await serving.start()

or ``engine serve platform.yaml`` (see `engine.services.config`).
"""

from engine.services.base import Service
from engine.services.bus import BusError, Deduplicator, EventBus, InMemoryBus, KafkaBus, Subscription
from engine.services.config import ConfigError, PlatformConfig, load_config, parse_config
from engine.services.envelope import Envelope, EnvelopeDecodeError
from engine.services.http import AppServer, RequestError, Route, make_platform_app, make_service_app
from engine.services.ingestion import IngestionService, jsonl_source
from engine.services.metrics import Counter, Gauge, Histogram, Metrics, render_prometheus
from engine.services.platform import Platform, Supervisor
from engine.services.providers import orchestration_runs_provider
from engine.services.quality import QualityService
from engine.services.registry import ServiceRegistry
from engine.services.rules import parse_rules
from engine.services.serving import ServingService
from engine.services.store import QueryError, RecordStore
from engine.services.transformation import (Lookup, LookupStep, MapStep, TransformationService,
                                            register_transform, transform)

__all__ = [
    "AppServer",
    "BusError",
    "ConfigError",
    "Counter",
    "Deduplicator",
    "Envelope",
    "EnvelopeDecodeError",
    "EventBus",
    "Gauge",
    "Histogram",
    "InMemoryBus",
    "IngestionService",
    "KafkaBus",
    "Lookup",
    "LookupStep",
    "MapStep",
    "Metrics",
    "Platform",
    "PlatformConfig",
    "QualityService",
    "QueryError",
    "RecordStore",
    "RequestError",
    "Route",
    "Service",
    "ServiceRegistry",
    "ServingService",
    "Subscription",
    "Supervisor",
    "TransformationService",
    "jsonl_source",
    "load_config",
    "make_platform_app",
    "make_service_app",
    "orchestration_runs_provider",
    "parse_config",
    "parse_rules",
    "register_transform",
    "render_prometheus",
    "transform",
]
