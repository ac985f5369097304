"""The service layer: small services around the streams, over an event bus, with HTTP endpoints.

Modules: `envelope` (the record wrapper), `bus` (EventBus, InMemoryBus, KafkaBus), `metrics`,
`base` (Service lifecycle and health), `registry`, `ingestion`, `transformation`, `quality`, `serving`,
`http` (aiohttp apps), `status` (status page), `config` (platform.yaml) and `platform` (start a
configured set of services), `cli` (``engine serve``).
"""
