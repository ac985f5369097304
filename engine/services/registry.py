"""The service registry: which service instances exist in this process and how they are doing."""

from __future__ import annotations

from typing import Any, Iterator

from engine.errors import ServiceError
from engine.services.base import Service


class ServiceRegistry:
    """Tracks service instances by (unique) name; the status page and /health read it."""

    def __init__(self):
        self._services: dict[str, Service] = {}

    def register(self, service: Service) -> Service:
        if service.name in self._services and self._services[service.name] is not service:
            raise ServiceError(f"a service named {service.name!r} is already registered; names must be unique")
        self._services[service.name] = service
        return service

    def unregister(self, name: str) -> None:
        self._services.pop(name, None)

    def get(self, name: str) -> Service:
        try:
            return self._services[name]
        except KeyError:
            known = ", ".join(sorted(self._services)) or "none"
            raise ServiceError(f"no service named {name!r} (registered: {known})") from None

    def __iter__(self) -> Iterator[Service]:
        return iter(list(self._services.values()))

    def __len__(self) -> int:
        return len(self._services)

    def __contains__(self, name: str) -> bool:
        return name in self._services

    def healthy(self) -> bool:
        return all(s.healthy() for s in self)

    def ready(self) -> bool:
        return all(s.ready() for s in self)

    def snapshot(self) -> list[dict[str, Any]]:
        """Health reports of every service, in registration order."""
        return [s.health() for s in self]
