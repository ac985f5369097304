"""Exceptions of the data-contracts layer; all derive from `engine.errors.ContractError`.

The tree::

    ContractError
    ├── ContractDefinitionError    a contract file or object is malformed (raised at load time)
    ├── ContractValidationError    a record does not satisfy a contract (single-record APIs only;
    │                              the batch APIs return the reasons instead of raising)
    ├── IncompatibleSchemaError    a schema change breaks the configured compatibility mode
    ├── SchemaParseError           an Avro or JSON Schema document cannot be parsed
    └── SchemaRegistryError        a registry request failed; carries the Confluent error code
        ├── SubjectNotFoundError          40401
        ├── VersionNotFoundError          40402
        ├── SchemaNotFoundError           40403
        ├── InvalidSchemaError            42201
        ├── InvalidVersionError           42202
        ├── InvalidCompatibilityLevelError 42203
        └── SchemaRegistryStorageError    50001
"""

from __future__ import annotations

from engine.errors import ContractError


class ContractDefinitionError(ContractError, ValueError):
    """A contract is malformed: bad YAML/JSON, unknown type, conflicting constraints, bad default.

    ``path`` is the dotted path of the offending element (``fields.price.constraints.ge``) or ``""``
    for the document itself; ``source`` names the file when the contract came from one.
    """

    def __init__(self, message: str, *, path: str = "", source: str | None = None):
        where = f"{source}: " if source else ""
        at = f" (at {path})" if path else ""
        super().__init__(f"{where}{message}{at}")
        self.path = path
        self.source = source


class ContractValidationError(ContractError, ValueError):
    """A record does not satisfy a contract. ``issues`` lists every problem found (path, value, message)."""

    def __init__(self, contract: str, issues: list):
        self.contract = contract
        self.issues = issues
        first = issues[0] if issues else None
        text = str(first) if first else "invalid record"
        super().__init__(f"record violates contract {contract!r}: {text}")


class IncompatibleSchemaError(ContractError):
    """A new schema is not compatible with the existing ones under the configured mode.

    ``problems`` holds one `engine.contracts.compatibility.Incompatibility` per broken rule.
    """

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class SchemaParseError(ContractError, ValueError):
    """An Avro schema or JSON Schema document is malformed."""


class SchemaRegistryError(ContractError):
    """A schema-registry operation failed. ``error_code`` and ``http_status`` follow Confluent's REST API."""

    error_code = 50001
    http_status = 500

    def __init__(self, message: str, *, error_code: int | None = None, http_status: int | None = None):
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code
        if http_status is not None:
            self.http_status = http_status


class SubjectNotFoundError(SchemaRegistryError):
    error_code = 40401
    http_status = 404


class VersionNotFoundError(SchemaRegistryError):
    error_code = 40402
    http_status = 404


class SchemaNotFoundError(SchemaRegistryError):
    error_code = 40403
    http_status = 404


class InvalidSchemaError(SchemaRegistryError):
    error_code = 42201
    http_status = 422


class InvalidVersionError(SchemaRegistryError):
    error_code = 42202
    http_status = 422


class InvalidCompatibilityLevelError(SchemaRegistryError):
    error_code = 42203
    http_status = 422


class SchemaRegistryStorageError(SchemaRegistryError):
    error_code = 50001
    http_status = 500
