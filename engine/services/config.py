"""``platform.yaml``: the configuration of a set of services, validated with msgspec.

Example::

    name: orders platform
    mode: single                 # single (one process) | per-service (one process per service)
    data_dir: data               # SQLite files default to <data_dir>/<service>.db (relative to this file)
    bus: {type: memory}          # or {type: kafka, bootstrap_servers: "host:9092", topic_prefix: "engine."}
    http: {host: 127.0.0.1, port: 8080, token_env: ENGINE_TOKEN, max_body_bytes: 1048576}
    status: {dag_runs_db: engine-orchestration.db}   # recent DAG runs on the status page (read-only)
    services:
      - {kind: ingestion, name: ingest, output: raw, id_field: id, time_field: ts,
         source: {type: jsonl, path: orders.jsonl}}
      - {kind: transformation, name: enrich, input: raw, output: enriched,
         steps: [{transform: "mypkg.transforms:normalise"},
                 {lookup: {field: country, file: countries.json, into: country_info}}]}
      - {kind: quality, name: quality, input: enriched, output: validated, quarantine: quarantine,
         rules: [{rule: not_null, field: user}, {rule: between, field: amount, min: 0}]}
      - {kind: serving, name: serving, input: validated, indexes: {user: text}}

Errors name the path of the offending value (``$.services[2].rules[0].field``). A bearer token is
read from ``http.token`` or, better, the environment variable named by ``http.token_env``. String
values may reference the environment: ``${KAFKA_BOOTSTRAP}`` or ``${KAFKA_BOOTSTRAP:-127.0.0.1:9092}``
(an unset variable without a default is an error naming it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec
import yaml

from engine.errors import ServiceError
from engine.services.rules import Rule
from engine.services.transformation import Lookup

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,100}$")]


class ConfigError(ServiceError):
    """platform.yaml cannot be read or does not validate; the message names the path and value."""


class MemoryBusConfig(msgspec.Struct, tag="memory", tag_field="type", forbid_unknown_fields=True):
    max_retained: Positive = 1_000_000


class KafkaBusConfig(msgspec.Struct, tag="kafka", tag_field="type", forbid_unknown_fields=True):
    bootstrap_servers: str
    topic_prefix: str = "engine."
    partitions: Positive = 1
    replication_factor: Positive = 1
    client_id: str = "engine-services"
    client_options: dict[str, Any] = {}  # every aiokafka client: security_protocol, sasl_mechanism, ...
    consumer_options: dict[str, Any] = {}  # aiokafka's consumer only, e.g. session_timeout_ms
    producer_options: dict[str, Any] = {}


class HttpConfig(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    token: str | None = None
    token_env: str | None = None
    max_body_bytes: Positive = 1 << 20

    def resolve_token(self) -> str | None:
        if self.token_env:
            value = os.environ.get(self.token_env)
            if not value:
                raise ConfigError(f"http.token_env names {self.token_env!r}, but that environment variable is unset")
            return value
        return self.token


class _ServiceBase(msgspec.Struct, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    name: Name
    http_prefix: str = ""
    http_port: Port | None = None  # per-service mode: this service's own HTTP port

    @property
    def kind(self) -> str:
        return self.__struct_config__.tag


class SourceConfig(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["jsonl", "python"]
    path: str | None = None  # jsonl
    callable: str | None = None  # python: "module:function" returning an (async) iterable of records


class IngestionConfig(_ServiceBase, tag="ingestion"):
    output: Name
    source: SourceConfig | None = None
    id_field: str | None = None
    time_field: str | None = None
    schema_id: str | None = None
    key_field: str | None = None
    batch_size: Positive = 500
    linger_ms: NonNegative = 200


class StepConfig(msgspec.Struct, forbid_unknown_fields=True):
    transform: str | None = None
    lookup: Lookup | None = None


class _ConsumerBase(_ServiceBase, kw_only=True):
    """Settings of a service that consumes a channel (see engine.services.bus for the contract)."""

    max_batch: Positive = 500
    max_attempts: Positive = 3  # handler attempts per batch before it goes to <input>.dead-letter
    dedup_window: NonNegative = 100_000  # recent envelope ids remembered to drop redeliveries


class TransformationConfig(_ConsumerBase, tag="transformation"):
    input: Name
    output: Name
    steps: list[StepConfig] = []
    dead_letter: Name | None = None


class QualityConfig(_ConsumerBase, tag="quality"):
    input: Name
    output: Name
    rules: list[Rule] = []
    contract: str | None = None  # a data-contract file whose quality rules are added to ``rules``
    quarantine: Name | None = "quarantine"
    alerts: Name | None = "alerts"
    database: str | None = None
    alert_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.95
    window_ms: Positive = 60_000
    window_lateness_ms: NonNegative = 0
    alert_cooldown_ms: NonNegative = 60_000


class ServingConfig(_ConsumerBase, tag="serving"):
    input: Name
    database: str | None = None
    indexes: dict[str, Literal["text", "integer", "real"]] = {}
    on_conflict: Literal["ignore", "latest"] = "ignore"
    cache_ttl_ms: NonNegative = 2_000
    cache_max_entries: NonNegative = 10_000
    default_limit: Positive = 100
    max_limit: Positive = 1_000


ServiceConfig = Union[IngestionConfig, TransformationConfig, QualityConfig, ServingConfig]


class StatusConfig(msgspec.Struct, forbid_unknown_fields=True):
    dag_runs_db: str | None = None  # the orchestration layer's metadata database (read-only)
    recent_dag_runs: Positive = 20


class PlatformConfig(msgspec.Struct, forbid_unknown_fields=True):
    services: list[ServiceConfig]
    name: str = "engine platform"
    mode: Literal["single", "per-service"] = "single"
    data_dir: str = "data"
    bus: Union[MemoryBusConfig, KafkaBusConfig] = msgspec.field(default_factory=MemoryBusConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    status: StatusConfig = msgspec.field(default_factory=StatusConfig)
    shutdown_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    base_dir: str = "."  # set by load_config: relative paths resolve against the config file's folder

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def database_for(self, service) -> str:
        if getattr(service, "database", None) == ":memory:":
            return ":memory:"
        return str(self.path(service.database) if service.database else self.path(self.data_dir) / f"{service.name}.db")

    def service(self, name: str):
        for s in self.services:
            if s.name == name:
                return s
        raise ConfigError(f"no service named {name!r} in the config (have: {', '.join(s.name for s in self.services)})")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, path: str = "$", environ: dict[str, str] | None = None) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string of ``value`` replaced from the environment."""
    environ = os.environ if environ is None else environ
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name!r} is not set (or write ${{{name}:-default}})")

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v, f"{path}.{k}", environ) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]", environ) for i, v in enumerate(value)]
    return value


