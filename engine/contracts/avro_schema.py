"""Parse Avro schemas into a small resolved graph, for compatibility checks and canonical forms.

`parse_avro` accepts a schema as JSON text or as the already-decoded value and returns an `AvroType`
graph in which named references point at their definitions (so recursive records are cycles). It refuses
what Avro refuses (unknown types, undefined names, duplicate names or fields, bad enum symbols, a default
that does not match its field's type) with `SchemaParseError` naming the place.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.contracts.errors import SchemaParseError

PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AvroType:
    """A node of a parsed Avro schema. ``kind`` is a primitive name or record/enum/fixed/array/map/union."""

    kind: str

    def describe(self) -> str:
        return self.kind


class Primitive(AvroType):
    def __init__(self, kind: str, logical: str | None = None):
        self.kind = kind
        self.logical = logical

    def describe(self) -> str:
        return f"{self.kind}/{self.logical}" if self.logical else self.kind


class AvroField:
    def __init__(self, name: str, type: AvroType, has_default: bool, default: Any, aliases: tuple[str, ...]):
        self.name = name
        self.type = type
        self.has_default = has_default
        self.default = default
        self.aliases = aliases


class Named(AvroType):
    fullname: str
    name: str
    aliases: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.kind} {self.fullname}"


class Record(Named):
    kind = "record"

    def __init__(self, fullname: str, aliases: tuple[str, ...]):
        self.fullname = fullname
        self.name = fullname.rsplit(".", 1)[-1]
        self.aliases = aliases
        self.fields: list[AvroField] = []


class Enum(Named):
    kind = "enum"

    def __init__(self, fullname: str, aliases: tuple[str, ...], symbols: list[str], default: str | None):
        self.fullname = fullname
        self.name = fullname.rsplit(".", 1)[-1]
        self.aliases = aliases
        self.symbols = symbols
        self.default = default


class Fixed(Named):
    kind = "fixed"

    def __init__(self, fullname: str, aliases: tuple[str, ...], size: int):
        self.fullname = fullname
        self.name = fullname.rsplit(".", 1)[-1]
        self.aliases = aliases
        self.size = size


class Array(AvroType):
    kind = "array"

    def __init__(self, items: AvroType):
        self.items = items


class Map(AvroType):
    kind = "map"

    def __init__(self, values: AvroType):
        self.values = values


class Union_(AvroType):
    kind = "union"

    def __init__(self, branches: list[AvroType]):
        self.branches = branches

    def describe(self) -> str:
        return "[" + ", ".join(b.describe() for b in self.branches) + "]"


def parse_avro(schema: str | dict | list) -> AvroType:
    """Parse an Avro schema (JSON text or decoded JSON); raises `SchemaParseError`."""
    if isinstance(schema, (str, bytes)):
        text = schema
        try:
            schema = json.loads(text)
        except json.JSONDecodeError:
            # a bare primitive name such as `string` is not JSON but is a valid schema document
            if isinstance(text, str) and text.strip() in PRIMITIVES:
                schema = text.strip()
            else:
                raise SchemaParseError(f"Avro schema is not valid JSON: {text[:80]!r}") from None
    return _Parser().parse(schema, "", "$")


class _Parser:
    def __init__(self):
        self.names: dict[str, Named] = {}

    def _fullname(self, name: str, namespace: str, path: str) -> str:
        if not isinstance(name, str) or not name:
            raise SchemaParseError(f"a named type needs a non-empty string 'name' at {path}")
        parts = name.split(".")
        if not all(_NAME.match(p) for p in parts):
            raise SchemaParseError(f"invalid Avro name {name!r} at {path}")
        if "." in name or not namespace:
            return name
        return f"{namespace}.{name}"

    def _register(self, node: Named, path: str) -> None:
        if node.fullname in self.names:
            raise SchemaParseError(f"type {node.fullname!r} is defined twice (at {path})")
        self.names[node.fullname] = node

    def parse(self, s: Any, namespace: str, path: str) -> AvroType:
        if isinstance(s, str):
            if s in PRIMITIVES:
                return Primitive(s)
            full = s if "." in s or not namespace else f"{namespace}.{s}"
            node = self.names.get(full) or self.names.get(s)
            if node is None:
                raise SchemaParseError(f"unknown type {s!r} at {path} (not a primitive and not defined before)")
            return node
        if isinstance(s, list):
            branches = [self.parse(b, namespace, f"{path}[{i}]") for i, b in enumerate(s)]
            seen = set()
            for b in branches:
                if isinstance(b, Union_):
                    raise SchemaParseError(f"a union cannot directly contain a union at {path}")
                key = b.fullname if isinstance(b, Named) else b.kind
                if key in seen:
                    raise SchemaParseError(f"union at {path} has two branches of type {key!r}")
                seen.add(key)
            return Union_(branches)
        if not isinstance(s, dict):
            raise SchemaParseError(f"an Avro schema must be a string, list or object, got {s!r} at {path}")
        t = s.get("type")
        if t is None:
            raise SchemaParseError(f"missing 'type' at {path}")
        if isinstance(t, (dict, list)) or (isinstance(t, str) and t not in ("record", "error", "enum", "fixed", "array", "map")):
            node = self.parse(t, namespace, path)
            if isinstance(node, Primitive) and isinstance(s.get("logicalType"), str):
                return Primitive(node.kind, s["logicalType"])
            return node
        ns = s.get("namespace", namespace) or ""
        if t in ("record", "error"):
            full = self._fullname(s.get("name"), ns, path)
            rec = Record(full, tuple(s.get("aliases") or ()))
            self._register(rec, path)
            inner_ns = full.rsplit(".", 1)[0] if "." in full else ""
            fields = s.get("fields")
            if not isinstance(fields, list):
                raise SchemaParseError(f"record {full!r} needs a 'fields' list at {path}")
            names = set()
            for i, f in enumerate(fields):
                fpath = f"{path}.fields[{i}]"
                if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not _NAME.match(f["name"]):
                    raise SchemaParseError(f"a field needs a valid 'name' at {fpath}")
                if f["name"] in names:
                    raise SchemaParseError(f"duplicate field {f['name']!r} in record {full!r}")
                names.add(f["name"])
                if "type" not in f:
                    raise SchemaParseError(f"field {f['name']!r} needs a 'type' at {fpath}")
                ftype = self.parse(f["type"], inner_ns, f"{fpath}.type")
                has_default = "default" in f
                if has_default:
                    problem = default_problem(ftype, f["default"])
                    if problem:
                        raise SchemaParseError(f"invalid default for field {f['name']!r} of record {full!r}: {problem}")
                rec.fields.append(AvroField(f["name"], ftype, has_default, f.get("default"), tuple(f.get("aliases") or ())))
            return rec
        if t == "enum":
            full = self._fullname(s.get("name"), ns, path)
            symbols = s.get("symbols")
            if not isinstance(symbols, list) or not all(isinstance(x, str) and _NAME.match(x) for x in symbols):
                raise SchemaParseError(f"enum {full!r} needs a list of valid symbol names at {path}")
            if len(set(symbols)) != len(symbols):
                raise SchemaParseError(f"enum {full!r} has duplicate symbols")
            default = s.get("default")
            if default is not None and default not in symbols:
                raise SchemaParseError(f"enum {full!r} default {default!r} is not one of its symbols")
            node = Enum(full, tuple(s.get("aliases") or ()), symbols, default)
            self._register(node, path)
            return node
        if t == "fixed":
            full = self._fullname(s.get("name"), ns, path)
            size = s.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise SchemaParseError(f"fixed {full!r} needs a non-negative integer 'size' at {path}")
            node = Fixed(full, tuple(s.get("aliases") or ()), size)
            self._register(node, path)
            return node
        if t == "array":
            if "items" not in s:
                raise SchemaParseError(f"array needs 'items' at {path}")
            return Array(self.parse(s["items"], namespace, f"{path}.items"))
        if t == "map":
            if "values" not in s:
                raise SchemaParseError(f"map needs 'values' at {path}")
            return Map(self.parse(s["values"], namespace, f"{path}.values"))
        raise SchemaParseError(f"unknown type {t!r} at {path}")  # pragma: no cover - filtered above


def default_problem(t: AvroType, value: Any, _depth: int = 0) -> str | None:
    """``None`` if ``value`` is a valid JSON default for ``t``. A field whose type is a union takes a default
    of its first branch (the Avro rule for union fields); a union nested inside an array, map or record
    default accepts a value of any branch."""
    if _depth > 50:
        return None
    k = t.kind
    if k == "union":
        if _depth == 0:
            return default_problem(t.branches[0], value, _depth + 1)
        problems = [default_problem(b, value, _depth + 1) for b in t.branches]
        return None if any(p is None for p in problems) else problems[0]
    if k == "null":
        return None if value is None else f"expected null, got {value!r}"
    if k == "boolean":
        return None if isinstance(value, bool) else f"expected a boolean, got {value!r}"
    if k in ("int", "long"):
        return None if isinstance(value, int) and not isinstance(value, bool) else f"expected an integer, got {value!r}"
    if k in ("float", "double"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {value!r}"
    if k in ("bytes", "string", "fixed"):
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    if k == "enum":
        return None if value in t.symbols else f"{value!r} is not one of {t.symbols}"
    if k == "array":
        if not isinstance(value, list):
            return f"expected an array, got {value!r}"
        for v in value:
            p = default_problem(t.items, v, _depth + 1)
            if p:
                return p
        return None
    if k == "map":
        if not isinstance(value, dict):
            return f"expected an object, got {value!r}"
        for v in value.values():
            p = default_problem(t.values, v, _depth + 1)
            if p:
                return p
        return None
    if k == "record":
        if not isinstance(value, dict):
            return f"expected an object, got {value!r}"
        for f in t.fields:
            if f.name in value:
                p = default_problem(f.type, value[f.name], _depth + 1)
                if p:
                    return p
            elif not f.has_default:
                return f"record default lacks field {f.name!r}"
        return None
    return None


def canonical_json(schema: Any) -> str:
    """Compact JSON with sorted object keys (list order kept): equal for equal schemas however written."""
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError:
            return json.dumps(schema.strip() if isinstance(schema, str) else schema)
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
