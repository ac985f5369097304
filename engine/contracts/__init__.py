"""Data contracts: versioned record schemas compiled to msgspec, a schema registry with Confluent
compatibility modes, and a Confluent-compatible REST server.

Entry points::

    contract = load_contract("orders.yaml")          # DataContract (checked at load time)
    validator = contract.compile()                   # CompiledContract (compiled once, cached)
    valid, dead = validator.validate_many(batch)     # never raises on bad records
    result = validator.validate_columns(batch)       # numpy columns + row positions + dead letters
    check_compatibility(new, [old], "BACKWARD")      # -> list of Incompatibility (empty: compatible)
    registry = SchemaRegistry(SQLiteStore("registry.db"))
    check = BatchValidator(contract, step="orders-in")   # for streams: (valid dicts, dead letters)
    report = check_quality(contract, records)           # the contract's quality rules over a batch

The HTTP server (Confluent REST API) lives in `engine.contracts.server`; the CLI in `engine.contracts.cli`.
"""

from engine.contracts.compiler import (
    CompiledContract,
    InvalidRecord,
    ValidationIssue,
    ValidationResult,
    compile_contract,
)
from engine.contracts.columnar import ColumnarValidation
from engine.contracts.compatibility import MODES, Incompatibility, check_compatibility, ensure_compatible
from engine.contracts.errors import (
    ContractDefinitionError,
    ContractValidationError,
    IncompatibleSchemaError,
    SchemaParseError,
    SchemaRegistryError,
)
from engine.contracts.export import to_avro, to_json_schema
from engine.contracts.model import SLA, Constraints, DataContract, Field, FieldType, QualityRule
from engine.contracts.importing import contract_from_avro
from engine.contracts.quality import QualityReport, check_quality
from engine.contracts.registry import RegisteredSchema, SchemaRegistry
from engine.contracts.store import MemoryStore, RegistryStore, SQLiteStore
from engine.contracts.streams import BatchValidator, DeadLetter
from engine.contracts.wire import ContractDeserializer, ContractSerializer
from engine.contracts.parsing import (
    check_contract,
    dump_contract,
    dumps_contract,
    fingerprint,
    load_contract,
    loads_contract,
    parse_contract,
)

__all__ = [
    "BatchValidator",
    "ColumnarValidation",
    "CompiledContract",
    "Constraints",
    "ContractDefinitionError",
    "ContractDeserializer",
    "ContractSerializer",
    "ContractValidationError",
    "DataContract",
    "DeadLetter",
    "Field",
    "FieldType",
    "Incompatibility",
    "IncompatibleSchemaError",
    "InvalidRecord",
    "MODES",
    "MemoryStore",
    "QualityReport",
    "QualityRule",
    "RegisteredSchema",
    "RegistryStore",
    "SLA",
    "SQLiteStore",
    "SchemaParseError",
    "SchemaRegistry",
    "SchemaRegistryError",
    "ValidationIssue",
    "ValidationResult",
    "check_compatibility",
    "check_contract",
    "check_quality",
    "compile_contract",
    "contract_from_avro",
    "dump_contract",
    "dumps_contract",
    "ensure_compatible",
    "fingerprint",
    "load_contract",
    "loads_contract",
    "parse_contract",
    "to_avro",
    "to_json_schema",
]