def parse_config(raw: Any, base_dir: str | Path = ".") -> PlatformConfig:
    """Validate a mapping (e.g. loaded YAML) into a `PlatformConfig` (environment references expanded)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the platform config must be a mapping, got {type(raw).__name__}")
    raw = expand_env(raw)
    try:
        config = msgspec.convert({**raw, "base_dir": str(base_dir)}, PlatformConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid platform config: {exc}") from None
    names = [s.name for s in config.services]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"service names must be unique; repeated: {', '.join(duplicates)}")
    if not config.services:
        raise ConfigError("the platform config lists no services")
    if config.mode == "per-service" and isinstance(config.bus, MemoryBusConfig):
        raise ConfigError("mode 'per-service' needs bus type 'kafka': the in-memory bus cannot cross processes")
    for i, s in enumerate(config.services):
        if isinstance(s, TransformationConfig):
            for j, step in enumerate(s.steps):
                if (step.transform is None) == (step.lookup is None):
                    raise ConfigError(f"$.services[{i}].steps[{j}]: give exactly one of 'transform' or 'lookup'")
        if isinstance(s, IngestionConfig) and s.source is not None:
            if s.source.type == "jsonl" and not s.source.path:
                raise ConfigError(f"$.services[{i}].source: a jsonl source needs 'path'")
            if s.source.type == "python" and not s.source.callable:
                raise ConfigError(f"$.services[{i}].source: a python source needs 'callable' ('module:function')")
        if isinstance(s, ServingConfig) and s.default_limit > s.max_limit:
            raise ConfigError(f"$.services[{i}]: default_limit {s.default_limit} > max_limit {s.max_limit}")
    return config


def load_config(path: str | Path) -> PlatformConfig:
    """Read and validate ``platform.yaml``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(raw, base_dir=path.resolve().parent)
