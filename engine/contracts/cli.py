"""``engine contracts ...`` and ``engine registry serve``.

- ``engine contracts check OLD [OLDER...] NEW --mode MODE``: exit 0 when NEW may follow the older versions
  (given oldest first) under MODE, 1 with every broken rule listed, 2 for unreadable input.
- ``engine contracts validate CONTRACT FILE.jsonl``: validates every line; prints a summary and the first
  problems (line number, field path, value); ``--dead-letter OUT.jsonl`` writes each bad line with its
  reasons; ``--quality`` also checks the contract's quality rules over the valid records. Exit 0 when
  every record is valid (and the quality rules pass), 1 otherwise, 2 for unreadable input.
- ``engine contracts export CONTRACT --format jsonschema|avro``: prints (or ``-o`` writes) the schema.
- ``engine contracts import SCHEMA.avsc``: a contract describing an existing Avro record schema.
- ``engine contracts fingerprint CONTRACT``: the canonical SHA-256 fingerprint.
- ``engine registry serve [--host 127.0.0.1] [--port 8081] [--db registry.db]``: the Confluent-compatible
  schema registry (``--db :memory:`` keeps nothing).

Schema files: ``.yaml``/``.yml`` are contracts; ``.avsc`` is Avro; a ``.json`` file is recognised as a
contract (``name``/``version``/``fields``), an Avro schema (``"type": "record"`` etc.) or a JSON Schema;
``--type`` overrides the guess.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from engine.contracts.compatibility import MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    contracts = subparsers.add_parser("contracts", help="data contracts: check compatibility, validate, export")
    sub = contracts.add_subparsers(dest="contracts_command", metavar="SUBCOMMAND")
    sub.required = True

    check = sub.add_parser("check", help="is NEW compatible with the older versions under --mode?")
    check.add_argument("schemas", nargs="+", type=Path, metavar="SCHEMA",
                       help="older versions (oldest first) followed by the new one")
    check.add_argument("--mode", default="BACKWARD", type=str.upper, choices=MODES, help="compatibility mode")
    check.add_argument("--type", dest="schema_type", choices=["contract", "avro", "json"], default=None,
                       help="schema type (guessed from the files when omitted)")
    check.set_defaults(handler=_check)

    validate = sub.add_parser("validate", help="validate a JSON-lines file against a contract")
    validate.add_argument("contract", type=Path)
    validate.add_argument("records", type=Path, help="JSON lines file ('-' for stdin)")
    validate.add_argument("--max-errors", type=int, default=20, help="problems to print (default 20)")
    validate.add_argument("--dead-letter", type=Path, default=None,
                          help="write invalid lines with their reasons to this JSON-lines file")
    validate.add_argument("--quality", action="store_true",
                          help="also check the contract's quality rules over the valid records (held in memory)")
    validate.set_defaults(handler=_validate)

    export = sub.add_parser("export", help="export a contract as JSON Schema or Avro")
    export.add_argument("contract", type=Path)
    export.add_argument("--format", required=True, choices=["jsonschema", "avro"])
    export.add_argument("-o", "--output", type=Path, default=None, help="write here instead of stdout")
    export.set_defaults(handler=_export)

    imp = sub.add_parser("import", help="write a contract describing an Avro record schema")
    imp.add_argument("schema", type=Path, help="Avro schema file (.avsc / .json)")
    imp.add_argument("--name", default=None, help="contract name (default: the record name)")
    imp.add_argument("--version", default="1.0.0", help="contract version (default 1.0.0)")
    imp.add_argument("--owner", default="")
    imp.add_argument("-o", "--output", type=Path, default=None, help="write here (.yaml or .json) instead of stdout")
    imp.set_defaults(handler=_import)

    fp = sub.add_parser("fingerprint", help="print a contract's canonical fingerprint")
    fp.add_argument("contract", type=Path)
    fp.set_defaults(handler=_fingerprint)

    registry = subparsers.add_parser("registry", help="schema registry (Confluent-compatible REST API)")
    rsub = registry.add_subparsers(dest="registry_command", metavar="SUBCOMMAND")
    rsub.required = True
    serve = rsub.add_parser("serve", help="serve the schema registry over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8081)
    serve.add_argument("--db", default="registry.db", help="SQLite file (':memory:' for none)")
    serve.add_argument("--compatibility", default="BACKWARD", type=str.upper, choices=MODES,
                       help="global compatibility level when none is stored")
    serve.set_defaults(handler=_serve)


def _fail(command: str, message: str) -> int:
    print(f"engine contracts {command}: {message}", file=sys.stderr)
    return 2


def _guess_type(path: Path) -> tuple[str, Any]:
    """(schema type, loaded schema) for a schema file."""
    from engine.contracts.parsing import load_contract

    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "CONTRACT", load_contract(path)
    text = path.read_text(encoding="utf-8")
    if suffix == ".avsc":
        return "AVRO", text
    doc = json.loads(text)
    if isinstance(doc, dict) and {"name", "version", "fields"} <= set(doc) and isinstance(doc.get("version"), str):
        return "CONTRACT", load_contract(path)
    if isinstance(doc, (str, list)) or (isinstance(doc, dict) and doc.get("type") in
                                        ("record", "enum", "fixed", "array", "map", "error")):
        return "AVRO", doc
    return "JSON", doc


def _load_as(path: Path, schema_type: str | None) -> tuple[str, Any]:
    from engine.contracts.parsing import load_contract

    if schema_type is None:
        return _guess_type(path)
    if schema_type == "contract":
        return "CONTRACT", load_contract(path)
    return schema_type.upper(), json.loads(path.read_text(encoding="utf-8"))


def _check(args: argparse.Namespace) -> int:
    from engine.contracts.compatibility import check_compatibility
    from engine.contracts.errors import ContractError

    if len(args.schemas) < 2:
        return _fail("check", "give at least OLD and NEW")
    try:
        loaded = [_load_as(p, args.schema_type) for p in args.schemas]
        types = {t for t, _ in loaded}
        if len(types) > 1:
            return _fail("check", f"the files hold different schema types {sorted(types)}; use --type")
        schema_type = types.pop()
        *old, new = [s for _, s in loaded]
        problems = check_compatibility(new, old, args.mode, schema_type)
    except (OSError, ValueError, ContractError) as exc:
        return _fail("check", str(exc))
    new_name = args.schemas[-1]
    if not problems:
        print(f"compatible: {new_name} under {args.mode} ({len(old)} earlier version(s) checked)")
        return 0
    print(f"INCOMPATIBLE: {new_name} under {args.mode}: {len(problems)} problem(s)")
    for p in problems:
        against = args.schemas[p.version - 1] if p.version else "?"
        print(f"  - {p.path}: {p.message} [{p.rule}] (vs {against}; {p.direction})")
    if schema_type == "CONTRACT" and old and _major(new.version) <= _major(old[-1].version):
        print(f"  note: a breaking change needs a new MAJOR version ({old[-1].version} -> {new.version} does not "
              "bump it)")
    return 1


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def _validate(args: argparse.Namespace) -> int:
    from engine.contracts.errors import ContractError
    from engine.contracts.parsing import load_contract

    try:
        validator = load_contract(args.contract).compile()
        stream = sys.stdin.buffer if str(args.records) == "-" else open(args.records, "rb")
    except (OSError, ContractError) as exc:
        return _fail("validate", str(exc))
    dead = open(args.dead_letter, "w", encoding="utf-8") if args.dead_letter else None
    kept: list | None = [] if args.quality else None
    total = bad = shown = 0
    try:
        with stream:
            chunk: list[bytes] = []
            first_line = 1
            for line_no, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                if not chunk:
                    first_line = line_no
                chunk.append(line)
                if len(chunk) >= 10_000:
                    b, shown = _validate_chunk(validator, chunk, first_line, args, dead, shown, kept)
                    total, bad, chunk = total + len(chunk), bad + b, []
            if chunk:
                b, shown = _validate_chunk(validator, chunk, first_line, args, dead, shown, kept)
                total, bad = total + len(chunk), bad + b
    finally:
        if dead is not None:
            dead.close()
    if bad > shown:
        print(f"  ... and {bad - shown} more invalid record(s)")
    status = "OK" if bad == 0 else "INVALID"
    print(f"{status}: {total} record(s), {total - bad} valid, {bad} invalid "
          f"(contract {validator.contract.name} {validator.contract.version})")
    quality_ok = True
    if kept is not None:
        from engine.contracts.quality import check_quality

        report = check_quality(validator.contract, kept)
        print(report)
        quality_ok = report.passed
    return 0 if bad == 0 and quality_ok else 1


def _validate_chunk(validator, chunk, first_line, args, dead, shown, kept) -> tuple[int, int]:
    # blank lines were skipped, so map batch positions back to file lines
    lines = []
    line = first_line
    for _ in chunk:
        lines.append(line)
        line += 1
    valid, invalid = validator.validate_many(chunk)
    if kept is not None:
        kept.extend(valid)
    for rec in invalid:
        line_no = lines[rec.index]
        if shown < args.max_errors:
            print(f"  line {line_no}: {rec.reason}")
            shown += 1
        if dead is not None:
            raw = rec.record.decode("utf-8", "replace").rstrip("\n")
            dead.write(json.dumps({"line": line_no, "record": raw, "errors": [
                {"path": i.path, "message": i.message, "value": repr(i.value)} for i in rec.issues]}) + "\n")
    return len(invalid), shown


def _export(args: argparse.Namespace) -> int:
    from engine.contracts.errors import ContractError
    from engine.contracts.parsing import load_contract

    try:
        contract = load_contract(args.contract)
    except ContractError as exc:
        return _fail("export", str(exc))
    doc = contract.to_json_schema() if args.format == "jsonschema" else contract.to_avro()
    text = json.dumps(doc, indent=2) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _import(args: argparse.Namespace) -> int:
    from engine.contracts.errors import ContractError
    from engine.contracts.importing import contract_from_avro
    from engine.contracts.parsing import dump_contract, dumps_contract

    try:
        contract = contract_from_avro(args.schema.read_text(encoding="utf-8"), version=args.version,
                                      name=args.name, owner=args.owner)
    except (OSError, ContractError) as exc:
        return _fail("import", str(exc))
    if args.output:
        dump_contract(contract, args.output)
    else:
        sys.stdout.write(dumps_contract(contract))
    return 0


def _fingerprint(args: argparse.Namespace) -> int:
    from engine.contracts.errors import ContractError
    from engine.contracts.parsing import load_contract

    try:
        print(load_contract(args.contract).fingerprint())
    except ContractError as exc:
        return _fail("fingerprint", str(exc))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from engine.contracts.registry import SchemaRegistry
    from engine.contracts.server import open_registry_server
    from engine.contracts.store import SQLiteStore

    registry = SchemaRegistry(SQLiteStore(args.db), default_compatibility=args.compatibility)

    async def main() -> None:
        async with open_registry_server(registry, args.host, args.port) as url:
            print(f"engine registry: serving {url} (database {args.db}); Ctrl-C stops", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        registry.close()
    return 0
