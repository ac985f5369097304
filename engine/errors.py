"""Exceptions raised by the engine.

Every exception the engine raises on purpose derives from `EngineError`; messages name the step, the
field and the offending value, and say what to do. The tree::

    EngineError
    ├── FlowDefinitionError      an invalid flow, refused at build time (before anything runs)
    ├── RecordError              a record a step cannot process (missing field, wrong type, a user
    │                            function that raised); goes to dead_letters() when attached
    ├── JobFailedError           a running job stopped because of an error it could not route
    ├── CheckpointError          checkpoint storage or restore problems
    │   └── IncompatibleCheckpointError   the checkpoint belongs to a different job graph
    ├── ConnectorError           a source or sink failed (I/O, broker, decoding set-up)
    ├── ContractError            data-contract definition, compatibility and validation failures
    ├── OrchestrationError       DAG definition and scheduling failures
    └── ServiceError             service-layer failures
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every exception the engine raises on purpose."""


class FlowDefinitionError(EngineError, ValueError):
    """The flow is invalid; raised while building it, before anything runs."""


class RecordError(EngineError):
    """A record that a step cannot process.

    ``step`` names the operator, ``field`` the field (or ``None``), ``value`` the offending value.
    """

    def __init__(self, message: str, *, step: str, field: str | None = None, value: object = None):
        super().__init__(message)
        self.step = step
        self.field = field
        self.value = value


class JobFailedError(EngineError):
    """A running job stopped because of an error it could not route to a dead-letter output."""


class CheckpointError(EngineError):
    """Checkpoint storage, integrity or restore problems."""


class IncompatibleCheckpointError(CheckpointError):
    """The checkpoint was taken by a job with a different graph."""


class ConnectorError(EngineError):
    """A source or sink failed."""


class ContractError(EngineError):
    """Data-contract definition, compatibility or validation failures."""


class OrchestrationError(EngineError):
    """DAG definition or scheduling failures."""


class ServiceError(EngineError):
    """Service-layer failures."""
