"""`SchemaRegistry`: subjects, versions, global ids and compatibility, as in Confluent Schema Registry.

- A schema's id is global: the same schema (same type, same canonical form) registered under two
  subjects keeps one id; registering a schema a subject already has returns the existing id and adds no
  version.
- Compatibility is configured globally (default ``BACKWARD``) and per subject; a registration that breaks
  the effective mode raises `IncompatibleSchemaError` naming every broken rule.
- Deletes are soft (versions hidden but kept, version numbers never reused) or, after a soft delete,
  permanent (rows removed), with Confluent's error codes when the order is wrong.

Schema types: ``AVRO`` (the default), ``JSON`` (JSON Schema) and ``CONTRACT`` (a `DataContract` document
as JSON). Schema references are stored and returned, but named types from referenced schemas are not
resolved, so a schema that relies on them is refused as invalid.

One registry object (one server process) per database file: operations are serialised by a lock
inside the process, not across processes.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

import msgspec

from engine.contracts.avro_schema import canonical_json, parse_avro
from engine.contracts.compatibility import (
    MODES,
    Incompatibility,
    avro_reader_problems,
    check_modes,
    contract_reader_problems,
    json_reader_problems,
)
from engine.contracts.errors import (
    ContractDefinitionError,
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
    SchemaNotFoundError,
    SchemaParseError,
    SchemaRegistryError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from engine.contracts.model import DataContract
from engine.contracts.store import MemoryStore, RegistryStore, StoredSchema, StoredVersion

logger = logging.getLogger(__name__)

SCHEMA_TYPES = ("AVRO", "JSON", "CONTRACT")
DEFAULT_COMPATIBILITY = "BACKWARD"
_GUID_NAMESPACE = uuid.UUID("6f1c7d0e-6d43-4c55-9a2f-3c1b2f0f4e11")


class RegisteredSchema(msgspec.Struct, frozen=True):
    """A schema as registered under a subject (``subject``/``version`` are empty for a bare id lookup)."""

    id: int
    schema: str
    schema_type: str = "AVRO"
    subject: str | None = None
    version: int | None = None
    references: tuple = ()
    deleted: bool = False

    @property
    def guid(self) -> str:
        return schema_guid(self.schema_type, self.canonical)

    @property
    def canonical(self) -> str:
        return canonical_form(self.schema_type, self.schema)


def schema_guid(schema_type: str, canonical: str) -> str:
    """A stable UUID for a schema (Confluent's newer clients address schemas by guid as well as id)."""
    return str(uuid.uuid5(_GUID_NAMESPACE, f"{schema_type}:{canonical}"))


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise InvalidSchemaError(f"Invalid schema: {what} is not valid JSON: {exc}") from None


def parse_schema(schema_type: str, schema: str) -> Any:
    """Parse and check ``schema`` of ``schema_type``; returns the object the compatibility rules use.
    Raises `InvalidSchemaError` (42201) for anything malformed."""
    if schema_type == "AVRO":
        try:
            return parse_avro(schema)
        except SchemaParseError as exc:
            raise InvalidSchemaError(f"Invalid schema: {exc}") from None
    if schema_type == "JSON":
        doc = _json(schema, "the JSON Schema")
        if not isinstance(doc, (dict, bool)):
            raise InvalidSchemaError("Invalid schema: a JSON Schema must be an object or a boolean")
        import jsonschema

        try:
            jsonschema.validators.validator_for(doc, default=jsonschema.Draft202012Validator).check_schema(doc)
        except jsonschema.SchemaError as exc:
            raise InvalidSchemaError(f"Invalid schema: {exc.message}") from None
        return doc
    if schema_type == "CONTRACT":
        from engine.contracts.parsing import parse_contract

        doc = _json(schema, "the contract")
        try:
            return parse_contract(doc)
        except ContractDefinitionError as exc:
            raise InvalidSchemaError(f"Invalid schema: {exc}") from None
    raise InvalidSchemaError(f"Invalid schema type {schema_type!r}; supported: {', '.join(SCHEMA_TYPES)}")


def canonical_form(schema_type: str, schema: str) -> str:
    """The identity of a schema: compact sorted-key JSON (contracts: their canonical form)."""
    if schema_type == "CONTRACT":
        from engine.contracts.parsing import canonical_form as contract_canonical, parse_contract

        return contract_canonical(parse_contract(json.loads(schema))).decode()
    return canonical_json(schema)


_READER_RULES = {"AVRO": avro_reader_problems, "JSON": json_reader_problems, "CONTRACT": contract_reader_problems}


class SchemaRegistry:
    """An embedded schema registry over a `RegistryStore` (in-memory when none is given)."""

    def __init__(self, store: RegistryStore | None = None, default_compatibility: str = DEFAULT_COMPATIBILITY):
        self.store = store if store is not None else MemoryStore()
        self.default_compatibility = self._level(default_compatibility)
        self._lock = threading.RLock()

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------------------------ helpers
    @staticmethod
    def _level(level: Any) -> str:
        if not isinstance(level, str) or level.upper() not in MODES:
            raise InvalidCompatibilityLevelError(
                f"Invalid compatibility level {level!r}; valid levels: {', '.join(MODES)}")
        return level.upper()

    @staticmethod
    def _schema_text(schema: Any, schema_type: str) -> str:
        if isinstance(schema, DataContract):
            return json.dumps(schema.to_dict(), sort_keys=False, default=str)
        if isinstance(schema, (dict, list, bool)):
            return json.dumps(schema)
        if isinstance(schema, str):
            return schema
        raise InvalidSchemaError(f"Invalid schema: expected text or a JSON document, got {type(schema).__name__}")

    @staticmethod
    def _type(schema_type: str | None, schema: Any = None) -> str:
        if schema_type is None:
            return "CONTRACT" if isinstance(schema, DataContract) else "AVRO"
        t = str(schema_type).upper()
        if t not in SCHEMA_TYPES:
            raise InvalidSchemaError(f"Invalid schema type {schema_type!r}; supported: {', '.join(SCHEMA_TYPES)}")
        return t

    @staticmethod
    def _subject(subject: Any) -> str:
        if not isinstance(subject, str) or not subject.strip():
            raise SchemaRegistryError("subject must be a non-empty string", error_code=422, http_status=422)
        return subject

    def _live_versions(self, subject: str, include_deleted: bool = False) -> list[StoredVersion]:
        return [v for v in self.store.versions(subject) if include_deleted or not v.deleted]

    def _registered(self, v: StoredVersion) -> RegisteredSchema:
        s = self.store.schema_by_id(v.schema_id)
        return RegisteredSchema(s.id, s.schema, s.schema_type, v.subject, v.version, s.references, v.deleted)

    def _parsed(self, stored: StoredSchema) -> Any:
        return parse_schema(stored.schema_type, stored.schema)

    # ------------------------------------------------------------------------------------ config
    def get_compatibility(self, subject: str | None = None, default_to_global: bool = True) -> str | None:
        """The subject's level (falling back to the global one unless told not to), or the global level."""
        if subject is None:
            return self.store.get_config(None) or self.default_compatibility
        level = self.store.get_config(subject)
        if level is None and default_to_global:
            return self.get_compatibility(None)
        return level

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        level = self._level(level)
        with self._lock:
            self.store.set_config(subject, level)
        return level

    def delete_compatibility(self, subject: str | None = None) -> str:
        """Remove the subject's (or the global) setting; returns the level that was set."""
        with self._lock:
            previous = self.get_compatibility(subject, default_to_global=subject is None)
            if subject is not None and previous is None:
                raise SubjectNotFoundError(f"Subject '{subject}' has no compatibility config")
            self.store.set_config(subject, None)
            return previous

    # ------------------------------------------------------------------------------ registration
    def register(self, subject: str, schema: Any, schema_type: str | None = None,
                 references: list | None = None) -> RegisteredSchema:
        """Register ``schema`` under ``subject``; returns the (possibly existing) registration.

        Raises `InvalidSchemaError` (malformed), `IncompatibleSchemaError` (breaks the mode)."""
        subject = self._subject(subject)
        schema_type = self._type(schema_type, schema)
        text = self._schema_text(schema, schema_type)
        parsed = parse_schema(schema_type, text)
        canonical = canonical_form(schema_type, text)
        references = list(references or [])
        with self._lock:
            live = self._live_versions(subject)
            existing_id = self.store.schema_id_for(schema_type, canonical)
            if existing_id is not None:
                for v in live:
                    if v.schema_id == existing_id:
                        return self._registered(v)
            problems = self._problems(subject, schema_type, parsed, live, self.get_compatibility(subject))
            if problems:
                raise self._incompatible(subject, problems)
            schema_id = existing_id or self.store.add_schema(schema_type, canonical, text, references)
            every = self.store.versions(subject)
            version = (every[-1].version if every else 0) + 1
            self.store.add_version(subject, version, schema_id)
            logger.info("registered schema id %d as %s version %d", schema_id, subject, version)
            return RegisteredSchema(schema_id, self.store.schema_by_id(schema_id).schema, schema_type, subject,
                                    version, tuple(references))

    def _problems(self, subject: str, schema_type: str, parsed: Any, against: list[StoredVersion],
                  mode: str) -> list[Incompatibility]:
        previous = []
        versions = []
        for v in against:
            stored = self.store.schema_by_id(v.schema_id)
            if stored.schema_type != schema_type:
                # Confluent refuses a change of schema type within a subject under any mode but NONE
                if mode != "NONE":
                    return [Incompatibility("TYPE_MISMATCH", "<root>",
                                            f"subject {subject!r} holds {stored.schema_type} schemas, not {schema_type}",
                                            v.version)]
                continue
            previous.append(self._parsed(stored))
            versions.append(v.version)
        return check_modes(parsed, previous, mode, _READER_RULES[schema_type], versions)

    @staticmethod
    def _incompatible(subject: str, problems: list[Incompatibility]) -> IncompatibleSchemaError:
        listed = "; ".join(str(p) for p in problems)
        return IncompatibleSchemaError(
            f"Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {listed}",
            problems)

    def check(self, subject: str, schema: Any, schema_type: str | None = None,
              version: int | str | None = "latest") -> list[Incompatibility]:
        """Problems registering ``schema`` would meet: against one version (``int`` or ``"latest"``) or,
        with ``version=None``, against the versions the subject's mode covers. Empty: compatible."""
        subject = self._subject(subject)
        schema_type = self._type(schema_type, schema)
        parsed = parse_schema(schema_type, self._schema_text(schema, schema_type))
        mode = self.get_compatibility(subject)
        with self._lock:
            live = self._live_versions(subject)
            if version is None:
                return self._problems(subject, schema_type, parsed, live, mode)
            if not live:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            target = self.get_version(subject, version)
            one = [v for v in live if v.version == target.version]
            return self._problems(subject, schema_type, parsed, one, mode.removesuffix("_TRANSITIVE"))

    # ------------------------------------------------------------------------------------ lookups
    def lookup(self, subject: str, schema: Any, schema_type: str | None = None,
               include_deleted: bool = False) -> RegisteredSchema:
        """The registration of ``schema`` under ``subject`` (40401 no subject, 40403 not registered there)."""
        subject = self._subject(subject)
        schema_type = self._type(schema_type, schema)
        text = self._schema_text(schema, schema_type)
        parse_schema(schema_type, text)
        canonical = canonical_form(schema_type, text)
        with self._lock:
            versions = self._live_versions(subject, include_deleted)
            if not versions:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            schema_id = self.store.schema_id_for(schema_type, canonical)
            for v in reversed(versions):
                if v.schema_id == schema_id:
                    return self._registered(v)
        raise SchemaNotFoundError("Schema not found")

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        stored = self.store.schema_by_id(int(schema_id))
        if stored is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return RegisteredSchema(stored.id, stored.schema, stored.schema_type, references=stored.references)

    def get_schema_by_guid(self, guid: str) -> RegisteredSchema:
        # guids are derived, not stored: scan ids (registries hold thousands of schemas, not millions)
        schema_id = 1
        while True:
            stored = self.store.schema_by_id(schema_id)
            if stored is None:
                break
            if schema_guid(stored.schema_type, stored.canonical) == guid:
                return self.get_schema(schema_id)
            schema_id += 1
        raise SchemaNotFoundError(f"Schema {guid} not found")

    def subject_versions_for_id(self, schema_id: int, include_deleted: bool = False) -> list[StoredVersion]:
        self.get_schema(schema_id)
        return [v for v in self.store.versions_of_schema(int(schema_id)) if include_deleted or not v.deleted]

    def subjects(self, include_deleted: bool = False, prefix: str = "") -> list[str]:
        out = []
        for s in self.store.subjects():
            if s.startswith(prefix) and self._live_versions(s, include_deleted):
                out.append(s)
        return out

    def versions(self, subject: str, include_deleted: bool = False) -> list[int]:
        versions = self._live_versions(subject, include_deleted)
        if not versions:
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        return [v.version for v in versions]

    def get_version(self, subject: str, version: int | str, include_deleted: bool = False) -> RegisteredSchema:
        """``version`` is a positive int, ``"latest"`` or ``-1`` (latest)."""
        number = self._version_number(version)
        versions = self._live_versions(subject, include_deleted)
        if not versions:
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        if number == -1:
            return self._registered(versions[-1])
        for v in versions:
            if v.version == number:
                return self._registered(v)
        raise VersionNotFoundError(f"Version {version} not found.")

    @staticmethod
    def _version_number(version: int | str) -> int:
        if version == "latest":
            return -1
        try:
            number = int(version)
        except (TypeError, ValueError):
            number = 0
        if number == -1 or number >= 1:
            return number
        raise InvalidVersionError(
            f"The specified version '{version}' is not a valid version id. Allowed values are between "
            "[1, 2^31-1] and the string \"latest\"")

    def latest(self, subject: str) -> RegisteredSchema:
        return self.get_version(subject, "latest")

    # ------------------------------------------------------------------------------------ deletes
    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete every version (or, once soft-deleted, remove them); returns the version numbers."""
        with self._lock:
            every = self.store.versions(subject)
            if not every:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            live = [v for v in every if not v.deleted]
            if permanent:
                if live:
                    raise SchemaRegistryError(
                        f"Subject '{subject}' was not deleted first before being permanently deleted",
                        error_code=40405, http_status=404)
                for v in every:
                    self.store.remove_version(subject, v.version)
                self.store.set_config(subject, None)
                return [v.version for v in every]
            if not live:
                raise SchemaRegistryError(f"Subject '{subject}' was soft deleted.Set permanent=true to delete "
                                          "permanently", error_code=40404, http_status=404)
            for v in live:
                self.store.set_deleted(subject, v.version, True)
            return [v.version for v in live]

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        number = self._version_number(version)
        with self._lock:
            every = self.store.versions(subject)
            if not every:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            if number == -1:
                live = [v for v in every if not v.deleted]
                if not live:
                    raise VersionNotFoundError(f"Version {version} not found.")
                number = live[-1].version
            match = next((v for v in every if v.version == number), None)
            if match is None:
                raise VersionNotFoundError(f"Version {version} not found.")
            if permanent:
                if not match.deleted:
                    raise SchemaRegistryError(
                        f"Subject '{subject}' Version {number} was not deleted first before being permanently "
                        "deleted", error_code=40407, http_status=404)
                self.store.remove_version(subject, number)
                return number
            if match.deleted:
                raise SchemaRegistryError(f"Subject '{subject}' Version {number} was soft deleted.Set "
                                          "permanent=true to delete permanently", error_code=40406, http_status=404)
            self.store.set_deleted(subject, number, True)
            return number

    # ------------------------------------------------------------------------------ contracts API
    def register_contract(self, subject: str, contract: DataContract) -> RegisteredSchema:
        return self.register(subject, contract, "CONTRACT")

    def contract(self, subject: str, version: int | str = "latest") -> DataContract:
        reg = self.get_version(subject, version)
        if reg.schema_type != "CONTRACT":
            raise SchemaRegistryError(f"subject {subject!r} version {reg.version} holds a {reg.schema_type} schema, "
                                      "not a contract", error_code=42201, http_status=422)
        return parse_schema("CONTRACT", reg.schema)
